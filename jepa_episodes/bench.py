"""`jepa bench planner`: planning time and final energy of our CEM against the reference CEM.

Both planners run in the same process on the same model and the same planning problems. Numbers are medians over
`--repeats` problems (problem seeds 1001, 1002, ...); a row's final energy is the energy of the plan each planner
returned under the benchmarked model (L1 of its final predicted frame to the goal features), evaluated after
timing; the JSON also lists every problem's seed and both final energies. `--models` picks the problem sets:

- "random": randomly initialised predictors (the tiny one on the CPU; tiny, ViT-L and ViT-g sized on CUDA) with
  a 3-D xyz action box of +-5 cm and synthetic goals. Random weights give the true cost per rollout; a problem's
  goal features are the model's own prediction for a known action sequence plus observation noise (std = half
  the mean feature change that box actions cause), so like a real goal image the goal is nearly but not exactly
  reachable and energies have a meaningful floor. Horizon 1.
- "default": the shipped reach model (`load_encoder`/`load_predictor("default")`, loaded by name when the bench
  runs) on real problems from the built-in MuJoCo sim (`ArmSim`, task "reach"): the arm at rest at a start pose
  and a goal target, both drawn with `ArmSim.sample_target` from `np.random.default_rng(seed)`; context = the
  encoder's features of the camera frame at the start pose, state = the end-effector position (as the planner
  node gets it), goal = the features of the goal image (`ArmSim.render_goal` of the target, rendered from the
  home pose as `jepa eval` does). The planner is the reach deployment's (config/planner.yaml over the
  `PlannerSettings` defaults, as `jepa eval --offline` runs it): the predictor's action space as the box, horizon 1.
- "push_default": the shipped push model ("push_default", loaded by name) on push tasks
  (`jepa_sim.push.sample_push_task` from `np.random.default_rng(seed)`, `start_episode`): context = the frame at
  the episode's start, goal = the first goal image of the push protocol, "behind" (the puck where it starts, the
  end effector behind it on the push line), which is the image the deployed loop plans against from that
  frame. The planner is the push deployment's (config/planner_push.yaml over the defaults, as
  `jepa eval --offline --task push` runs it): horizon 1, dz held at 0 (`fixed_dims`, applied by our planner's action
  constraints; the reference gets the held dim as a box of zero width, so its clipping holds it too), and each
  candidate scored as if held for 8 control steps (`lookahead_steps`): both planners roll out the same
  `HeldActions` model and rank by where its hold ends (the deployed `energy_mode` "closest" is replaced by
  "final", the reference's ranking), so they solve the same problem.

Rows, per model (sharing the reference runs):
- "reference": the paper's setting (800 samples x 10 iterations, top 10, momentum 0.15: `reference.PAPER`) in
  both planners at the model's horizon, ours with early exit at 0.5 % (`PAPER_EARLY_EXIT`); any speedup comes
  from the planner's implementation: early exit, elite reuse, the evaluated mean, and a context prepared once
  per plan (`ACPredictor.prepare_context`: the work on the context frame that does not depend on the sampled
  actions is shared, and each chunk of samples is scored while its predictions are still in cache). The
  reference calls the model's plain `rollout` once per iteration, as the published procedure does; whatever
  makes that rollout faster (e.g. cache-sized chunks on the CPU) speeds both planners alike.
- "project-default": the shipped planner's setting (16 samples x up to 3 iterations: the `CEMConfig` defaults,
  which `PlannerSettings` and config/planner*.yaml use; for the trained models exactly the deployed planner's
  configuration) against the reference at the paper's setting.

`--quick` is a smoke run: one problem per model, of the random models only the tiny one, scaled-down settings
(numbers not comparable with the real rows); with all three problem sets it takes a few seconds on the CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from jepa_planner.cem import CEMConfig, CEMPlanner
from jepa_planner.energy import l1_energy, layer_norm_features
from jepa_planner.reference import PAPER, reference_cem

BOX = 0.05  # m per control step on x, y, z (public notebook clip)
ACTION_DIM = STATE_DIM = 3
GOAL_NOISE = 0.5  # goal observation noise relative to the mean feature change box actions cause
ENERGY_RTOL = 0.005  # final energies within 0.5 % of the reference's count as equal
#: Predicted frames per action of the paper's planner: 800 samples x 10 iterations at horizon 1 (one frame each).
PAPER_FRAMES_PER_ACTION = PAPER["samples"] * PAPER["iterations"]
#: Our planner's early exit at the paper's setting (two iterations below 0.5 % improvement).
PAPER_EARLY_EXIT = dict(early_stop_patience=2, early_stop_rtol=5e-3)

#: Problem sets of `--models`: the random-weight predictors and the shipped trained models (name -> sim task).
RANDOM = "random"
TRAINED_TASKS = {"default": "reach", "push_default": "push"}
MODEL_SETS = (RANDOM, *TRAINED_TASKS)
#: The push problems' goal image: the first of the push protocol (`jepa_sim.push.GOAL_KINDS`).
PUSH_GOAL_KIND = "behind"

# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, most specific first.
PEAK_BF16 = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12),
             ("L40S", 362e12), ("4090", 165e12), ("L4", 121e12), ("A10G", 70e12))


@dataclass(frozen=True)
class ModelSize:
    """A predictor size to benchmark: `load_predictor` preset plus overrides."""

    name: str
    preset: str
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Reference:
    """Settings of one reference-CEM run; `low`/`high` its action box (a held dim: low == high)."""

    samples: int
    iterations: int
    elites: int
    horizon: int
    low: tuple[float, ...] = (-BOX,) * ACTION_DIM
    high: tuple[float, ...] = (BOX,) * ACTION_DIM


@dataclass(frozen=True)
class Setting:
    """One benchmark row: our planner's config against a reference run."""

    name: str
    ours: CEMConfig
    reference: Reference


CPU_SIZES = (ModelSize("tiny", "tiny"),)
GPU_SIZES = (ModelSize("tiny", "tiny"),
             ModelSize("vit_l", "ac_vit_g", (("embed_dim", 1024),)),
             ModelSize("vit_g", "ac_vit_g"))


def _box() -> dict:
    return dict(low=[-BOX] * ACTION_DIM, high=[BOX] * ACTION_DIM)


def default_settings() -> tuple[Setting, ...]:
    """The reported rows."""
    paper = Reference(samples=PAPER["samples"], iterations=PAPER["iterations"], elites=PAPER["elites"], horizon=1)
    return (Setting("reference", CEMConfig(**_box(), **PAPER, **PAPER_EARLY_EXIT), paper),
            Setting("project-default", CEMConfig(**_box()), paper))


def quick_settings() -> tuple[Setting, ...]:
    """Scaled-down rows for a smoke run (numbers not comparable with the real rows)."""
    small = Reference(samples=64, iterations=2, elites=8, horizon=1)
    return (Setting("reference (quick)", CEMConfig(**_box(), samples=64, iterations=2, elites=8), small),
            Setting("project-default (quick)", CEMConfig(**_box(), samples=32, iterations=2, elites=8), small))


def reference_box(config: CEMConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The action box the reference CEM gets for our `config`: its box, with every held dim (`fixed_dims`, which
    our planner's action constraints set after clipping) narrowed to its value, so the reference's clipping holds
    it too."""
    low, high = [float(v) for v in config.low], [float(v) for v in config.high]
    for dim, value in config.fixed_dims.items():
        low[dim] = high[dim] = float(value)
    return tuple(low), tuple(high)


def _derived(config: CEMConfig, **changes: Any) -> CEMConfig:
    """`config` with `changes`; `keep_elites` is derived again from the new elites (as the deployed config's)."""
    return dataclasses.replace(config, keep_elites=None, **changes)


def trained_settings(deployed: CEMConfig, quick: bool = False) -> tuple[Setting, ...]:
    """The rows of a trained model whose deployed planner has CEM config `deployed` (its box, held dims and
    horizon are kept in every row; the reference runs at that horizon in the same box)."""
    low, high = reference_box(deployed)
    h = deployed.horizon
    deployed = dataclasses.replace(deployed, energy_mode="final")  # the reference ranks by the final frame
    if quick:
        small = Reference(samples=64, iterations=2, elites=8, horizon=h, low=low, high=high)
        return (Setting("reference (quick)", _derived(deployed, samples=64, iterations=2, elites=8), small),
                Setting("project-default (quick)", _derived(deployed, samples=32, iterations=2, elites=8), small))
    paper = Reference(samples=PAPER["samples"], iterations=PAPER["iterations"], elites=PAPER["elites"], horizon=h,
                      low=low, high=high)
    return (Setting("reference", _derived(deployed, **PAPER, **PAPER_EARLY_EXIT), paper),
            Setting("project-default", deployed, paper))


class _CountingModel:
    """Passes rollouts through and counts the action sequences evaluated (for FLOP/s)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.max_horizon = model.max_horizon
        self.frames_per_action = getattr(model, "frames_per_action", 1)
        self.sequences = 0

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.sequences += actions.shape[0]
        return self.model.rollout(context, state, actions)

    def prepare_context(self, context: torch.Tensor, state: torch.Tensor) -> "_CountingPrepared":
        return _CountingPrepared(self, self.model.prepare_context(context, state))


class _CountingPrepared:
    """A prepared context whose rollouts are counted by the `_CountingModel` that made it."""

    def __init__(self, counter: _CountingModel, prepared: Any) -> None:
        self.counter = counter
        self.prepared = prepared
        self.preferred_batch = prepared.preferred_batch

    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        self.counter.sequences += actions.shape[0]
        return self.prepared.rollout(actions)


def build_model(size: ModelSize, device: str) -> Any:
    """Random-weight predictor of `size` on `device`, with a 3-D xyz action/state space whose normalisation
    makes box actions O(1) in model units (as a trained checkpoint's statistics would)."""
    from jepa_world_model.config import ActionSpace, StateSpace
    from jepa_world_model import load_predictor

    actions = ActionSpace(("dx", "dy", "dz"), ("m",) * 3, (-BOX,) * 3, (BOX,) * 3, (0.0,) * 3, (BOX / 2,) * 3)
    states = StateSpace(("x", "y", "z"), ("m",) * 3, (-1.0,) * 3, (1.0,) * 3, (0.0,) * 3, (0.5,) * 3)
    model = load_predictor(size.preset, action_space=actions, state_space=states, **dict(size.overrides))
    return model.to(device)


def make_problem(model: Any, horizon: int, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Context (1,1,N,D), state (1,1,S) and goal (N,D): the prediction for a known plan inside the box, plus
    observation noise scaled to how much box actions change the prediction."""
    g = torch.Generator().manual_seed(seed)
    n, d = model.config.tokens_per_frame, model.config.embed_dim
    context = layer_norm_features(torch.randn(1, 1, n, d, generator=g)).to(device)
    state = (torch.rand(1, 1, STATE_DIM, generator=g) * 0.4 - 0.2).to(device)
    known = (torch.rand(1, horizon, ACTION_DIM, generator=g) * 2 - 1) * 0.8 * BOX
    others = (torch.rand(16, horizon, ACTION_DIM, generator=g) * 2 - 1) * BOX
    pred = model.rollout(context, state, torch.cat([known, others]).to(device))[:, -1].float()
    change = (pred[1:] - pred[:1]).abs().mean()
    noise = torch.randn(n, d, generator=g).to(device)
    return context, state, pred[0] + GOAL_NOISE * change * noise


class RandomProblems:
    """Synthetic problems (`make_problem`) on a random-weight predictor of `size`."""

    kind = "random weights, synthetic goal"

    def __init__(self, size: ModelSize, device: str) -> None:
        self.name = size.name
        self.model = build_model(size, device)
        self.device = device
        self.info: dict[int, dict] = {}

    def make(self, horizon: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Context, state and goal of problem `seed` at `horizon`."""
        return make_problem(self.model, horizon, seed, self.device)

    def close(self) -> None:
        """Nothing to release."""


class TrainedProblems:
    """Real problems for a shipped trained model ("default": reach, "push_default": push) on the built-in sim.

    The models are loaded by name when this is made (`jepa_episodes.offline.load_models`), and the encoder, the
    model checks and the deployed planner's configuration (`config`) are those of the offline driver
    (`jepa_episodes.offline.OfflineDriver` with the task's `planner_settings()`: config/planner.yaml or
    config/planner_push.yaml). The encoder runs on the CPU, the predictor on `device`. A problem depends on its
    seed only (see `scene`).
    """

    def __init__(self, name: str, device: str) -> None:
        from jepa_episodes.offline import OfflineDriver, load_models
        from jepa_episodes.tasks import get_task

        if name not in TRAINED_TASKS:
            raise ValueError(f"no trained problem set {name!r}; choose from {list(TRAINED_TASKS)}")
        self.name = name
        self.task = TRAINED_TASKS[name]
        self.kind = "reach sim, goal image" if self.task == "reach" else f"push sim, '{PUSH_GOAL_KIND}' image"
        encoder, predictor = load_models(name, name)
        self.loop = OfflineDriver(get_task(self.task), encoder, predictor)
        self.config: CEMConfig = self.loop.loop.planner.config
        self.predictor = predictor.to(device).eval()
        # what the deployed planner rolls out: the predictor, or HeldActions over it (lookahead_steps > 1), so
        # that ours and the reference score the same candidates
        self.model = self.loop.loop.planner.model
        steps = self.loop.loop.settings.lookahead_steps
        if steps > 1:
            self.kind += f", actions held {steps} steps"
        self.device = device
        self.info: dict[int, dict] = {}
        self._sim: Any = None

    def _open_sim(self) -> Any:
        if self._sim is None:
            from jepa_sim.arm_sim import ArmSim

            self._sim = ArmSim(image_size=self.loop.models.encoder.config.crop_size, task=self.task)
        return self._sim

    def scene(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Problem `seed` as the planner gets it: camera-frame features (N, D), end-effector position (3,), goal
        features (N, D), and what the scene was (JSON-able). Reach: start pose and target drawn with
        `sample_target` from `default_rng(seed)`, the goal image rendered from the home pose (as `jepa eval`),
        the arm then put at rest at the start. Push: `sample_push_task` from `default_rng(seed)` (drawn with the
        arm at home), the sim at the task's start (`start_episode`), the "behind" goal image."""
        sim = self._open_sim()
        rng = np.random.default_rng(seed)
        if self.task == "reach":
            sim.reset()
            start, target = sim.sample_target(rng), sim.sample_target(rng)
            goal_image = sim.render_goal(target)
            sim.reset(sim.ik(start))
            info = {"start": start.tolist(), "target": target.tolist()}
        else:
            from jepa_sim.arm_sim import OBJECT_AREA
            from jepa_sim.push import GOAL_KINDS, goal_images, sample_push_task, start_episode

            sim.reset(object_xy=OBJECT_AREA.center[:2])
            task = sample_push_task(sim, rng)
            start_episode(sim, task)
            goal_image = goal_images(sim, task, len(GOAL_KINDS))[GOAL_KINDS.index(PUSH_GOAL_KIND)]
            info = {**task.to_dict(), "goal": PUSH_GOAL_KIND}
        features = self.loop.features(sim.render())
        state = sim.ee_position()
        info["ee"] = state.tolist()
        return features, state, self.loop.features(goal_image), info

    def make(self, horizon: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Context (1,1,N,D), state (1,1,3) and goal (N,D) of problem `seed` on the device, built as the offline
        loops hand them to the planner (the problem does not depend on `horizon`)."""
        features, state, goal_features, self.info[seed] = self.scene(seed)
        models = self.loop.models
        context = models.tensor(features)[None, None]
        state_t = torch.as_tensor(np.asarray(state, dtype=np.float32))[None, None]
        goal = self.loop.loop.goal_tensor(goal_features)
        return context.to(self.device), state_t.to(self.device), goal.to(self.device)

    def close(self) -> None:
        """Close the sim."""
        if self._sim is not None:
            self._sim.close()
            self._sim = None


def final_energy(model: Any, context: torch.Tensor, state: torch.Tensor, goal: torch.Tensor,
                 actions: torch.Tensor) -> float:
    """Energy of a plan's final predicted frame."""
    pred = model.rollout(context, state, actions[None].to(context.device))
    return float(l1_energy(pred[:, -1], goal)[0])


def flops_per_sequence(model: Any, context: torch.Tensor, state: torch.Tensor, horizon: int) -> float:
    """FLOPs of rolling out one action sequence (counted on a batch of 4)."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.rollout(context, state, torch.zeros(4, horizon, model.config.action_dim, device=context.device))
    return counter.get_total_flops() / 4


def _timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, (time.perf_counter() - t0) * 1e3


def bench_model(problems: Any, settings: tuple[Setting, ...], device: str, repeats: int) -> list[dict]:
    """Time every setting on `repeats` problems of `problems` (`RandomProblems` or `TrainedProblems`: `model`,
    `make(horizon, seed)`); reference runs shared by settings are run once per problem."""
    model = problems.model
    counted = _CountingModel(model)
    planners = [CEMPlanner(counted, l1_energy, s.ours) for s in settings]
    references = sorted({s.reference for s in settings}, key=lambda r: dataclasses.astuple(r))
    horizons = sorted({s.reference.horizon for s in settings} | {s.ours.horizon for s in settings})
    flops = {}
    for h in horizons:  # warm-up at the largest batch, and FLOPs per rolled-out sequence
        context, state, _ = problems.make(h, seed=0)
        batch = max([s.ours.samples for s in settings] + [r.samples for r in references])
        model.rollout(context, state, torch.zeros(batch, h, model.config.action_dim, device=device))
        flops[h] = flops_per_sequence(model, context, state, h)
    runs: dict[Any, list[tuple[float, float, int, int]]] = {key: [] for key in [*references, *range(len(settings))]}
    seeds = [problem_seed(rep) for rep in range(1, repeats + 1)]
    for rep, seed in enumerate(seeds, start=1):
        made = {h: problems.make(h, seed=seed) for h in horizons}
        for ref in references:
            context, state, goal = made[ref.horizon]
            gen = torch.Generator(device=device).manual_seed(rep)
            counted.sequences = 0
            actions, ms = _timed(lambda: reference_cem(
                counted, context, state, goal, low=ref.low, high=ref.high, samples=ref.samples,
                iterations=ref.iterations, elites=ref.elites, horizon=ref.horizon, energy=l1_energy,
                generator=gen), device)
            runs[ref].append((ms, final_energy(model, context, state, goal, actions), counted.sequences,
                              ref.iterations))
        for i, planner in enumerate(planners):
            context, state, goal = made[planner.config.horizon]
            counted.sequences = 0
            result, ms = _timed(lambda: planner.plan(context, state, goal), device)
            runs[i].append((ms, final_energy(model, context, state, goal, result.actions), counted.sequences,
                            result.iterations_run))
    per_problem = [{"seed": seed, **problems.info.get(seed, {})} for seed in seeds]
    return [_row(problems, s, device, runs[i], runs[s.reference], flops, per_problem)
            for i, s in enumerate(settings)]


def problem_seed(rep: int) -> int:
    """The seed of the `rep`-th timed problem (1-based)."""
    return 1000 + rep


def _row(problems: Any, setting: Setting, device: str, ours: list[tuple], ref: list[tuple],
         flops: dict[int, float], per_problem: list[dict]) -> dict:
    med = statistics.median
    cfg, r = setting.ours, setting.reference
    ms, energy, seqs, iters = (med(col) for col in zip(*ours))
    rms, renergy, rseqs, _ = (med(col) for col in zip(*ref))
    frames_per_sequence = cfg.horizon * getattr(problems.model, "steps", 1)
    evaluations = seqs * frames_per_sequence
    row = {
        "setting": setting.name, "model": problems.name, "problems": problems.kind, "device": device,
        "samples": cfg.samples, "iterations": cfg.iterations, "elites": cfg.elites,
        "keep_elites": cfg.keep_elites, "early_stop_patience": cfg.early_stop_patience, "horizon": cfg.horizon,
        "action_low": [float(v) for v in cfg.low], "action_high": [float(v) for v in cfg.high],
        "fixed_dims": {problems.model.config.action_space.names[k]: float(v)
                       for k, v in sorted(cfg.fixed_dims.items())},
        "reference_action_low": list(r.low), "reference_action_high": list(r.high),
        "lookahead_steps": getattr(problems.model, "steps", 1),
        "iterations_run": iters, "sequences_evaluated": seqs,
        "evaluations_per_action": evaluations, "reference_evaluations_per_action": rseqs * frames_per_sequence,
        "fewer_evaluations_than_paper": PAPER_FRAMES_PER_ACTION / evaluations,
        "ms_per_action": ms, "final_energy": energy,
        "reference_samples": r.samples, "reference_iterations": r.iterations, "reference_elites": r.elites,
        "reference_horizon": r.horizon, "reference_sequences_evaluated": rseqs,
        "reference_ms_per_action": rms, "reference_final_energy": renergy,
        "speedup": rms / ms,
        "energy_equal_or_lower": energy <= renergy * (1 + ENERGY_RTOL),
        "energy_rtol": ENERGY_RTOL,
        "problems_energy_not_higher": sum(o[1] <= x[1] * (1 + ENERGY_RTOL) for o, x in zip(ours, ref)),
        "repeats": len(ours),
        "tflops": flops[cfg.horizon] * seqs / ms / 1e9,
        "reference_tflops": flops[r.horizon] * rseqs / rms / 1e9,
        "per_problem": [{**p, "final_energy": o[1], "reference_final_energy": x[1], "ms": o[0],
                         "reference_ms": x[0]} for p, o, x in zip(per_problem, ours, ref)],
    }
    peak = peak_bf16_flops(device)
    if peak:
        row["peak_tflops_bf16"] = peak / 1e12
        row["mfu"] = row["tflops"] * 1e12 / peak
        row["reference_mfu"] = row["reference_tflops"] * 1e12 / peak
    measured = measured_matmul_tflops(device)
    row["matmul_peak_tflops"] = measured
    row["fraction_of_matmul_peak"] = row["tflops"] / measured
    row["reference_fraction_of_matmul_peak"] = row["reference_tflops"] / measured
    return row


_MATMUL_PEAK: dict[tuple[str, int], float] = {}


def measured_matmul_tflops(device: str, size: int = 1024, repeats: int = 10) -> float:
    """The machine's measured matmul throughput in TFLOP/s (best of `repeats` square `size` matmuls, fp32 on
    the CPU at the current thread count, bf16 on CUDA): the ceiling a dense model could reach here. Measured once
    per device and thread count."""
    key = (device, torch.get_num_threads())
    if key not in _MATMUL_PEAK:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        size = size * 8 if device == "cuda" else size
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        out = torch.empty(size, size, device=device, dtype=dtype)
        torch.matmul(a, b, out=out)
        best = min(_timed(lambda: torch.matmul(a, b, out=out), device)[1] for _ in range(repeats))
        _MATMUL_PEAK[key] = 2 * size ** 3 / (best * 1e-3) / 1e12
    return _MATMUL_PEAK[key]


def peak_bf16_flops(device: str) -> float | None:
    """Dense bf16 peak of the current CUDA device when known, else None."""
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


def machine_info(device: str) -> dict:
    """CPU, GPU and torch facts for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, compute_dtype="bfloat16 (autocast)")
    else:
        info["compute_dtype"] = "float32"
    return info


def markdown_table(results: list[dict]) -> str:
    """Results as a markdown table."""
    lines = ["| setting | model | device | problems | H | ours samples x iters (run) | ref samples x iters "
             "| rollouts ours / ref | predicted frames ours / ref (paper / ours) | ours ms/action | ref ms/action "
             "| speedup | ours energy | ref energy | equal or lower | ours TFLOP/s (of matmul peak) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        held = "".join(f" ({name}={value:g})" for name, value in r.get("fixed_dims", {}).items())
        lines.append(
            f"| {r['setting']} | {r['model']} | {r['device']} | {r['problems']} | {r['horizon']}{held} "
            f"| {r['samples']} x {r['iterations']} ({r['iterations_run']:g}) "
            f"| {r['reference_samples']} x {r['reference_iterations']} "
            f"| {r['sequences_evaluated']:g} / {r['reference_sequences_evaluated']:g} "
            f"| {r['evaluations_per_action']:g} / {r['reference_evaluations_per_action']:g} "
            f"({r['fewer_evaluations_than_paper']:.3g}x fewer than 800 x 10) "
            f"| {r['ms_per_action']:.1f} | {r['reference_ms_per_action']:.1f} | {r['speedup']:.2f}x "
            f"| {r['final_energy']:.5g} | {r['reference_final_energy']:.5g} "
            f"| {'yes' if r['energy_equal_or_lower'] else 'NO'} "
            f"| {r['tflops']:.3g} ({100 * r['fraction_of_matmul_peak']:.1f} % of {r['matmul_peak_tflops']:.3g}) |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI: `jepa bench planner [--models NAME ...] [--json PATH] [--device cpu|cuda] [--repeats N] [--threads N]
    [--quick]`."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("target", choices=["planner"], help="what to benchmark (only: planner)")
    parser.add_argument("--models", nargs="+", choices=MODEL_SETS, default=list(MODEL_SETS), metavar="NAME",
                        help="problem sets, in this order: random (random-weight predictors, synthetic goals), "
                             "default (the shipped reach model on reach problems of the sim), push_default (the "
                             "shipped push model on push problems of the sim) (default: all three)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH (default: none, "
                                                       "print the table only)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--repeats", type=int, default=8,
                        help="timed problems per model, the median is reported (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on --device cpu, torch's default with cuda); the tiny "
                             "model's ops are too small to gain from more, and on a shared machine more threads "
                             "made both planners several times slower and their timings erratic")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 problem per model, of the random models only the smallest, scaled-down "
                             "settings (off by default)")


def problem_sets(models: list[str], device: str, quick: bool) -> Any:
    """(problems, rows) for each chosen problem set, made one at a time (only one model is held at a time)."""
    for name in dict.fromkeys(models):
        if name == RANDOM:
            sizes = (CPU_SIZES if device == "cpu" else GPU_SIZES)[:1 if quick else None]
            for size in sizes:
                yield RandomProblems(size, device), quick_settings() if quick else default_settings()
        else:
            problems = TrainedProblems(name, device)
            yield problems, trained_settings(problems.config, quick)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, print a markdown table, optionally write JSON."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    if threads is not None:
        if threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    repeats = 1 if args.quick else args.repeats
    results = []
    with torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext():
        for problems, settings in problem_sets(args.models, device, args.quick):
            try:
                results.extend(bench_model(problems, settings, device, repeats))
            finally:
                problems.close()
            del problems
    print(markdown_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(device), "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0

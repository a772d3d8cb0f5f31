"""`jepa bench planner`: planning time and final energy of our CEM against the reference CEM.

Both planners run on the same randomly initialised predictor (random weights give the true cost), in the same
process, on the same planning problems. A problem's goal features are the model's own prediction for a known
action sequence plus observation noise (std = half the mean feature change that box actions cause), so like a
real goal image the goal is nearly but not exactly reachable and energies have a meaningful floor. Numbers are
medians over `--repeats` problems; a row's final energy is the energy of the plan each planner returned,
evaluated after timing.

Rows (both at horizon 1, sharing the reference runs):
- "reference": the paper's setting (800 samples x 10 iterations, top 10, momentum 0.15: `reference.PAPER`) in
  both planners, ours with early exit at 0.5 % (`PAPER_EARLY_EXIT`); any speedup comes
  from the planner's implementation: early exit, elite reuse, the evaluated mean, and a context prepared once
  per plan (`ACPredictor.prepare_context`: the work on the context frame that does not depend on the sampled
  actions is shared, and each chunk of samples is scored while its predictions are still in cache). The
  reference calls the model's plain `rollout` once per iteration, as the published procedure does; whatever
  makes that rollout faster (e.g. cache-sized chunks on the CPU) speeds both planners alike.
- "project-default": the shipped planner's setting (the `CEMConfig` defaults, which `PlannerSettings` and
  config/planner.yaml use: 64 samples x up to 3 iterations) against the reference at the paper's setting.
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

import torch
from torch.utils.flop_counter import FlopCounterMode

from jepa_planner.cem import CEMConfig, CEMPlanner
from jepa_planner.energy import l1_energy, layer_norm_features
from jepa_planner.reference import PAPER, reference_cem

BOX = 0.05  # m per control step on x, y, z (public notebook clip)
ACTION_DIM = STATE_DIM = 3
GOAL_NOISE = 0.5  # goal observation noise relative to the mean feature change box actions cause
ENERGY_RTOL = 0.005  # final energies within 0.5 % of the reference's count as equal
#: Our planner's early exit at the paper's setting (two iterations below 0.5 % improvement).
PAPER_EARLY_EXIT = dict(early_stop_patience=2, early_stop_rtol=5e-3)

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
    """Settings of one reference-CEM run."""

    samples: int
    iterations: int
    elites: int
    horizon: int


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


class _CountingModel:
    """Passes rollouts through and counts the action sequences evaluated (for FLOP/s)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.max_horizon = model.max_horizon
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
    from jepa_world_model.predictor import load_predictor

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


def final_energy(model: Any, context: torch.Tensor, state: torch.Tensor, goal: torch.Tensor,
                 actions: torch.Tensor) -> float:
    """Energy of a plan's final predicted frame."""
    pred = model.rollout(context, state, actions[None].to(context.device))
    return float(l1_energy(pred[:, -1], goal)[0])


def flops_per_sequence(model: Any, context: torch.Tensor, state: torch.Tensor, horizon: int) -> float:
    """FLOPs of rolling out one action sequence (counted on a batch of 4)."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.rollout(context, state, torch.zeros(4, horizon, ACTION_DIM, device=context.device))
    return counter.get_total_flops() / 4


def _timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, (time.perf_counter() - t0) * 1e3


def bench_model(model: Any, size: ModelSize, settings: tuple[Setting, ...], device: str,
                repeats: int) -> list[dict]:
    """Time every setting on `repeats` problems; reference runs shared by settings are run once per problem."""
    counted = _CountingModel(model)
    planners = [CEMPlanner(counted, l1_energy, s.ours) for s in settings]
    references = sorted({s.reference for s in settings}, key=lambda r: dataclasses.astuple(r))
    horizons = sorted({s.reference.horizon for s in settings} | {s.ours.horizon for s in settings})
    flops = {}
    for h in horizons:  # warm-up at the largest batch, and FLOPs per rolled-out sequence
        context, state, _ = make_problem(model, h, seed=0, device=device)
        batch = max([s.ours.samples for s in settings] + [r.samples for r in references])
        model.rollout(context, state, torch.zeros(batch, h, ACTION_DIM, device=device))
        flops[h] = flops_per_sequence(model, context, state, h)
    runs: dict[Any, list[tuple[float, float, int, int]]] = {key: [] for key in [*references, *range(len(settings))]}
    for rep in range(1, repeats + 1):
        problems = {h: make_problem(model, h, seed=1000 + rep, device=device) for h in horizons}
        for ref in references:
            context, state, goal = problems[ref.horizon]
            gen = torch.Generator(device=device).manual_seed(rep)
            counted.sequences = 0
            actions, ms = _timed(lambda: reference_cem(
                counted, context, state, goal, **_box(), samples=ref.samples, iterations=ref.iterations,
                elites=ref.elites, horizon=ref.horizon, energy=l1_energy, generator=gen), device)
            runs[ref].append((ms, final_energy(model, context, state, goal, actions), counted.sequences,
                              ref.iterations))
        for i, planner in enumerate(planners):
            context, state, goal = problems[planner.config.horizon]
            counted.sequences = 0
            result, ms = _timed(lambda: planner.plan(context, state, goal), device)
            runs[i].append((ms, final_energy(model, context, state, goal, result.actions), counted.sequences,
                            result.iterations_run))
    return [_row(size, s, device, runs[i], runs[s.reference], flops) for i, s in enumerate(settings)]


def _row(size: ModelSize, setting: Setting, device: str, ours: list[tuple], ref: list[tuple],
         flops: dict[int, float]) -> dict:
    med = statistics.median
    cfg, r = setting.ours, setting.reference
    ms, energy, seqs, iters = (med(col) for col in zip(*ours))
    rms, renergy, rseqs, _ = (med(col) for col in zip(*ref))
    row = {
        "setting": setting.name, "model": size.name, "device": device,
        "samples": cfg.samples, "iterations": cfg.iterations, "elites": cfg.elites,
        "keep_elites": cfg.keep_elites, "early_stop_patience": cfg.early_stop_patience, "horizon": cfg.horizon,
        "iterations_run": iters, "sequences_evaluated": seqs,
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
    }
    peak = peak_bf16_flops(device)
    if peak:
        row["peak_tflops_bf16"] = peak / 1e12
        row["mfu"] = row["tflops"] * 1e12 / peak
        row["reference_mfu"] = row["reference_tflops"] * 1e12 / peak
    return row


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
    lines = ["| setting | model | device | H | ours samples x iters (run) | ref samples x iters "
             "| rollouts ours / ref | ours ms/action | ref ms/action | speedup | ours energy | ref energy "
             "| equal or lower | ours TFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['setting']} | {r['model']} | {r['device']} | {r['horizon']} | {r['samples']} x {r['iterations']} "
            f"({r['iterations_run']:g}) | {r['reference_samples']} x {r['reference_iterations']} "
            f"| {r['sequences_evaluated']:g} / {r['reference_sequences_evaluated']:g} "
            f"| {r['ms_per_action']:.1f} | {r['reference_ms_per_action']:.1f} | {r['speedup']:.2f}x "
            f"| {r['final_energy']:.5g} | {r['reference_final_energy']:.5g} "
            f"| {'yes' if r['energy_equal_or_lower'] else 'NO'} | {r['tflops']:.3g} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI: `jepa bench planner [--json PATH] [--device cpu|cuda] [--repeats N] [--threads N] [--quick]`."""
    parser.add_argument("target", choices=["planner"], help="what to benchmark (only: planner)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH (default: none, "
                                                       "print the table only)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--repeats", type=int, default=8,
                        help="timed problems per row, the median is reported (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on --device cpu, torch's default with cuda); the tiny "
                             "model's ops are too small to gain from more, and on a shared machine more threads "
                             "made both planners several times slower and their timings erratic")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repeat, smallest model, scaled-down settings (off by default)")


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
    sizes = (CPU_SIZES if device == "cpu" else GPU_SIZES)[:1 if args.quick else None]
    settings = quick_settings() if args.quick else default_settings()
    results = []
    with torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext():
        for size in sizes:
            model = build_model(size, device)
            results.extend(bench_model(model, size, settings, device, repeats))
            del model
    print(markdown_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(device), "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0

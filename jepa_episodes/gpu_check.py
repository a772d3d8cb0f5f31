"""GPU check: one unattended run that measures the official-size models on the device it is lent, into ONE JSON.

Job: when a GPU machine is lent for a few minutes, run ``bash scripts/gpu_check.sh`` (or ``python -m
jepa_episodes.gpu_check --out PATH``) and keep the JSON. Everything uses randomly initialised weights built from
the presets (``jepa_world_model.presets``): nothing is downloaded or read from the network. Sections, in order:

- ``encoder``: the ViT-L and ViT-g encoders (presets "vit_l", "vit_g", 256 px) on a batch of single frames (one
  tubelet: 256 tokens each) and of 16-frame clips (2048 tokens each): ms per batch and per clip in fp32 and in bf16
  (autocast), and the parity of the bf16 features against the fp32 ones on the same input (max / mean absolute
  difference, cosine). ``--encoders`` takes other presets or checkpoints (any ``load_encoder`` source).
- ``predictor``: the ~300 M-parameter action-conditioned predictor (preset "ac_vit_g": depth 24, width 1024, on
  ViT-g features, 7-D end-effector actions and states): one rollout of 800 action sequences (the paper's samples
  per CEM iteration) at horizon 1 in fp32 and bf16, ms and parity as above.
- ``planning``: ms per planned action with the same 300 M predictor on random problems of `jepa bench planner`
  (`jepa_episodes.bench.build_model` / `make_problem`: 3-D xyz box of +-5 cm; the action width changes only the
  action embedding's cost): the paper's setting (800 samples x 10 iterations, top 10: `jepa_planner.reference.PAPER`)
  in the reference CEM and in our `CEMPlanner` (all 10 iterations, and with the early exit of `jepa bench planner`),
  and the shipped setting (the `CEMConfig` defaults that `PlannerSettings` uses), against the paper's 16 s per action.
  bf16 autocast on CUDA, as the planner runs there.
- ``train_step``: optimizer steps of `jepa train` (`PredictorRecipe` on the 300 M predictor from
  `train.build_predictor`, the loss of `PredictorLoss`) on an in-memory batch of random layer-normed features.
- ``pretrain_step``: optimizer steps of `jepa pretrain` (`EncoderRecipe`: ViT-L context encoder, its EMA target,
  a ViT-L-sized mask predictor of depth 12 and width 384) on random 16-frame 256 px clips.
  Both steps do what one step of `jepa_world_model.training.loop.run_loop` does (bf16 autocast on CUDA, backward,
  gradient clipping, AdamW, the recipe's update) without its files; ms per step and peak CUDA memory.

Rules: every section is timed and guarded (an error is recorded as a string and the next section runs); a global
time budget (``--budget-s``, default 480 s) marks the sections (and models) not yet started as "skipped: budget";
the JSON is rewritten after every section, so a run killed from outside still leaves the finished sections
("finished": false). Timings: one warm-up call, then the median of the repeats (CUDA synchronised,
`jepa_episodes.bench._timed`). ``--smoke`` runs the same code with tiny presets, scaled-down settings and one repeat
(a CPU check of this script in about a minute; its numbers say nothing about a GPU); the JSON says "smoke": true.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from jepa_episodes.bench import (BOX, PAPER_EARLY_EXIT, ModelSize, _box, _timed, build_model, final_energy,
                                 machine_info, make_problem, problem_seed)
from jepa_planner.cem import CEMConfig, CEMPlanner
from jepa_planner.energy import l1_energy
from jepa_planner.reference import PAPER, reference_cem

SECTIONS = ("encoder", "predictor", "planning", "train_step", "pretrain_step")
#: The paper's planning time per action (V-JEPA 2-AC, 300 M predictor, CEM 800 x 10 on one GPU).
PAPER_MS_PER_ACTION = 16000.0
DEFAULT_BUDGET_S = 480.0


@dataclass(frozen=True)
class Sizes:
    """Models and workloads of one run (`FULL` on the GPU, `SMOKE` for the CPU check of this script)."""

    encoders: tuple[str, ...]
    encoder_batch: int              # frames / clips per encoder call
    clip_frames: int                # frames of the clip input (the frame input is 1 frame)
    predictor: str                  # preset of the action-conditioned predictor (7-D actions and states)
    predictor_overrides: tuple[tuple[str, Any], ...]
    rollout_batch: int              # action sequences per timed rollout
    planning_model: ModelSize       # `bench.build_model` size of the planning section
    paper: dict                     # the paper's CEM setting (scaled down in smoke runs)
    planning_repeats: int
    repeats: int                    # timed calls per encoder / predictor measurement
    train_batch: int
    train_clip_len: int
    train_rollout_steps: int
    pretrain_encoder: str
    pretrain_overrides: tuple[tuple[str, Any], ...]
    pretrain_batch: int
    pretrain_clip_len: int
    mask_predictor: tuple[int, int, int]  # width, depth, heads of the pretraining predictor
    steps: int                      # timed optimizer steps (after one warm-up step)

    def record(self) -> dict:
        """The sizes as JSON."""
        out = dataclasses.asdict(self)
        out["predictor_overrides"] = {k: str(v) for k, v in self.predictor_overrides}
        out["pretrain_overrides"] = dict(self.pretrain_overrides)
        return out


FULL = Sizes(encoders=("vit_l", "vit_g"), encoder_batch=4, clip_frames=16, predictor="ac_vit_g",
             predictor_overrides=(), rollout_batch=PAPER["samples"],
             planning_model=ModelSize("ac_vit_g", "ac_vit_g"), paper=dict(PAPER), planning_repeats=3, repeats=5,
             train_batch=8, train_clip_len=4, train_rollout_steps=2, pretrain_encoder="vit_l", pretrain_overrides=(),
             pretrain_batch=8, pretrain_clip_len=16, mask_predictor=(384, 12, 12), steps=3)


def _smoke_sizes() -> Sizes:
    from jepa_world_model.presets import EE7_ACTION, EE7_STATE

    return Sizes(encoders=("tiny",), encoder_batch=1, clip_frames=4, predictor="tiny",
                 predictor_overrides=(("action_space", EE7_ACTION), ("state_space", EE7_STATE)), rollout_batch=64,
                 planning_model=ModelSize("tiny", "tiny"),
                 paper=dict(PAPER, samples=64, iterations=2, elites=8), planning_repeats=1, repeats=1,
                 train_batch=2, train_clip_len=3, train_rollout_steps=2, pretrain_encoder="tiny",
                 pretrain_overrides=(("crop_size", 32), ("patch_size", 4)), pretrain_batch=2, pretrain_clip_len=4,
                 mask_predictor=(32, 2, 2), steps=1)


SMOKE = _smoke_sizes()


# ---------------------------------------------------------------------------------------------------- helpers
class Budget:
    """The global time budget: `left()` seconds until the deadline."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def autocast(device: str) -> AbstractContextManager:
    """bf16 autocast on `device` (cuda or cpu)."""
    return torch.autocast(device, dtype=torch.bfloat16)


def compute_context(device: str) -> AbstractContextManager:
    """How the planner and the training loop run on `device`: bf16 autocast on CUDA, fp32 on the CPU."""
    return autocast("cuda") if device == "cuda" else nullcontext()


def measure(fn: Callable[[], Any], device: str, repeats: int) -> tuple[Any, float]:
    """One warm-up call, then `repeats` timed calls: (the last output, median ms)."""
    fn()
    times = []
    out = None
    for _ in range(repeats):
        out, ms = _timed(fn, device)
        times.append(ms)
    return out, statistics.median(times)


def parity(reference: torch.Tensor, test: torch.Tensor) -> dict:
    """How far `test` (bf16 run) is from `reference` (fp32 run): max / mean absolute difference, the reference's
    mean absolute value, cosine of the flattened tensors."""
    ref, out = reference.detach().double().flatten().cpu(), test.detach().double().flatten().cpu()
    diff = (ref - out).abs()
    cosine = torch.nn.functional.cosine_similarity(ref, out, dim=0)
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "reference_mean_abs": float(ref.abs().mean()), "cosine": float(cosine)}


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float | None:
    """Peak CUDA memory allocated since the last `reset_peak` (None on the CPU)."""
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device == "cuda" else None


def release(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def guarded_items(names: Sequence[str], run: Callable[[str], dict], budget: Budget, device: str) -> list[dict]:
    """`run(name)` for each name: its result, or {"name", "error"} when it raised, or {"name", "skipped":
    "budget"} once the budget is spent."""
    results = []
    for name in names:
        if budget.left() <= 0:
            results.append({"name": name, "skipped": "budget"})
            continue
        try:
            results.append({"name": name, **run(name)})
        except Exception as exc:  # noqa: BLE001 - recorded, the next model runs
            results.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
        release(device)
    return results


# ---------------------------------------------------------------------------------------------------- sections
def encoder_section(sizes: Sizes, device: str, budget: Budget) -> dict:
    """fp32 and bf16 ms per batch of frames / clips and bf16-vs-fp32 parity of each encoder."""
    from jepa_world_model.networks.encoder import load_encoder

    def run(name: str) -> dict:
        encoder = load_encoder(name).to(device).eval()
        crop = encoder.config.crop_size
        gen = torch.Generator().manual_seed(0)
        out: dict[str, Any] = {"parameters": parameters(encoder), "crop_size": crop,
                               "patch_size": encoder.config.patch_size, "width": encoder.config.width,
                               "depth": encoder.config.depth, "inputs": {}}
        reset_peak(device)
        for kind, frames in (("frame", 1), ("clip", sizes.clip_frames)):
            video = torch.randint(0, 256, (sizes.encoder_batch, frames, crop, crop, 3), dtype=torch.uint8,
                                  generator=gen)
            with torch.inference_mode():
                pixels = encoder.preprocess(video.to(device))
                fp32, fp32_ms = measure(lambda: encoder.encode_pixels(pixels), device, sizes.repeats)
                with autocast(device):
                    bf16, bf16_ms = measure(lambda: encoder.encode_pixels(pixels), device, sizes.repeats)
            out["inputs"][kind] = {
                "frames": frames, "tokens": int(fp32.shape[1]), "batch": sizes.encoder_batch,
                "fp32_ms_per_batch": fp32_ms, "bf16_ms_per_batch": bf16_ms,
                "fp32_ms_per_clip": fp32_ms / sizes.encoder_batch, "bf16_ms_per_clip": bf16_ms / sizes.encoder_batch,
                "bf16_speedup": fp32_ms / bf16_ms, "parity": parity(fp32, bf16)}
            del fp32, bf16, pixels
        out["peak_memory_gb"] = peak_gb(device)
        return out

    return {"models": guarded_items(sizes.encoders, run, budget, device)}


def random_predictor_inputs(model: Any, batch: int, seed: int, device: str
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer-normed random context (1,1,N,D), a state (1,1,S) inside the state box and `batch` single actions
    (B,1,A) uniform in the action box."""
    from jepa_world_model.networks.features import layer_norm_features

    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    context = layer_norm_features(torch.randn(1, 1, cfg.tokens_per_frame, cfg.embed_dim, generator=gen))

    def inside(space: Any, shape: tuple[int, ...], scale: float) -> torch.Tensor:
        low = torch.tensor(space.low, dtype=torch.float32)
        high = torch.tensor(space.high, dtype=torch.float32)
        centre, half = (low + high) / 2, (high - low) / 2
        return centre + scale * half * (torch.rand(*shape, len(space.low), generator=gen) * 2 - 1)

    state = inside(cfg.state_space, (1, 1), 0.2)
    actions = inside(cfg.action_space, (batch, 1), 1.0)
    return context.to(device), state.to(device), actions.to(device)


def predictor_section(sizes: Sizes, device: str, budget: Budget) -> dict:
    """fp32 and bf16 ms of one rollout of `rollout_batch` sequences and bf16-vs-fp32 parity."""
    from jepa_world_model.checkpoints.predictor_loading import load_predictor

    def run(name: str) -> dict:
        model = load_predictor(name, **dict(sizes.predictor_overrides)).to(device).eval()
        cfg = model.config
        context, state, actions = random_predictor_inputs(model, sizes.rollout_batch, 0, device)
        reset_peak(device)
        fp32, fp32_ms = measure(lambda: model.rollout(context, state, actions), device, sizes.repeats)
        with autocast(device):
            bf16, bf16_ms = measure(lambda: model.rollout(context, state, actions), device, sizes.repeats)
        return {"parameters": parameters(model), "width": cfg.width, "depth": cfg.depth, "embed_dim": cfg.embed_dim,
                "tokens_per_frame": cfg.tokens_per_frame, "action_dim": cfg.action_dim, "state_dim": cfg.state_dim,
                "rollout_batch": sizes.rollout_batch, "horizon": int(actions.shape[1]),
                "fp32_ms_per_rollout": fp32_ms, "bf16_ms_per_rollout": bf16_ms, "bf16_speedup": fp32_ms / bf16_ms,
                "parity": parity(fp32, bf16), "peak_memory_gb": peak_gb(device)}

    return {"models": guarded_items((sizes.predictor,), run, budget, device)}


def planning_rows(sizes: Sizes) -> list[tuple[str, dict | CEMConfig]]:
    """(name, setting): a dict is a reference-CEM run, a CEMConfig one of our planner's."""
    paper = sizes.paper
    return [("paper, reference CEM", paper),
            ("paper, CEMPlanner all iterations", CEMConfig(**_box(), **paper, early_stop_patience=0)),
            ("paper, CEMPlanner early exit", CEMConfig(**_box(), **paper, **PAPER_EARLY_EXIT)),
            ("shipped, CEMPlanner defaults", CEMConfig(**_box()))]


def planning_section(sizes: Sizes, device: str, budget: Budget) -> dict:
    """ms per planned action (median over problems) of each `planning_rows` setting, against the paper's 16 s."""
    model = build_model(sizes.planning_model, device)
    rows = planning_rows(sizes)
    reset_peak(device)

    def run(name: str) -> dict:
        setting = dict(rows)[name]
        times, energies, iterations = [], [], []
        with compute_context(device):
            for rep in range(sizes.planning_repeats + 1):  # problem 0 is the warm-up
                seed = problem_seed(rep) if rep else 0
                context, state, goal = make_problem(model, 1, seed, device)
                if isinstance(setting, dict):
                    gen = torch.Generator(device=device).manual_seed(rep)
                    actions, ms = _timed(lambda: reference_cem(
                        model, context, state, goal, low=_box()["low"], high=_box()["high"],
                        horizon=1, energy=l1_energy, generator=gen, **setting), device)
                    iters = setting["iterations"]
                else:
                    planner = CEMPlanner(model, l1_energy, setting)
                    result, ms = _timed(lambda: planner.plan(context, state, goal), device)
                    if not result.ok:
                        raise RuntimeError(f"plan failed: {result.reason}")
                    actions, iters = result.actions, result.iterations_run
                if rep:
                    times.append(ms)
                    iterations.append(iters)
                    energies.append(final_energy(model, context, state, goal, actions))
        config = setting if isinstance(setting, dict) else {
            k: getattr(setting, k) for k in ("samples", "iterations", "elites", "momentum_mean", "momentum_std",
                                             "early_stop_patience", "early_stop_rtol", "keep_elites", "include_mean")}
        ms = statistics.median(times)
        return {"setting": config, "ms_per_action": ms, "iterations_run": statistics.median(iterations),
                "final_energy": statistics.median(energies), "problems": len(times),
                "paper_ms_per_action": PAPER_MS_PER_ACTION, "times_faster_than_paper": PAPER_MS_PER_ACTION / ms}

    results = guarded_items([name for name, _ in rows], run, budget, device)
    return {"model": sizes.planning_model.preset, "parameters": parameters(model), "action_dim": len(_box()["low"]),
            "action_box": [-BOX, BOX], "horizon": 1,
            "compute": "bf16 autocast" if device == "cuda" else "fp32",
            "peak_memory_gb": peak_gb(device), "rows": results}


class SyntheticFeatures:
    """In-memory stand-in for `train.TrainingData`: `n` clips of random layer-normed features, states inside the
    state box and their differences as actions (what `PredictorRecipe.batch` reads)."""

    def __init__(self, n: int, clip_len: int, tokens: int, dim: int, state_space: Any, seed: int = 0) -> None:
        self.n, self.clip_len, self.tokens, self.dim = n, clip_len, tokens, dim
        self.state_space = state_space
        self.state_names = tuple(state_space.names)
        self.seed = seed

    def __len__(self) -> int:
        return self.n

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from jepa_world_model.networks.features import layer_norm_features

        gen = torch.Generator().manual_seed(self.seed + int(indices[0]))
        b, t = len(indices), self.clip_len
        features = layer_norm_features(torch.randn(b, t, self.tokens, self.dim, generator=gen))
        low = torch.tensor(self.state_space.low, dtype=torch.float32)
        high = torch.tensor(self.state_space.high, dtype=torch.float32)
        start = (low + high) / 2 + 0.1 * (high - low) * (torch.rand(b, 1, len(low), generator=gen) - 0.5)
        steps = 0.01 * (high - low) * (torch.rand(b, t - 1, len(low), generator=gen) - 0.5)
        states = torch.cat([start, start + steps.cumsum(1)], dim=1)
        return features, states[:, 1:] - states[:, :-1], states


class SyntheticClips:
    """In-memory stand-in for `pretrain.ClipData`: `n` clips of random uint8 frames (B, T, H, W, 3)."""

    def __init__(self, n: int, clip_len: int, size: int, seed: int = 0) -> None:
        self.n, self.clip_len, self.size, self.seed = n, clip_len, size, seed

    def __len__(self) -> int:
        return self.n

    def batch(self, indices: np.ndarray, still: np.ndarray) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed + int(indices[0]))
        clips = torch.randint(0, 256, (len(indices), self.clip_len, self.size, self.size, 3), dtype=torch.uint8,
                              generator=gen)
        for i, frozen in enumerate(still):
            if frozen:
                clips[i] = clips[i, :1]
        return clips


def optimizer_steps(recipe: Any, session: Any, steps: int) -> tuple[list[float], list[float]]:
    """One warm-up and `steps` timed optimizer steps of `recipe`, as one step of `loop.run_loop` does them:
    learning rate, batch, loss under bf16 autocast on CUDA, backward, gradient clipping, AdamW, the recipe's update
    after it, the watched numbers. Returns (ms of each timed step, loss of each step)."""
    device = session.device.type
    total = steps + 1
    times, losses = [], []
    for step in range(total):
        def one() -> float:
            lr = recipe.learning_rate(step, total)
            for group in recipe.optimizer.param_groups:
                group["lr"] = lr
            batch = recipe.batch(step)
            with compute_context(device):
                result = recipe.loss(recipe.module, batch)
            recipe.optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            torch.nn.utils.clip_grad_norm_(recipe.module.parameters(), recipe.cfg.clip_grad)
            recipe.optimizer.step()
            recipe.after_update(step, total)
            recipe.observe(result)
            return recipe.loss_values(result.logged)["loss"]

        loss, ms = _timed(one, device)
        losses.append(loss)
        if step:
            times.append(ms)
    return times, losses


def _step_result(times: list[float], losses: list[float], device: str, **facts: Any) -> dict:
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"non-finite loss: {losses}")
    return {**facts, "ms_per_step": statistics.median(times), "steps_timed": len(times), "losses": losses,
            "peak_memory_gb": peak_gb(device)}


def train_section(sizes: Sizes, device: str, budget: Budget) -> dict:
    """Optimizer steps of `jepa train` (predictor on frozen-encoder features) on in-memory random features."""
    from types import SimpleNamespace

    from jepa_world_model.presets import predictor_preset
    from jepa_world_model.training.distributed import start_session
    from jepa_world_model.training.errors import TrainingError
    from jepa_world_model.training.train import HeldOut, PredictorRecipe, TrainConfig, build_predictor

    preset = predictor_preset(sizes.predictor).replace(**dict(sizes.predictor_overrides))
    grid = preset.grid_size[0]
    with tempfile.TemporaryDirectory() as out:  # nothing is written: no checkpoint, no metrics
        cfg = TrainConfig(data=[], out=out, encoder="synthetic", predictor=sizes.predictor,
                          batch_size=sizes.train_batch, clip_len=sizes.train_clip_len,
                          rollout_steps=sizes.train_rollout_steps, steps=sizes.steps + 1, progress=False,
                          device=device, torch_threads=0)
        session = start_session(cfg.device, cfg.batch_size, TrainingError)
        data = SyntheticFeatures(64, cfg.clip_len, grid * grid, preset.embed_dim, preset.state_space)
        predictor = build_predictor(cfg, preset.embed_dim, grid, cfg.clip_len, preset.action_space,
                                    preset.state_space).to(session.device).train()
        encoder = SimpleNamespace(model_id="synthetic features")  # the recipe only records the encoder's id
        reset_peak(device)
        recipe = PredictorRecipe(cfg, session, encoder, {}, predictor, data, HeldOut([], []), cfg.steps)
        times, losses = optimizer_steps(recipe, session, sizes.steps)
    return _step_result(times, losses, device, predictor=sizes.predictor, parameters=parameters(predictor),
                        batch=cfg.batch_size, clip_len=cfg.clip_len, rollout_steps=cfg.rollout_steps,
                        tokens_per_frame=grid * grid, embed_dim=preset.embed_dim,
                        compute="bf16 autocast" if device == "cuda" else "fp32")


def pretrain_section(sizes: Sizes, device: str, budget: Budget) -> dict:
    """Optimizer steps of `jepa pretrain` (masked prediction against the EMA target) on in-memory random clips."""
    from jepa_world_model.training.distributed import start_session
    from jepa_world_model.training.pretrain import EncoderRecipe, PretrainConfig, PretrainError, build_encoder

    width, depth, heads = sizes.mask_predictor
    with tempfile.TemporaryDirectory() as out:  # nothing is written: no checkpoint, no metrics
        cfg = PretrainConfig(data=[], out=out, encoder=sizes.pretrain_encoder,
                             encoder_overrides=dict(sizes.pretrain_overrides), predictor_width=width,
                             predictor_depth=depth, predictor_heads=heads, steps=sizes.steps + 1,
                             batch_size=sizes.pretrain_batch, clip_len=sizes.pretrain_clip_len, progress=False,
                             device=device)
        session = start_session(cfg.device, cfg.batch_size, PretrainError)
        online = build_encoder(cfg).to(session.device).train()
        data = SyntheticClips(64, cfg.clip_len, online.config.crop_size)
        reset_peak(device)
        recipe = EncoderRecipe(cfg, session, online, data, cfg.steps)
        times, losses = optimizer_steps(recipe, session, sizes.steps)
    return _step_result(times, losses, device, encoder=sizes.pretrain_encoder,
                        encoder_parameters=parameters(online), predictor_parameters=parameters(recipe.predictor),
                        batch=cfg.batch_size, clip_len=cfg.clip_len, crop_size=online.config.crop_size,
                        tokens_per_clip=online.num_tokens(num_frames=cfg.clip_len),
                        compute="bf16 autocast" if device == "cuda" else "fp32")


SECTION_FUNCTIONS: dict[str, Callable[[Sizes, str, Budget], dict]] = {
    "encoder": encoder_section, "predictor": predictor_section, "planning": planning_section,
    "train_step": train_section, "pretrain_step": pretrain_section}


# ---------------------------------------------------------------------------------------------------- report
def _fmt(value: Any, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def summary_lines(report: dict) -> list[str]:
    """One line per measured model / row, plus the run's state."""
    lines = [f"gpu check ({'SMOKE, ' if report['smoke'] else ''}{report['machine'].get('gpu', report['device'])}):"
             f" {report['elapsed_s']:.0f} s, finished={report['finished']}"]
    for name, section in report["sections"].items():
        status = section["status"]
        if status != "ok":
            detail = f": {section['error']}" if "error" in section else ""
            lines.append(f"{name}: {status}{detail}")
            if "results" not in section:
                continue
        results = section["results"]
        items = results.get("models") or results.get("rows")
        if items is None:
            lines.append(f"{name}: {_fmt(results.get('ms_per_step'))} ms/step, peak "
                         f"{_fmt(results.get('peak_memory_gb'), '.2f')} GB")
            continue
        for item in items:
            label = f"{name} {item['name']}"
            if "error" in item or "skipped" in item:
                lines.append(f"{label}: {item.get('error') or 'skipped: ' + item['skipped']}")
            elif name == "encoder":
                for kind, r in item["inputs"].items():
                    lines.append(f"{label} {kind}: fp32 {_fmt(r['fp32_ms_per_clip'])} / bf16 "
                                 f"{_fmt(r['bf16_ms_per_clip'])} ms per {kind}, cosine "
                                 f"{_fmt(r['parity']['cosine'], '.5f')}")
            elif name == "predictor":
                lines.append(f"{label}: rollout of {item['rollout_batch']} fp32 {_fmt(item['fp32_ms_per_rollout'])} / "
                             f"bf16 {_fmt(item['bf16_ms_per_rollout'])} ms, cosine "
                             f"{_fmt(item['parity']['cosine'], '.5f')}")
            else:
                lines.append(f"{label}: {_fmt(item['ms_per_action'])} ms/action "
                             f"({_fmt(item['times_faster_than_paper'], '.2f')}x the paper's 16 s)")
    return lines


def write_json(report: dict, path: Path) -> None:
    """Write `report` (with its summary) to `path` atomically."""
    report["summary"] = summary_lines(report)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)


def run_section(name: str, sizes: Sizes, device: str, budget: Budget) -> dict:
    """One section: {"status": "ok" | "partial" | "error" | "skipped: budget", "seconds", "results" | "error"}."""
    if budget.left() <= 0:
        return {"status": "skipped: budget"}
    t0 = time.monotonic()
    try:
        results = SECTION_FUNCTIONS[name](sizes, device, budget)
    except Exception as exc:  # noqa: BLE001 - recorded, the next section runs
        return {"status": "error", "seconds": time.monotonic() - t0, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=-4)}
    finally:
        release(device)
    items = results.get("models") or results.get("rows") or []
    failed = [i for i in items if "error" in i or "skipped" in i]
    status = "ok" if not failed else ("partial" if len(failed) < len(items) else "error")
    return {"status": status, "seconds": time.monotonic() - t0, "results": results}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jepa_episodes.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--smoke", action="store_true", help="tiny models, scaled-down settings, one repeat")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="sections and models not started by then are skipped (default: %(default)s)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="NAME",
                        help=f"sections to run, in the order {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--encoders", nargs="+", default=None, metavar="SOURCE",
                        help="encoders of the encoder section: presets, checkpoint directories or official .pt "
                             "files (load_encoder sources; default: vit_l vit_g, with --smoke: tiny)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on --device cpu, as `jepa bench planner`: on a shared "
                             "machine more threads made the small models several times slower; torch's default "
                             "with cuda)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected sections and write the JSON (after each section; progress on stderr); 0 once the JSON is complete, also when sections recorded errors (the JSON says which)."""
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("--device cuda requested but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    if threads is not None:
        if threads < 1:
            print(f"--threads must be >= 1, got {threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(threads)
    sizes = SMOKE if args.smoke else FULL
    if args.encoders:
        sizes = dataclasses.replace(sizes, encoders=tuple(args.encoders))
    machine = machine_info(device)
    if device == "cuda":
        machine["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    machine["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "smoke": args.smoke, "finished": False, "device": device,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": 0.0, "budget_s": args.budget_s, "machine": machine,
        "settings": {"sizes": sizes.record(), "paper_ms_per_action": PAPER_MS_PER_ACTION,
                     "shipped_cem": {k: v for k, v in dataclasses.asdict(CEMConfig(**_box())).items()
                                     if k not in ("low", "high", "fixed_dims", "constraints")},
                     "sections": list(args.sections)},
        "sections": {name: {"status": "skipped: not selected"} for name in SECTIONS if name not in args.sections}}
    for name in SECTIONS:
        if name in args.sections:
            print(f"gpu check: {name} ...", file=sys.stderr, flush=True)
            section = report["sections"][name] = run_section(name, sizes, device, budget)
            report["elapsed_s"] = budget.elapsed()
            write_json(report, out)
            print(f"gpu check: {name}: {section['status']} ({section.get('seconds', 0.0):.1f} s)", file=sys.stderr,
                  flush=True)
    report["sections"] = {name: report["sections"][name] for name in SECTIONS}
    report["finished"] = True
    report["elapsed_s"] = budget.elapsed()
    write_json(report, out)
    print(f"wrote {out} ({report['elapsed_s']:.0f} s; its \"summary\" lists the results line by line)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the planner's predictor rollout under the CPU inference paths torch and ONNX Runtime offer (issue 25).

Job: for the shipped trained models on real planning problems (`jepa_episodes.bench.TrainedProblems`: "default"
= reach, 64 samples x up to 3 iterations, 1 frame per rollout; "push_default" = push, 40 samples, each action
held 8 steps, 8 frames per rollout), time per inference path

- one rollout batch like the planner's (the deployed sample count, through the prepared context the planner
  uses: `ACPredictor.prepare_context(...).rollout(actions)`, via `HeldActions` for push), and
- one CEM plan with the deployed planner configuration (`CEMPlanner` over the path's model),

and check the path's accuracy: the largest |prediction - eager fp32 prediction| on the timing batch, and the
energy of the path's plan re-evaluated with the eager fp32 model (the deployed ranking: final frame for reach,
closest frame of the hold for push) against the eager plan's, as a relative difference. The seed noise (eager
planned with another CEM seed) says what "equal within noise" means.

Paths (`PATHS`): eager fp32 (1 and 2 torch threads), the eager un-prepared `rollout` (what the ONNX export
computes), `torch.compile` of every predictor block's cached/split forward (dynamic shapes: the key/value cache
grows by one frame per step) in the default and "max-autotune-no-cudagraphs" modes, int8 dynamic quantisation
of the blocks' and the readout's `nn.Linear` (`torch.ao.quantization.quantize_dynamic`, deprecated in torch 2.13)
and the same with torchao's `quantize_` (its named replacement), ONNX Runtime on the exported un-prepared rollout
(the horizon unrolled, dynamic batch; `onnxruntime`, `onnx` and `onnxscript` are not project requirements), and
bf16 autocast.

Rules: variants are measured side by side: in every repeat each path runs once (batch timing, then a plan) in
an order rotated by repeat, and per-path ratios to eager at 1 thread are medians of the per-repeat ratios. A
path's build and first use (compilation, export) are timed separately ("setup s"). A path whose library is
missing is reported as "not installed", one that fails to build or run as "failed: ..."; neither stops the run.
The predictor and planner code are used as shipped (variants are built on copies of the loaded predictor).

Run: `.venv/bin/python -m jepa_episodes.inference_paths --json PATH [--quick] [--paths NAME ...]`.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import re
import statistics
import tempfile
import time
import warnings
from unittest import mock
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from jepa_episodes.bench import TrainedProblems, machine_info, problem_seed
from jepa_planner.cem import CEMPlanner
from jepa_planner.held_actions import HeldActions
from jepa_world_model.networks import rollout as rollout_module

BASELINE = "eager@1"
MODEL_SETS = ("default", "push_default")
COMPILE_MODES = {"compile": "default", "compile-max-autotune": "max-autotune-no-cudagraphs"}


class NotInstalled(Exception):
    """The path's library is not importable."""


@dataclass
class Variant:
    """A built path for one model set: `model` is what the planner gets (rollout/prepare_context/max_horizon/
    config, `HeldActions` for push), `setup_s` the build time, `warnings` what the build warned."""

    model: Any
    setup_s: float
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InferencePath:
    """A way to run the predictor: `build(predictor, problems, threads)` -> the predictor-level model (for push
    it is wrapped in `HeldActions` afterwards); `why_not` is filled in when the path cannot be run here."""

    name: str
    threads: int
    build: Callable[[nn.Module, TrainedProblems, int], Any]
    description: str

    @property
    def key(self) -> str:
        return f"{self.name}@{self.threads}"


# -- the paths ----------------------------------------------------------------------------------------------------
def build_eager(predictor: nn.Module, problems: TrainedProblems, threads: int) -> nn.Module:
    """The shipped predictor as is."""
    return predictor


class Unprepared:
    """A predictor seen without `prepare_context`: the planner calls the plain cached `rollout` per chunk."""

    def __init__(self, predictor: nn.Module) -> None:
        self.predictor = predictor
        self.max_horizon = predictor.max_horizon
        self.config = predictor.config

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.predictor.rollout(context, state, actions)


def build_eager_plain(predictor: nn.Module, problems: TrainedProblems, threads: int) -> Unprepared:
    """Eager, un-prepared rollout (the computation the ONNX path exports)."""
    return Unprepared(predictor)


def build_compiled(mode: str) -> Callable[[nn.Module, TrainedProblems, int], nn.Module]:
    """A builder compiling every block's `forward_cached` and `forward_split` on a copy of the predictor."""

    def build(predictor: nn.Module, problems: TrainedProblems, threads: int) -> nn.Module:
        # both blocks, both compile modes and every cache length share two code objects: room for all their
        # graphs (the default limit of 8 made later variants fall back to recompiling)
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
        torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit,
                                                               4096)
        model = copy.deepcopy(predictor)
        for block in model.predictor_blocks:
            block.forward_cached = torch.compile(block.forward_cached, dynamic=True, mode=mode)
            block.forward_split = torch.compile(block.forward_split, dynamic=True, mode=mode)
        return model

    return build


def build_int8(predictor: nn.Module, problems: TrainedProblems, threads: int) -> nn.Module:
    """int8 dynamic quantisation (weights int8, activations quantised per batch) of the blocks' and the readout's
    linear layers. The input embeddings stay fp32: the rollout reads `predictor_embed.weight` for the dtype, and
    the 3-wide action/state encoders gain nothing."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    names = {name: default_dynamic_qconfig for name, module in predictor.named_modules()
             if isinstance(module, nn.Linear) and (name.startswith("predictor_blocks.") or name == "predictor_proj")}
    return quantize_dynamic(copy.deepcopy(predictor), names, dtype=torch.qint8)


def build_torchao_int8(predictor: nn.Module, problems: TrainedProblems, threads: int) -> nn.Module:
    """The same layers with torchao's `quantize_` (int8 dynamic activations, int8 weights): the replacement
    torch's deprecation warning on `torch.ao.quantization.quantize_dynamic` points to."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as err:
        raise NotInstalled(str(err)) from err
    model = copy.deepcopy(predictor)
    quantize_(model, Int8DynamicActivationInt8WeightConfig(),
              filter_fn=lambda m, name: isinstance(m, nn.Linear) and (name.startswith("predictor_blocks.")
                                                                      or name == "predictor_proj"))
    return model


class Autocast:
    """A predictor whose rollouts (plain and prepared) run under CPU autocast to `dtype`."""

    def __init__(self, predictor: nn.Module, dtype: torch.dtype) -> None:
        self.predictor, self.dtype = predictor, dtype
        self.max_horizon = predictor.max_horizon
        self.config = predictor.config

    def _autocast(self) -> torch.autocast:
        return torch.autocast("cpu", dtype=self.dtype)

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.predictor.rollout(context, state, actions).float()

    def prepare_context(self, context: torch.Tensor, state: torch.Tensor) -> "_AutocastPrepared":
        with self._autocast():
            return _AutocastPrepared(self, self.predictor.prepare_context(context, state))


class _AutocastPrepared:
    def __init__(self, owner: Autocast, prepared: Any) -> None:
        self.owner, self.prepared = owner, prepared
        self.preferred_batch = prepared.preferred_batch

    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        with self.owner._autocast():
            return self.prepared.rollout(actions).float()


def build_bf16(predictor: nn.Module, problems: TrainedProblems, threads: int) -> Autocast:
    """bf16 autocast around the shipped predictor."""
    return Autocast(predictor, torch.bfloat16)


class _UnrolledRollout(nn.Module):
    """The body of `rollout_module.rollout` for a one-frame context (the planner's), as a module for export: the
    horizon loop unrolls at trace time. The input checks are left out (their data-dependent `isfinite(...).all()`
    cannot be exported); the keys/values cache and `continue_rollout` are the library's."""

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        p, cfg = self.predictor, self.predictor.config
        keep = actions.shape[1] > 1
        x = p.tokens(p.predictor_embed(context[:, -1]).unsqueeze(1), p.normalise(actions[:, :1], cfg.action_space),
                     p.normalise(state[:, -1:], cfg.state_space))
        cos, sin = p.rope(0, 1, x.device)
        past: list = []
        for block in p.predictor_blocks:
            x, kv = block.forward_cached(x, cos, sin, None)
            past.append(kv if keep else None)
        return rollout_module.continue_rollout(p, x, past, context[:, -1], state[:, -1], actions, 0)


class OrtRollout:
    """An ONNX Runtime session of the exported un-prepared rollout at one horizon, as a planner model."""

    def __init__(self, session: Any, predictor: nn.Module, horizon: int) -> None:
        self.session, self.horizon = session, horizon
        self.max_horizon = predictor.max_horizon
        self.config = predictor.config
        self.names = [i.name for i in session.get_inputs()]

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if actions.shape[1] != self.horizon:
            raise ValueError(f"exported for horizon {self.horizon}, got {actions.shape[1]}")
        feeds = dict(zip(self.names, (t.detach().float().contiguous().numpy() for t in (context, state, actions))))
        return torch.from_numpy(self.session.run(None, feeds)[0])


def linear_next_state(config: Any) -> Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]:
    """`state_update.next_state` for an additive state update as `state + action @ M` (M: the library's
    `next_state` of unit actions from a zero state), checked against the library on random inputs. Used for the
    export only: torch 2.13's ONNX exporter mistranslates the `index_add` in `next_state` (the exported rollout
    was off by up to 3.5 from the second frame on)."""
    from jepa_world_model.networks.state_update import next_state

    eye = torch.eye(config.action_dim)
    increments = next_state(config, torch.zeros(config.action_dim, config.state_dim), eye)

    def step(cfg: Any, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return state + action.to(state.dtype) @ increments.to(state.dtype)

    g = torch.Generator().manual_seed(0)
    state, action = torch.randn(16, config.state_dim, generator=g), torch.randn(16, config.action_dim, generator=g)
    if not torch.allclose(step(config, state, action), next_state(config, state, action), atol=1e-6):
        raise ValueError(f"state_update {config.state_update!r} is not a linear add; no exportable next_state")
    return step


def build_onnxruntime(predictor: nn.Module, problems: TrainedProblems, threads: int) -> OrtRollout:
    """Export the un-prepared cached rollout at the deployed frame count with a dynamic batch
    (`torch.onnx.export`, dynamo exporter) and open it in ONNX Runtime with `threads` intra-op threads."""
    try:
        import onnxruntime as ort
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise NotInstalled(str(err)) from err
    horizon = problems.config.horizon * getattr(problems.model, "frames_per_action", 1)
    model = copy.deepcopy(predictor)
    model.rollout_chunk_size = 1 << 20  # one pass for any batch: no data-dependent chunking in the graph
    context, state, _ = problems.make(1, seed=0)
    actions = torch.zeros(8, horizon, model.config.action_dim)
    model.rollout(context, state, actions)  # fills the rotary tables' cache outside the trace
    batch = torch.export.Dim("batch", min=1, max=4096)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "rollout.onnx")
        with torch.no_grad(), mock.patch.object(rollout_module, "next_state", linear_next_state(model.config)):
            torch.onnx.export(_UnrolledRollout(model).eval(), (context, state, actions), path, dynamo=True,
                              input_names=["context", "state", "actions"], output_names=["predictions"],
                              dynamic_shapes={"context": None, "state": None, "actions": {0: batch}},
                              external_data=False, verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return OrtRollout(session, predictor, horizon)


PATHS: tuple[InferencePath, ...] = (
    InferencePath("eager", 1, build_eager, "fp32, prepared context (deployed)"),
    InferencePath("eager", 2, build_eager, "fp32, prepared context, 2 threads (no cache-sized chunks)"),
    InferencePath("eager-plain", 1, build_eager_plain, "fp32, plain cached rollout (no prepared context)"),
    InferencePath("compile", 1, build_compiled("default"), "torch.compile of each block, dynamic=True"),
    InferencePath("compile-max-autotune", 1, build_compiled("max-autotune-no-cudagraphs"),
                  "torch.compile mode max-autotune-no-cudagraphs, dynamic=True"),
    InferencePath("int8-dynamic", 1, build_int8, "quantize_dynamic qint8 on block + readout nn.Linear"),
    InferencePath("torchao-int8", 1, build_torchao_int8, "torchao quantize_ int8 dyn. act. + int8 weights"),
    InferencePath("onnxruntime", 1, build_onnxruntime, "ORT CPU EP, exported plain rollout (horizon unrolled)"),
    InferencePath("bf16-autocast", 1, build_bf16, "torch.autocast('cpu', bfloat16)"),
)
QUICK_PATHS = ("eager@1", "int8-dynamic@1")


# -- measuring ----------------------------------------------------------------------------------------------------
def planner_model(path_model: Any, problems: TrainedProblems) -> Any:
    """The path's predictor-level model as the deployed planner rolls it out (held for push)."""
    steps = getattr(problems.model, "steps", 1)
    return HeldActions(path_model, steps) if isinstance(problems.model, HeldActions) else path_model


def batch_rollout(model: Any, context: torch.Tensor, state: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """What one planner rollout call runs: the prepared context's rollout, else the plain one, chunked as
    the planner chunks it (`preferred_batch`)."""
    prepare = getattr(model, "prepare_context", None)
    if not callable(prepare):
        return lambda actions: model.rollout(context, state, actions)
    prepared = prepare(context, state)
    chunk = getattr(prepared, "preferred_batch", None)

    def run(actions: torch.Tensor) -> torch.Tensor:
        step = chunk or actions.shape[0]
        return torch.cat([prepared.rollout(actions[i:i + step]) for i in range(0, actions.shape[0], step)])

    return run


def timing_actions(problems: TrainedProblems, seed: int) -> torch.Tensor:
    """A planner-sized batch (deployed samples, horizon) of actions uniform in the deployed box."""
    cfg = problems.config
    g = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(cfg.low), torch.tensor(cfg.high)
    actions = low + (high - low) * torch.rand(cfg.samples, cfg.horizon, len(cfg.low), generator=g)
    for dim, value in cfg.fixed_dims.items():
        actions[..., dim] = value
    return actions


def eager_energy(planner: CEMPlanner, context: torch.Tensor, state: torch.Tensor, goal: torch.Tensor,
                 actions: torch.Tensor) -> float:
    """A plan's energy under the eager fp32 model with the deployed ranking (`planner` is the eager one)."""
    with torch.inference_mode():
        pred = planner.model.rollout(context, state, actions[None])
        return float(planner._rank_energies(pred.float(), goal)[0])  # the planner's own ranking


def _failure(err: Exception) -> str:
    """One line for a path that failed (terminal colour codes removed)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return f"failed: {type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1e3


def build_variant(path: InferencePath, problems: TrainedProblems) -> Variant:
    """Build `path` for `problems` and use it once (batch + plan) so compilation counts as setup."""
    torch.set_num_threads(path.threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = planner_model(path.build(problems.predictor, problems, path.threads), problems)
        context, state, goal = problems.make(1, seed=0)
        actions = timing_actions(problems, 0)
        run = batch_rollout(model, context, state)
        run(actions)
        run(actions[:1])
        CEMPlanner(model, problems.loop.loop.planner.energy, problems.config).plan(context, state, goal)
    seen = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught
                              if issubclass(w.category, (DeprecationWarning, FutureWarning))))
    return Variant(model, time.perf_counter() - t0, seen)


def measure_model(name: str, paths: Sequence[InferencePath], repeats: int, calls: int) -> dict:
    """Every path on model set `name`: setup, then `repeats` interleaved repeats (problem seed per repeat)."""
    problems = TrainedProblems(name, "cpu")
    try:
        energy = problems.loop.loop.planner.energy
        eager_planner = CEMPlanner(problems.model, energy, problems.config)
        status: dict[str, str] = {}
        variants: dict[str, Variant] = {}
        for path in paths:
            try:
                variants[path.key] = build_variant(path, problems)
            except NotInstalled as err:
                status[path.key] = f"not installed ({err})"
            except Exception as err:  # noqa: BLE001 -- a path that cannot run is a result, not a crash
                status[path.key] = _failure(err)
        planners = {k: CEMPlanner(v.model, energy, problems.config) for k, v in variants.items()}
        by_key = {p.key: p for p in paths}
        runs: dict[str, dict[str, list[float]]] = {k: {"batch_ms": [], "plan_ms": [], "energy": [],
                                                       "pred_diff": []} for k in variants}
        noise = []
        for rep in range(repeats):
            seed = problem_seed(rep + 1)
            context, state, goal = problems.make(1, seed=seed)
            actions = timing_actions(problems, seed)
            torch.set_num_threads(1)
            with torch.inference_mode():
                reference = batch_rollout(problems.model, context, state)(actions)
            eager_planner.reset()
            reference_plan = eager_planner.plan(context, state, goal)
            other = CEMPlanner(problems.model, energy, dataclasses.replace(problems.config, seed=1))
            reference_energy = eager_energy(eager_planner, context, state, goal, reference_plan.actions)
            other_energy = eager_energy(eager_planner, context, state, goal, other.plan(context, state, goal).actions)
            noise.append(abs(other_energy - reference_energy) / reference_energy)
            keys = list(variants)
            keys = keys[rep % len(keys):] + keys[:rep % len(keys)]
            for key in keys:
                torch.set_num_threads(by_key[key].threads)
                try:
                    with torch.inference_mode():
                        run = batch_rollout(variants[key].model, context, state)
                        pred, _ = _timed(lambda: run(actions))
                        ms = [_timed(lambda: run(actions))[1] for _ in range(calls)]
                    planners[key].reset()
                    plan, plan_ms = _timed(lambda: planners[key].plan(context, state, goal))
                except Exception as err:  # noqa: BLE001
                    status[key] = _failure(err)
                    continue
                torch.set_num_threads(1)
                r = runs[key]
                r["batch_ms"].append(statistics.median(ms))
                r["plan_ms"].append(plan_ms)
                energy_now = eager_energy(eager_planner, context, state, goal, plan.actions)
                r["energy"].append(energy_now / reference_energy - 1)
                r["pred_diff"].append(float((pred.float() - reference).abs().max()))
        base = runs.get(BASELINE)
        rows = []
        for path in paths:
            key = path.key
            row: dict[str, Any] = {"path": path.name, "threads": path.threads, "description": path.description,
                                   "status": status.get(key, "ok")}
            r = runs.get(key)
            if key in variants:
                row.update(setup_s=variants[key].setup_s, warnings=variants[key].warnings)
            if r and r["batch_ms"] and row["status"] == "ok":
                row.update(
                    batch_ms=statistics.median(r["batch_ms"]), plan_ms=statistics.median(r["plan_ms"]),
                    batch_ms_all=r["batch_ms"], plan_ms_all=r["plan_ms"],
                    energy_rel_diff_median=statistics.median(r["energy"]),
                    energy_rel_diff_max_abs=max(abs(e) for e in r["energy"]),
                    max_abs_pred_diff=max(r["pred_diff"]))
                if base and len(base["batch_ms"]) == len(r["batch_ms"]):
                    row["batch_ratio"] = statistics.median(b / a for a, b in zip(r["batch_ms"], base["batch_ms"]))
                    row["plan_ratio"] = statistics.median(b / a for a, b in zip(r["plan_ms"], base["plan_ms"]))
            rows.append(row)
        cfg = problems.config
        return {"model": name, "task": problems.task, "samples": cfg.samples, "iterations": cfg.iterations,
                "frames_per_rollout": cfg.horizon * getattr(problems.model, "frames_per_action", 1),
                "energy_mode": cfg.energy_mode, "repeats": repeats, "calls_per_repeat": calls,
                "seed_noise_rel_median": statistics.median(noise), "rows": rows}
    finally:
        problems.close()
        torch._dynamo.reset()


# -- report -------------------------------------------------------------------------------------------------------
def _num(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def markdown_table(results: list[dict]) -> str:
    """One row per path: both model sets side by side."""
    by_model = {m["model"]: {f"{r['path']}@{r['threads']}": r for r in m["rows"]} for m in results}
    reach, push = by_model.get("default", {}), by_model.get("push_default", {})
    if not reach:
        reach, push = push, {}
    lines = ["| path | threads | reach ms/batch | x eager-1 | push ms/batch | x eager-1 | reach plan ms | x eager-1 "
             "| push plan ms | x eager-1 | energy diff reach / push (median, rel.) | max abs pred diff reach / push "
             "| setup s reach / push | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, a in reach.items():
        b = push.get(key, {})
        notes = [a["status"]] if a["status"] != "ok" else []
        if b and b.get("status", "ok") != "ok" and b["status"] != a["status"]:
            notes.append("push: " + b["status"])
        notes.append(a["description"])
        lines.append(
            f"| {a['path']} | {a['threads']} | {_num(a.get('batch_ms'), '.2f')} | {_num(a.get('batch_ratio'), '.2f')} "
            f"| {_num(b.get('batch_ms'), '.2f')} | {_num(b.get('batch_ratio'), '.2f')} "
            f"| {_num(a.get('plan_ms'), '.1f')} | {_num(a.get('plan_ratio'), '.2f')} "
            f"| {_num(b.get('plan_ms'), '.1f')} | {_num(b.get('plan_ratio'), '.2f')} "
            f"| {_num(a.get('energy_rel_diff_median'), '+.1e')} / {_num(b.get('energy_rel_diff_median'), '+.1e')} "
            f"| {_num(a.get('max_abs_pred_diff'), '.1e')} / {_num(b.get('max_abs_pred_diff'), '.1e')} "
            f"| {_num(a.get('setup_s'), '.1f')} / {_num(b.get('setup_s'), '.1f')} | {'; '.join(notes)} |")
    noise = " / ".join(f"{m['model']} {m['seed_noise_rel_median']:.1e}" for m in results)
    lines.append(f"\nSeed noise (median |energy(CEM seed 1) - energy(seed 0)| / energy, eager): {noise}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the paths, print the markdown table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: 1 repeat, 1 call, only {', '.join(QUICK_PATHS)} unless --paths")
    parser.add_argument("--paths", nargs="+", metavar="NAME@THREADS", choices=[p.key for p in PATHS],
                        help="paths to measure (default: all; eager@1 is always measured, as the baseline)")
    parser.add_argument("--models", nargs="+", choices=MODEL_SETS, default=list(MODEL_SETS))
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default: 12, quick 1)")
    parser.add_argument("--calls", type=int, default=None,
                        help="batch rollouts timed per repeat, their median kept (default: 5, quick 1)")
    args = parser.parse_args(argv)
    chosen = args.paths or (QUICK_PATHS if args.quick else [p.key for p in PATHS])
    paths = [p for p in PATHS if p.key == BASELINE or p.key in chosen]
    repeats = args.repeats or (1 if args.quick else 12)
    calls = args.calls or (1 if args.quick else 5)
    before = torch.get_num_threads()
    try:
        results = [measure_model(name, paths, repeats, calls) for name in args.models]
    finally:
        torch.set_num_threads(before)
    print(markdown_table(results))
    if args.json:
        info = machine_info("cpu")
        info["torch_threads"] = "per path"
        with open(args.json, "w") as f:
            json.dump({"machine": info, "date": time.strftime("%Y-%m-%d"), "quick": args.quick,
                       "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

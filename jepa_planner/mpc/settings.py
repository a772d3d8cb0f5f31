"""The planner's settings (`PlannerSettings`, the parameters of planner_node) and the CEM configuration made from
them.

Rules: the CEM defaults are `CEMConfig`'s; a bad setting raises `PlannerSetupError` naming the setting.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from jepa_common import frames
from jepa_common.settings import setting
from jepa_planner.action_space import ActionSpaceError
from jepa_planner.cem import ENERGY_MODES, CEMConfig, CEMConfigError
from jepa_planner.mpc.errors import PlannerSetupError
from jepa_world_model.data.image_encoding import CROP_MODES

MODES = ("step", "continuous")
#: The goal tolerance for a predictor without a calibrated planning_tolerance (presets, official files).
FALLBACK_TOLERANCE = 0.015
_CEM = {f.name: f.default for f in dataclasses.fields(CEMConfig)}


@dataclass(frozen=True)
class PlannerSettings:
    """The planner's settings (parameters of planner_node). The CEM defaults are `CEMConfig`'s."""

    predictor: str = setting("tiny", "action-conditioned predictor: preset name, checkpoint directory or official "
                             ".pt file (it gives the action and state spaces)", read_only=True)
    encoder: str = setting("", "encoder for goal images; empty or auto = the encoder saved with the predictor; "
                           "must be the perception node's model (embeddings with another model_id are refused)",
                           read_only=True)
    device: str = setting("auto", "torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N",
                          read_only=True)
    torch_threads: int = setting(1, "torch CPU threads; 0 = torch's default (1 suits the tiny models on a shared "
                                 "CPU)", low=0, high=1024, read_only=True)
    crop: str = setting("center", "goal images: center = centre-crop to the input aspect then resize, none = "
                        "resize the whole frame (as the perception node)", choices=CROP_MODES, read_only=True)
    image_size: int = setting(0, "goal images: encoder input size; 0 = the encoder's crop size (as the perception "
                              "node)", unit="px", low=0, high=8192, read_only=True)
    samples: int = setting(_CEM["samples"], "CEM action sequences sampled per iteration", low=1, high=1_000_000)
    iterations: int = setting(_CEM["iterations"], "CEM iterations per plan (at most)", low=1, high=10_000)
    elites: int = setting(_CEM["elites"], "CEM elites refitted per iteration (<= samples)", low=1, high=1_000_000)
    horizon: int = setting(_CEM["horizon"], "plan length in control steps (<= the predictor's max horizon); keep "
                           "camera latency + planning time below the controller's plan_timeout", low=1, high=1024)
    momentum: float = setting(_CEM["momentum_mean"], "CEM smoothing of the sampling mean and std (0 = none)",
                              low=0.0, high=0.999)
    init_std: float = setting(0.0, "initial sampling std; 0 = half of each axis' box width", unit="action units",
                              low=0.0, high=1e6)
    action_low: tuple = setting((), "per-axis action lower bounds; empty = the predictor's action space",
                                unit="action units")
    action_high: tuple = setting((), "per-axis action upper bounds; empty = the predictor's action space",
                                 unit="action units")
    l1_radius: float = setting(0.0, "L1-ball radius of each action step; 0 = off", unit="action units",
                               low=0.0, high=1e6)
    fixed_dims: str = setting("", "action dims held at a value: name=value pairs separated by commas (e.g. "
                              "'dz=0.0'); empty = none")
    gripper_action: str = setting("", "action dim of the gripper (by name, e.g. 'dgripper'), snapped to 0 when its "
                                  "magnitude is below gripper_threshold: the gripper moves only on a clear open or "
                                  "close; empty = no snapping")
    gripper_threshold: float = setting(_CEM["gripper_threshold"], "gripper_action values of a smaller magnitude "
                                       "are snapped to 0 (needs gripper_action)", unit="action units", low=0.0,
                                       high=1e6)
    seed: int = setting(_CEM["seed"], "CEM random seed (the stream restarts with every ReachGoal)", low=0,
                        high=2**31 - 1)
    energy_mode: str = setting(_CEM["energy_mode"], "CEM ranking: final = last step's energy, all = mean over "
                               "steps, closest = lowest energy of any predicted frame (with lookahead_steps > 1: "
                               "where a held action comes closest to the goal)", choices=ENERGY_MODES)
    lookahead_steps: int = setting(1, "score each planned action as if it were held for this many control steps "
                                   "(a straight-line lookahead, jepa_planner.held_actions; horizon x "
                                   "lookahead_steps <= the predictor's max horizon); only the first step is "
                                   "executed before the next plan; 1 = off", low=1, high=1024)
    early_stop_patience: int = setting(_CEM["early_stop_patience"], "stop CEM after this many iterations without "
                                       "improvement; 0 = always run every iteration", low=0, high=10_000)
    early_stop_rtol: float = setting(_CEM["early_stop_rtol"], "relative energy improvement below which an "
                                     "iteration counts as no improvement", low=0.0, high=1.0)
    final_mean: bool = setting(_CEM["final_mean"], "after the last CEM iteration also roll out the refit mean (one "
                               "more predictor call per plan; the plan is then never worse than the mean)")
    quasi_random: bool = setting(_CEM["quasi_random"], "draw CEM samples from a scrambled Sobol sequence (even "
                                 "coverage of the action box with few samples) instead of pseudo-random Gaussians")
    action_cost: float = setting(_CEM["action_cost"], "price on motion added to the CEM ranking energy: this "
                                 "times the plan's L1 length on the searched dims other than the gripper (summed "
                                 "over its steps); 0 = off", unit="energy per action unit", low=0.0, high=1e6)
    include_neutral: bool = setting(_CEM["include_neutral"], "also score the plan that does nothing (the "
                                    "action closest to zero) in every plan's first CEM iteration, so that holding "
                                    "still near the goal competes with the previous plan's move")
    warm_std: float = setting(_CEM["warm_std"], "sampling std of a plan warm-started from the previous one (the "
                              "same goal), relative to init_std; 1 = as wide as a cold start", low=0.01, high=1.0)
    mode: str = setting("step", "step: plan on a frame stamped settle_time after the previous plan went out; "
                        "continuous: plan on every new frame", choices=MODES)
    plan_rate: float = setting(50.0, "how often the node looks for a usable frame", unit="Hz", low=0.1,
                               high=1000.0, read_only=True)
    settle_time: float = setting(0.1, "step mode: a frame must be stamped this long after the previous plan went "
                                 "out (one action's execution time, the controller's step_duration)", unit="s",
                                 low=0.0, high=60.0)
    min_plan_interval: float = setting(0.0, "least wall time between two plans", unit="s", low=0.0, high=3600.0)
    embedding_timeout: float = setting(1.0, "embeddings whose camera stamp is older than this are stale: no plan",
                                       unit="s", low=0.001, high=3600.0)
    max_future_stamp: float = setting(0.2, "embeddings stamped further than this ahead of the clock are refused "
                                      "and counted", unit="s", low=0.0, high=3600.0)
    stale_abort_after: float = setting(3.0, "a ReachGoal ends with 'stale input' after this long without a fresh "
                                       "frame", unit="s", low=0.01, high=3600.0)
    default_step_budget: int = setting(50, "ReachGoal control steps per goal when the request gives none",
                                       low=1, high=1_000_000)
    default_tolerance: float = setting(0.0, "energy at or below which a goal counts as reached (ReachGoal "
                                       "requests with tolerance <= 0, and topic goals, which then get hold "
                                       "plans); 0 = the predictor's calibrated planning_tolerance (the shipped "
                                       "sim model's: 0.015, a few mm from the goal pose), else "
                                       f"{FALLBACK_TOLERANCE:g}", low=0.0, high=1e9)
    max_goal_images: int = setting(16, "ReachGoal requests with more goal_images than this are refused before "
                                   "any is encoded (they are encoded outside the planning lock, one after another)",
                                   unit="images", low=1, high=10_000)
    max_step_time: float = setting(2.0, "a ReachGoal ends with 'deadline' after its summed step budgets times "
                                   "this much wall time", unit="s", low=0.01, high=3600.0)
    visualisation: bool = setting(True, "publish what the chosen plan expects: its decoded predicted frames "
                                  "(/jepa/prediction_image) and its end-effector path (/jepa/planned_path, "
                                  "/jepa/planned_path_markers), made in a worker thread off the planning thread; "
                                  "false = no visualisation work at all")
    visualisation_rate: float = setting(2.0, "at most this many plans shown per second (the newest plan is "
                                        "shown; plans in between are skipped)", unit="Hz", low=0.01, high=100.0)
    decoder: str = setting("", "feature decoder of the prediction pictures: empty = the predictor's own, else a "
                           "shipped model name or directory; none = no pictures (the path is still published)",
                           read_only=True)
    frame_id: str = setting(frames.BASE, "frame of the states (the arm's base frame, as /ee_pose): the planned "
                            "path's frame")


def parse_fixed_dims(text: str, names: Sequence[str]) -> dict[int, float]:
    """Parse ``"dz=0.0, 3=0.5"`` (action name or index = held value) into {dim index: value}."""
    names = tuple(names)
    fixed: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise PlannerSetupError(f"fixed_dims: {item!r} is not name=value")
        if key in names:
            dim = names.index(key)
        elif key.isdigit() and int(key) < len(names):
            dim = int(key)
        else:
            raise PlannerSetupError(f"fixed_dims: {key!r} is neither an action name {list(names)} nor an index "
                                    f"below {len(names)}")
        try:
            fixed[dim] = float(value)
        except ValueError:
            raise PlannerSetupError(f"fixed_dims: value {value!r} of {key!r} is not a number") from None
    return fixed


def gripper_dim(settings: PlannerSettings, names: Sequence[str]) -> int | None:
    """The action dim of ``settings.gripper_action`` (None when empty); PlannerSetupError for an unknown name."""
    name = settings.gripper_action.strip()
    if not name:
        return None
    names = tuple(names)
    if name not in names:
        raise PlannerSetupError(f"gripper_action: {name!r} is not an action of the predictor's action space "
                                f"{list(names)} (a 7-D V-JEPA 2-AC predictor has 'dgripper')")
    return names.index(name)


def cem_config(settings: PlannerSettings, action_space: Any) -> CEMConfig:
    """The CEM configuration for `settings` on a predictor's action space; PlannerSetupError says what is wrong."""
    names = tuple(action_space.names)
    bounds = {}
    for key, default in (("action_low", action_space.low), ("action_high", action_space.high)):
        values = tuple(float(v) for v in (getattr(settings, key) or default))
        if len(values) != len(names):
            raise PlannerSetupError(f"{key} has {len(values)} values, the predictor's action space {list(names)} "
                                    f"has {len(names)}")
        bounds[key] = values
    for i, (low, high) in enumerate(zip(bounds["action_low"], bounds["action_high"])):
        if not low <= high:
            raise PlannerSetupError(f"action_low[{i}]={low:g} is not <= action_high[{i}]={high:g} ({names[i]})")
    try:
        return CEMConfig(
            low=bounds["action_low"], high=bounds["action_high"], samples=settings.samples,
            iterations=settings.iterations, elites=settings.elites, horizon=settings.horizon,
            momentum_mean=settings.momentum, momentum_std=settings.momentum, init_std=settings.init_std or None,
            l1_radius=settings.l1_radius or None, fixed_dims=parse_fixed_dims(settings.fixed_dims, names),
            seed=settings.seed, energy_mode=settings.energy_mode, early_stop_patience=settings.early_stop_patience,
            early_stop_rtol=settings.early_stop_rtol, warm_std=settings.warm_std, quasi_random=settings.quasi_random,
            gripper_dim=gripper_dim(settings, names), gripper_threshold=settings.gripper_threshold,
            final_mean=settings.final_mean, include_neutral=settings.include_neutral,
            action_cost=settings.action_cost)
    except (CEMConfigError, ActionSpaceError) as exc:
        raise PlannerSetupError(f"invalid planner settings: {exc}") from exc

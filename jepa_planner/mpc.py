"""The planner's model-predictive control loop, ROS-free: settings, model checks, input rules, goals, decisions.

One `MPCLoop` serves the planner node and the offline reach loop (`jepa_episodes.offline_reach`). The caller hands
every observation (features with the paired state and the camera stamp) to ``loop.inputs.offer(observation,
now_ns)`` on arrival, then calls ``loop.step(loop.inputs.latest, now_ns, wall)`` whenever it may act: `now_ns` is
the clock the stamps are judged against (ROS time in the node), `wall` a monotonic wall clock in seconds (time
budgets of a ReachGoal). `step` returns a `Decision`: publish a plan or a hold plan, wait (and why), an invalid
result (never to be published), or the end of a ReachGoal with its outcome.

Rules (each has its unit test in test/planner/test_mpc.py):
- Input: an observation must come from the planner's encoder (`model_id`), have the models' feature shape, finite
  values and the predictor's state names; one without any state counts as "waiting for state". A stamp more than
  `max_future_stamp` ahead of `now` is refused; nothing refused is ever kept, so no single message can move the
  loop's clock. A loop whose own memory lies in the future (the clock jumped back) forgets it.
- One plan per usable frame: younger than `embedding_timeout`, newer than the last planned one and, in ``step``
  mode, stamped `settle_time` after the previous plan went out. Plans are warm-started from the previous one.
- Topic goals are tracked until replaced: while the observed energy is <= the tolerance (`default_tolerance`, 0:
  the predictor's calibrated `planning_tolerance`), hold plans (the
  neutral action with its predicted rollout) instead of a search; planning resumes when the energy rises.
- A ReachGoal replaces the topic goal. Each executed step is judged on the next usable observation. It ends
  "reached", "budget exhausted", "stale input" (no fresh frame for `stale_abort_after` s), "canceled",
  "deadline" (running longer than its summed budgets x `max_step_time`) or "planner error: ...".
- A result with a non-finite value anywhere is invalid: never published; Predict refuses such results and actions
  outside the predictor's action space.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from jepa_planner.action_space import ActionSpaceError
from jepa_planner.cem import ENERGY_MODES, CEMConfig, CEMConfigError, CEMPlanner, PlanResult, shift_warm_start
from jepa_planner.energy import l1_energy
from jepa_planner.goals import GoalSequence, GoalSequenceError
from jepa_planner.held_actions import HeldActions
from jepa_world_model.devices import resolve_device
from jepa_world_model.data.image_encoding import CROP_MODES
from jepa_common.settings import setting

MODES = ("step", "continuous")
#: The goal tolerance for a predictor without a calibrated planning_tolerance (presets, official files).
FALLBACK_TOLERANCE = 0.015
_CEM = {f.name: f.default for f in dataclasses.fields(CEMConfig)}
_NS = 1_000_000_000


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
    max_step_time: float = setting(2.0, "a ReachGoal ends with 'deadline' after its summed step budgets times "
                                   "this much wall time", unit="s", low=0.01, high=3600.0)


class PlannerSetupError(ValueError):
    """Settings or models the planner cannot work with (the message names the setting or model)."""


class InvalidGoalError(ValueError):
    """A goal that cannot be pursued."""


class PredictError(ValueError):
    """A Predict request that is refused (the message says why)."""


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
            early_stop_rtol=settings.early_stop_rtol)
    except (CEMConfigError, ActionSpaceError) as exc:
        raise PlannerSetupError(f"invalid planner settings: {exc}") from exc


def check_models(encoder: Any, predictor: Any) -> None:
    """Raise PlannerSetupError unless the encoder's features are what the predictor was built and trained on."""
    made = (encoder.num_tokens(), encoder.embed_dim)
    wanted = (predictor.config.tokens_per_frame, predictor.config.embed_dim)
    if made != wanted:
        raise PlannerSetupError(f"the encoder makes {made[0]} tokens x embed_dim {made[1]}, the predictor expects "
                                f"{wanted[0]} x embed_dim {wanted[1]}")
    trained_on = getattr(predictor, "encoder_id", None)
    if trained_on and trained_on != encoder.model_id:
        raise PlannerSetupError(f"the predictor was trained on encoder {trained_on}, the encoder is "
                                f"{encoder.model_id}")
    for kind, space in (("action", predictor.action_space), ("state", predictor.state_space)):
        if not space.names or len(set(space.names)) != len(space.names):
            raise PlannerSetupError(f"the predictor's {kind} space needs distinct names, got {list(space.names)}")


class PlannerModels:
    """The predictor and the goal-image encoder on one device, checked to work together.

    `planning_tolerance` is the predictor's calibrated goal tolerance (None: it has none).
    """

    def __init__(self, encoder: torch.nn.Module, predictor: torch.nn.Module, device: torch.device | str = "cpu",
                 image_size: int = 0, crop: str = "center", planning_tolerance: float | None = None) -> None:
        check_models(encoder, predictor)
        self.planning_tolerance = planning_tolerance
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        self.predictor = predictor.to(self.device).eval()
        self.model_id: str = encoder.model_id
        self.feature_shape = (predictor.config.tokens_per_frame, predictor.config.embed_dim)
        self.action_space = predictor.action_space
        self.state_names: tuple[str, ...] = tuple(predictor.state_space.names)
        self.image_size = image_size or encoder.config.crop_size
        self.crop = crop

    @classmethod
    def load(cls, settings: PlannerSettings) -> "PlannerModels":
        """Load the models named by `settings` on its device (an empty encoder: the one saved with the predictor);
        PlannerSetupError in one line when they cannot be loaded or do not fit together."""
        from jepa_world_model import load_predictor
        from jepa_world_model.checkpoints import bundle
        from jepa_world_model.errors import WorldModelError

        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        try:
            device = resolve_device(settings.device)
            predictor = load_predictor(settings.predictor)
            encoder = bundle.encoder_for(settings.encoder, settings.predictor).load()
            tolerance = bundle.planning_tolerance(settings.predictor)
        except (WorldModelError, RuntimeError, OSError) as exc:
            raise PlannerSetupError(f"cannot load the models: {exc}") from exc
        try:
            return cls(encoder, predictor, device, settings.image_size, settings.crop, tolerance)
        except PlannerSetupError as exc:
            raise PlannerSetupError(bundle.mismatch_line(settings.encoder, settings.predictor, str(exc))) from None

    def tensor(self, features: np.ndarray) -> torch.Tensor:
        """Features (N, D) as a float32 tensor on the device."""
        return torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)

    def encode_image(self, rgb: np.ndarray) -> torch.Tensor:
        """An RGB goal image (H, W, 3) uint8 -> features (N, D); ValueError on a bad image."""
        from jepa_world_model.data.image_encoding import prepare_image

        image = np.ascontiguousarray(prepare_image(rgb, self.image_size, self.crop))
        with torch.inference_mode():
            features = self.encoder(torch.from_numpy(image).unsqueeze(0))[0].float()
        if not torch.isfinite(features).all():
            raise InvalidGoalError("the encoder returned non-finite features")
        return features.clone()


@dataclass(frozen=True)
class Observation:
    """Features of one camera frame with its paired state, as the loop receives them."""

    features: np.ndarray                 # (N, D) float32
    stamp_ns: int                        # the camera stamp
    state: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))   # (S,) in state_names order
    state_names: tuple[str, ...] = ()
    model_id: str = ""                   # the encoder that made the features
    source: Any = None                   # carried for the caller (the node keeps the message header here)


#: Counter names of refused inputs, as /diagnostics shows them.
REFUSALS = ("malformed_embeddings", "model_mismatches", "future_stamps", "waiting_for_state")


def observation_problem(obs: Observation, models: PlannerModels, field: str = "Embedding") -> tuple[str, str]:
    """(refusal counter, problem) for an observation the models cannot use, or ("", "")."""
    if obs.model_id != models.model_id:
        return "model_mismatches", (f"model mismatch: {field}.model_id {obs.model_id!r} is not the planner's "
                                    f"encoder {models.model_id!r}")
    shape = tuple(np.shape(obs.features))
    if shape != models.feature_shape:
        return "malformed_embeddings", (f"malformed embedding: {field}.shape {list(shape)} differs from the "
                                        f"models' {list(models.feature_shape)}")
    if not np.isfinite(obs.features).all():
        return "malformed_embeddings", f"malformed embedding: {field}.data contains NaN or Inf"
    if not obs.state_names and models.state_names:
        return "waiting_for_state", (f"waiting for state: {field} carries no state (the predictor needs "
                                     f"{', '.join(models.state_names)})")
    if tuple(obs.state_names) != models.state_names or np.shape(obs.state) != (len(models.state_names),):
        return "malformed_embeddings", (f"malformed embedding: {field}.state_names {list(obs.state_names)} "
                                        f"differ from the predictor's state space {list(models.state_names)}")
    if not np.isfinite(obs.state).all():
        return "malformed_embeddings", f"malformed embedding: {field}.state contains NaN or Inf"
    return "", ""


class InputGate:
    """Checks each observation on arrival, counts refusals and keeps the latest accepted one (thread-safe)."""

    def __init__(self, models: PlannerModels, max_future_stamp: float) -> None:
        self._models = models
        self._lock = threading.Lock()
        self.max_future_ns = int(max_future_stamp * _NS)
        self.latest: Observation | None = None
        self.problem = "no embedding received yet"   # why the last input was refused ("" when accepted)
        self.counts = dict.fromkeys(REFUSALS, 0)

    def offer(self, obs: Observation, now_ns: int) -> str:
        """Accept `obs` as the latest input, or refuse and count it; returns the problem ("" when accepted)."""
        kind, problem = observation_problem(obs, self._models)
        ahead = (obs.stamp_ns - now_ns) / _NS
        if not kind and obs.stamp_ns - now_ns > self.max_future_ns:
            kind, problem = "future_stamps", (f"future stamp: embedding stamped {ahead:.3f} s ahead of the clock "
                                              f"(> max_future_stamp {self.max_future_ns / _NS:g} s)")
        with self._lock:
            if kind:
                self.counts[kind] += 1
            else:
                self.latest = obs
            self.problem = problem
        return problem

    def refuse(self, kind: str, problem: str) -> None:
        """Count an input the caller could not even convert (e.g. a malformed message)."""
        with self._lock:
            self.counts[kind] += 1
            self.problem = problem


@dataclass(frozen=True)
class ReachOutcome:
    """How a ReachGoal ended."""

    reason: str                # reached, budget exhausted, stale input, canceled, deadline, planner error: ...
    final_energy: float        # observed energy to the last targeted goal
    steps: int                 # plans issued
    goals_reached: int
    detail: str = ""           # e.g. which budget ran out

    @property
    def success(self) -> bool:
        """Every goal reached."""
        return self.reason == "reached"


PLAN, HOLD, WAIT, INVALID, FINISHED = "plan", "hold", "wait", "invalid", "finished"


@dataclass(frozen=True)
class Decision:
    """What `MPCLoop.step` decided. PLAN/HOLD: publish `result` (made from `observation`); WAIT: nothing to do
    (`message` says why, "" while just waiting for the next frame); INVALID: no valid result, publish nothing;
    FINISHED: the ReachGoal ended with `outcome`."""

    kind: str
    message: str = ""
    result: PlanResult | None = None
    observation: Observation | None = None
    goal_index: int = 0
    energy: float = math.nan   # observed energy to the targeted goal
    step: int = 0              # ReachGoal: the step this plan is, counted per goal
    outcome: ReachOutcome | None = None


@dataclass
class _Reach:
    """Book-keeping of the running ReachGoal."""

    sequence: GoalSequence
    started: float             # wall time
    deadline: float            # wall time
    last_input: float          # wall time of the last fresh frame
    newest_ns: int = -1        # newest fresh stamp seen
    stepped: bool = False      # a plan went out and awaits judgement on the next observation
    steps: int = 0
    energy: float = math.nan
    end_reason: str = ""       # set by `end`, reported by the next step


def result_problem(result: PlanResult) -> str:
    """Why a planner result must not be used ("" when every value is finite)."""
    if not result.ok:
        return result.reason or "planner reported failure"
    if not math.isfinite(result.energy):
        return f"energy is {result.energy}"
    for name, tensor in (("actions", result.actions), ("step energies", result.step_energies),
                         ("predictions", result.predictions)):
        if tensor is None or not torch.isfinite(tensor).all():
            return f"{name} are missing or non-finite"
    return ""


class MPCLoop:
    """Goals, input rules and the receding-horizon CEM planner; the caller publishes what `step` decides.

    Not thread-safe except `inputs` and `end`: one thread (or one lock) calls everything else.
    """

    def __init__(self, models: PlannerModels, settings: PlannerSettings) -> None:
        self.models = models
        self.settings = settings
        self.planner = _planner(models, settings)
        self.inputs = InputGate(models, settings.max_future_stamp)
        self.invalid_goals = 0
        self.goal_problem = ""        # why the last goal was refused
        self._topic_goal: torch.Tensor | None = None
        self._reach: _Reach | None = None
        self._warm: tuple[torch.Tensor, torch.Tensor] | None = None   # (goal, actions of the last plan)
        self._last_planned_ns: int | None = None
        self._last_publish_ns: int | None = None
        self._last_plan_wall = -math.inf
        self.last_energy = math.nan
        self.last_plan_ms = math.nan

    # -------------------------------------------------------------------------------------------- settings
    @property
    def tolerance(self) -> float:
        """The goal tolerance in force: `default_tolerance`, else the predictor's calibrated one, else the
        fallback."""
        return self.settings.default_tolerance or self.models.planning_tolerance or FALLBACK_TOLERANCE

    def reconfigure(self, settings: PlannerSettings) -> None:
        """Switch to new settings (read-only ones must not change); a CEM change drops the warm start."""
        changed = [f.name for f in dataclasses.fields(settings) if getattr(settings, f.name) !=
                   getattr(self.settings, f.name)]
        frozen = [name for name in changed if PlannerSettings.__dataclass_fields__[name].metadata["read_only"]]
        if frozen:
            raise PlannerSetupError(f"read-only setting(s) {', '.join(frozen)} cannot change")
        if cem_config(settings, self.models.action_space) != self.planner.config or \
                settings.lookahead_steps != self.settings.lookahead_steps:
            self.planner, self._warm = _planner(self.models, settings), None
        self.settings = settings
        self.inputs.max_future_ns = int(settings.max_future_stamp * _NS)

    # ----------------------------------------------------------------------------------------------- goals
    @property
    def goal_kind(self) -> str:
        """"action" while a ReachGoal runs, "topic" while a topic goal is tracked, else "none"."""
        return "action" if self._reach is not None else "topic" if self._topic_goal is not None else "none"

    def goal_tensor(self, features: np.ndarray | torch.Tensor, model_id: str | None = None,
                    field: str = "goal") -> torch.Tensor:
        """Goal features (N, D) on the device; InvalidGoalError unless they come from the planner's encoder
        (`model_id`, when given), have the models' shape and are finite."""
        if model_id is not None and model_id != self.models.model_id:
            raise InvalidGoalError(f"{field}.model_id {model_id!r} is not the planner's encoder "
                                   f"{self.models.model_id!r}")
        goal = torch.as_tensor(features, dtype=torch.float32).to(self.models.device)
        if tuple(goal.shape) != self.models.feature_shape:
            raise InvalidGoalError(f"goal features {list(goal.shape)} differ from the models' "
                                   f"{list(self.models.feature_shape)}")
        if not torch.isfinite(goal).all():
            raise InvalidGoalError("goal features contain NaN or Inf")
        return goal

    def refuse_goal(self, problem: str) -> None:
        """Count a goal that could not be used (reported with the next "no goal" status)."""
        self.invalid_goals += 1
        self.goal_problem = problem

    def set_topic_goal(self, features: np.ndarray | torch.Tensor) -> None:
        """Track `features` until replaced; InvalidGoalError when they are bad or a ReachGoal runs."""
        if self._reach is not None:
            raise InvalidGoalError("a ReachGoal action is running")
        self._topic_goal, self._warm, self.goal_problem = self.goal_tensor(features), None, ""

    def begin_reach(self, goals: Sequence[np.ndarray | torch.Tensor], wall: float,
                    budgets: Sequence[int] | None = None, tolerance: float | None = None) -> GoalSequence:
        """Start a ReachGoal (replacing the topic goal); None budgets/tolerance mean the defaults.

        InvalidGoalError says what is wrong with the request.
        """
        s = self.settings
        if budgets is not None and len(budgets) != len(goals):
            raise InvalidGoalError(f"step_budgets has {len(budgets)} entries for {len(goals)} goals")
        tensors = [self.goal_tensor(goal) for goal in goals]
        try:
            sequence = GoalSequence(tensors, [int(b) for b in budgets] if budgets is not None else
                                    s.default_step_budget, self.tolerance if tolerance is None else tolerance)
        except GoalSequenceError as exc:
            raise InvalidGoalError(str(exc)) from exc
        total = sum(sequence.budgets)
        self._reach = _Reach(sequence, started=wall, deadline=wall + total * s.max_step_time, last_input=wall)
        self._topic_goal, self._warm, self.goal_problem = None, None, ""
        self.planner.reset()
        return sequence

    def end(self, reason: str = "canceled") -> None:
        """Ask the running ReachGoal to end; the next `step` reports it with `reason`."""
        if self._reach is not None and not self._reach.end_reason:
            self._reach.end_reason = reason

    # ------------------------------------------------------------------------------------------------ step
    def step(self, observation: Observation | None, now_ns: int, wall: float) -> Decision:
        """Decide what to do now with `observation` (normally `inputs.latest`)."""
        self._forget_future(now_ns)
        if self._reach is not None:
            return self._step_reach(self._reach, observation, now_ns, wall)
        if self._topic_goal is None:
            refused = f" ({self.goal_problem})" if self.goal_problem else ""
            return Decision(WAIT, f"waiting: no goal{refused}")
        obs, problem = self._usable(observation, now_ns, wall)
        if obs is None:
            return Decision(WAIT, _waiting(problem))
        goal, tolerance = self._topic_goal, self.tolerance
        energy = self.energy(obs, goal)
        holding = energy <= tolerance
        result, problem = self._hold(obs, goal) if holding else self._plan(obs, goal)
        if problem:
            self._last_planned_ns, self._warm = obs.stamp_ns, None   # the frame counts as used
            return Decision(INVALID, f"no valid {'hold ' if holding else ''}plan: {problem}", observation=obs)
        self._record(obs, goal, result, now_ns, wall)
        message = f"holding: goal reached (energy {energy:.4g} <= {tolerance:g})" if holding else "planning"
        return Decision(HOLD if holding else PLAN, message, result, obs, energy=energy)

    def _step_reach(self, reach: _Reach, observation: Observation | None, now_ns: int, wall: float) -> Decision:
        if reach.end_reason:
            return self._finish(reach.end_reason)
        if wall > reach.deadline:
            return self._finish("deadline", f"{reach.steps} steps in {wall - reach.started:.1f} s, more than "
                                            f"{reach.deadline - reach.started:.1f} s")
        if observation is not None and observation.stamp_ns > reach.newest_ns and \
                now_ns - observation.stamp_ns <= self.settings.embedding_timeout * _NS and \
                observation.stamp_ns - now_ns <= self.inputs.max_future_ns:
            reach.newest_ns, reach.last_input = observation.stamp_ns, wall
        obs, problem = self._usable(observation, now_ns, wall)
        if obs is None:
            if wall - reach.last_input > self.settings.stale_abort_after:
                return self._finish("stale input", problem)
            return Decision(WAIT, _waiting(problem))
        sequence = reach.sequence
        energy = self.energy(obs, sequence.current)
        if reach.stepped:
            reach.stepped, reach.energy = False, energy
            status = sequence.update(energy)
            if status == "done":
                return self._finish("reached")
            if status == "failed":
                return self._finish("budget exhausted", sequence.failure_reason)
            if status == "advanced":
                energy = self.energy(obs, sequence.current)
        reach.energy = energy
        result, problem = self._plan(obs, sequence.current)
        if problem:
            return self._finish(f"planner error: {problem}")
        self._record(obs, sequence.current, result, now_ns, wall)
        reach.stepped, reach.steps = True, reach.steps + 1
        return Decision(PLAN, "planning", result, obs, goal_index=sequence.index, energy=energy,
                        step=sequence.steps_used + 1)

    def _finish(self, reason: str, detail: str = "") -> Decision:
        reach = self._reach
        outcome = ReachOutcome(reason, reach.energy, reach.steps, reach.sequence.index, detail)
        self._reach, self._warm = None, None
        return Decision(FINISHED, f"ReachGoal ended: {reason}", outcome=outcome, energy=reach.energy)

    def _forget_future(self, now_ns: int) -> None:
        """Drop remembered times that lie in the future (the clock jumped back, e.g. a restarted sim clock)."""
        if self._last_planned_ns is not None and self._last_planned_ns > now_ns + self.inputs.max_future_ns:
            self._last_planned_ns = self._last_publish_ns = None

    def _usable(self, obs: Observation | None, now_ns: int, wall: float) -> tuple[Observation | None, str]:
        """The observation to plan from now, or None and why ("" when simply waiting for the next frame)."""
        s = self.settings
        if obs is None:
            return None, self.inputs.problem or "no embedding received"
        if obs.stamp_ns - now_ns > self.inputs.max_future_ns:
            return None, f"future stamp: embedding stamped {(obs.stamp_ns - now_ns) / _NS:.3f} s ahead"
        age = (now_ns - obs.stamp_ns) / _NS
        if age > s.embedding_timeout:
            return None, self.inputs.problem or f"stale input: embedding is {age:.2f} s old " \
                                                f"(> {s.embedding_timeout:g} s)"
        if self._last_planned_ns is not None and obs.stamp_ns <= self._last_planned_ns:
            return None, ""
        if s.mode == "step" and self._last_publish_ns is not None and \
                obs.stamp_ns < self._last_publish_ns + int(s.settle_time * _NS):
            return None, ""
        if s.min_plan_interval and wall - self._last_plan_wall < s.min_plan_interval:
            return None, ""
        return obs, ""

    # -------------------------------------------------------------------------------------------- planning
    def energy(self, obs: Observation, goal: torch.Tensor) -> float:
        """Observed energy of `obs` to goal features."""
        return float(l1_energy(self.models.tensor(obs.features)[None], goal)[0])

    def _inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """An observation as the predictor's one-frame context (1, 1, N, D) and state (1, 1, S)."""
        return (self.models.tensor(obs.features)[None, None],
                torch.as_tensor(np.asarray(obs.state, dtype=np.float32), device=self.models.device)[None, None])

    def _plan(self, obs: Observation, goal: torch.Tensor) -> tuple[PlanResult | None, str]:
        """CEM from `obs` toward `goal`, warm-started from the last plan to the same goal; (result, problem)."""
        config = self.planner.config
        warm = None
        if self._warm is not None and self._warm[0] is goal and \
                tuple(self._warm[1].shape) == (config.horizon, config.action_dim):
            warm = shift_warm_start(self._warm[1])
        try:
            result = self.planner.plan(*self._inputs(obs), goal, warm)
        except (ValueError, RuntimeError) as exc:
            return None, str(exc)
        return result, result_problem(result)

    def _hold(self, obs: Observation, goal: torch.Tensor) -> tuple[PlanResult | None, str]:
        """The plan that keeps the arm where it is (the neutral action), with the predicted rollout of it."""
        started = time.perf_counter()
        config = self.planner.config
        actions = config.constraints.neutral().to(self.models.device).expand(config.horizon, -1).clone()
        try:
            with torch.inference_mode():
                predictions = self.models.predictor.rollout(*self._inputs(obs), actions[None])[0]
                energies = l1_energy(predictions, goal)
        except (ValueError, RuntimeError) as exc:
            return None, str(exc)
        result = PlanResult(actions=actions, energy=float(energies[-1]), step_energies=energies,
                            predictions=predictions, iterations_run=0,
                            time_ms=(time.perf_counter() - started) * 1e3)
        return result, result_problem(result)

    def _record(self, obs: Observation, goal: torch.Tensor, result: PlanResult, now_ns: int, wall: float) -> None:
        """Remember a plan that goes out now (it leaves when planning ends: now + planning time)."""
        self._last_planned_ns = obs.stamp_ns
        self._last_publish_ns = now_ns + int(result.time_ms * 1e6)
        self._last_plan_wall = wall + result.time_ms * 1e-3
        self._warm = (goal, result.actions)
        self.last_energy, self.last_plan_ms = result.energy, result.time_ms

    # ------------------------------------------------------------------------------------------- predict
    def predict(self, context: Observation, actions: Sequence[float], horizon: int,
                goal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Roll the predictor out from `context` under `actions` (horizon x A, row-major): predictions (H, N, D)
        and energies (H,) to `goal` (None: no energies). PredictError says why a request is refused."""
        space, max_h = self.models.action_space, self.models.predictor.max_horizon
        names, dim = tuple(space.names), len(space.names)
        if not 1 <= horizon <= max_h:
            raise PredictError(f"horizon {horizon} must be in [1, {max_h}] (the predictor's max horizon)")
        if len(actions) != horizon * dim:
            raise PredictError(f"actions has {len(actions)} values, horizon {horizon} x {dim} action dims "
                               f"{list(names)} needs {horizon * dim}")
        plan = np.asarray(actions, dtype=np.float32).reshape(horizon, dim)
        if not np.isfinite(plan).all():
            raise PredictError("actions contain NaN or Inf")
        low, high = np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32)
        outside = np.argwhere((plan < low) | (plan > high))
        if len(outside):
            t, i = (int(v) for v in outside[0])
            raise PredictError(f"actions[{t}] {names[i]}={plan[t, i]:g} is outside the action space "
                               f"[{low[i]:g}, {high[i]:g}] {space.units[i]}".rstrip())
        kind, problem = observation_problem(context, self.models, "context")
        if kind:
            raise PredictError(problem)
        goal_t = None
        if goal is not None:
            try:
                goal_t = self.goal_tensor(goal)
            except InvalidGoalError as exc:
                raise PredictError(f"goal: {exc}") from exc
        with torch.inference_mode():
            predicted = self.models.predictor.rollout(*self._inputs(context),
                                                      torch.from_numpy(plan).to(self.models.device)[None])[0]
            energies = None if goal_t is None else l1_energy(predicted, goal_t).float().cpu().numpy()
        predicted = predicted.float().cpu().numpy()
        if not np.isfinite(predicted).all() or (energies is not None and not np.isfinite(energies).all()):
            raise PredictError("the predictor returned non-finite values for these actions")
        return predicted, energies

    # -------------------------------------------------------------------------------------------- status
    def status_values(self, now_ns: int) -> dict[str, Any]:
        """Key values for the node's diagnostics."""
        latest = self.inputs.latest
        age = (now_ns - latest.stamp_ns) / _NS if latest is not None else math.nan
        return dict(goal=self.goal_kind, last_energy=f"{self.last_energy:.4g}", plan_ms=f"{self.last_plan_ms:.1f}",
                    input_age_s=f"{age:.3f}", invalid_goals=self.invalid_goals, **self.inputs.counts)


def _planner(models: PlannerModels, settings: PlannerSettings) -> CEMPlanner:
    """The CEM planner over the models' predictor for `settings`; PlannerSetupError says what is wrong."""
    config = cem_config(settings, models.action_space)
    try:
        model = models.predictor if settings.lookahead_steps == 1 else \
            HeldActions(models.predictor, settings.lookahead_steps)
        return CEMPlanner(model, l1_energy, config)
    except ValueError as exc:  # CEMConfigError, or a hold longer than the predictor's horizon
        raise PlannerSetupError(f"invalid planner settings: {exc}") from exc


def _waiting(problem: str) -> str:
    """The status of a loop that waits because of `problem` ("" when it just waits for the next frame)."""
    if not problem or problem.startswith("waiting"):
        return problem
    return f"waiting: {problem}"

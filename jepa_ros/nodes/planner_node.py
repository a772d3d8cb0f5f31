"""Planner node: goal-conditioned model-predictive control with the world model (CEM over the AC predictor).

``python -m jepa_ros.nodes.planner_node --ros-args --params-file config/planner.yaml``

Inputs: /jepa/embedding (jepa_msgs/Embedding with the paired state, from the perception node); goals from
/jepa/goal_image (sensor_msgs/Image, encoded with the same encoder as the perception node), /jepa/goal_embedding
(jepa_msgs/Embedding) or the /jepa/reach_goal action (jepa_msgs/ReachGoal).
Outputs: /jepa/plan (jepa_msgs/Plan) and /jepa/prediction (jepa_msgs/Prediction, the chosen plan's predicted
embeddings), both stamped with the camera stamp of the embedding they were planned from. Service: /jepa/predict
(jepa_msgs/Predict). Diagnostics on /diagnostics as "jepa_ros: planner_node".

Rules:
- One plan per usable camera frame: the embedding must be fresh (younger than ``embedding_timeout``), newer than
  the last planned one and, in ``step`` mode, stamped at least ``settle_time`` after the previous plan went out
  (the previous action has been executed). Each plan is warm-started from the previous one shifted by a step.
- Embeddings must come from the node's encoder (same ``model_id``), have its feature shape and carry the
  predictor's state names; anything else is counted, reported and ignored. No usable input: no plan.
- Topic goals are tracked until replaced: while the observed energy is <= ``default_tolerance`` the planner
  publishes hold plans (zero actions, with the predicted embeddings of staying put) instead of searching, so the
  arm stays at the goal and the controller keeps getting fresh plans.
- A ReachGoal takes over from topic goals (and clears them). Each executed step is judged on the next usable
  observation: energy <= tolerance reaches the sub-goal; its budget running out aborts ("budget exhausted"), so
  does ``stale_abort_after`` seconds without fresh input ("stale input"). After an action ends nothing more is
  published until a new goal arrives; the controller's watchdog then stops the arm.
- A planner result with non-finite values is never published (diagnostics ERROR; a ReachGoal aborts with
  reason "planner error: ...").
"""
from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from jepa_msgs.action import ReachGoal
from jepa_msgs.msg import Embedding, Plan, Prediction
from jepa_msgs.srv import Predict
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from jepa_planner.action_space import ActionSpaceError
from jepa_planner.cem import CEMConfig, CEMConfigError, CEMPlanner, PlanResult, shift_warm_start
from jepa_planner.energy import l1_energy
from jepa_planner.goals import GoalSequence
from jepa_ros.msg_validation import MessageValidationError, embedding_array, embedding_state, fill_embedding, fill_plan
from jepa_ros.ros_util import ERROR, OK, WARN, Diagnostics, declare, reliable_qos, run_node
from jepa_world_model import load_encoder, load_predictor
from jepa_world_model.errors import WorldModelError
from jepa_world_model.image_encoding import CROP_MODES, image_to_rgb, prepare_image

MODES = ("step", "continuous")
#: Parameters that rebuild the CEM planner when changed at run time.
CEM_PARAMETERS = ("samples", "iterations", "elites", "horizon", "momentum", "init_std", "action_low", "action_high",
                  "l1_radius", "fixed_dims", "seed", "energy_mode", "early_stop_patience", "early_stop_rtol")
EXECUTOR_THREADS = 6


class PlannerParameterError(ValueError):
    """A parameter value the planner cannot work with (the message names the parameter)."""


class ModelMismatchError(MessageValidationError):
    """Features made by another encoder than the planner's."""


class InvalidGoalError(ValueError):
    """A ReachGoal request or topic goal that cannot be pursued."""


class PlanningError(RuntimeError):
    """The planner produced no valid plan (non-finite values or a model error)."""


def parse_fixed_dims(text: str, names: tuple[str, ...]) -> dict[int, float]:
    """Parse ``"dz=0.0, 3=0.5"`` (action name or index = held value) into {dim index: value}."""
    fixed: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise PlannerParameterError(f"parameter fixed_dims: {item!r} is not name=value")
        if key in names:
            dim = names.index(key)
        elif key.isdigit() and int(key) < len(names):
            dim = int(key)
        else:
            raise PlannerParameterError(f"parameter fixed_dims: {key!r} is neither an action name {list(names)} "
                                        f"nor an index below {len(names)}")
        try:
            fixed[dim] = float(value)
        except ValueError:
            raise PlannerParameterError(f"parameter fixed_dims: value {value.strip()!r} of {key!r} is not a "
                                        f"number") from None
    return fixed


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@dataclass
class Observation:
    """A validated /jepa/embedding message."""

    features: np.ndarray   # (N, D) float32
    state: np.ndarray      # (S,) float64
    header: Header         # of the camera frame
    stamp_ns: int


@dataclass
class ActionRun:
    """Book-keeping of the ReachGoal being executed."""

    handle: ServerGoalHandle
    sequence: GoalSequence
    last_input: float = field(default_factory=time.monotonic)   # monotonic time of the last fresh input
    stepped: bool = False          # a step was published and awaits judgement on the next observation
    steps: int = 0                 # plans published for this action
    energy: float = math.nan       # last energy of the observation to the goal being pursued
    cancel_requested: bool = False
    reason: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, reason: str) -> None:
        """End the run (the first reason wins)."""
        if not self.done.is_set():
            self.reason = reason
            self.done.set()


class PlannerNode(Node):
    """Embeddings + goals -> plans, predictions, the Predict service and the ReachGoal action."""

    def __init__(self, **kwargs):
        super().__init__("planner_node", **kwargs)
        self._lock = threading.Lock()          # node state shared between callbacks
        self._model_lock = threading.Lock()    # one torch user at a time
        self._p = self._declare_model_parameters()
        self._load_models()
        self._p.update(self._declare_planner_parameters())
        self._planner = self._build_planner(self._p)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._latest: Observation | None = None
        self._input_problem = ""            # why the last /jepa/embedding message was refused ("" if accepted)
        self._goal_problem = ""             # why the last topic goal was refused ("" if accepted)
        self._topic_goal: torch.Tensor | None = None
        self._run: ActionRun | None = None
        self._action_busy = False
        self._warm: tuple[torch.Tensor, torch.Tensor] | None = None   # (goal, actions of the last plan)
        self._sequence = 0
        self._last_publish_ns: int | None = None
        self._last_planned_ns: int | None = None
        self._last_plan_mono = -math.inf
        self._last_energy = math.nan
        self._last_plan_ms = math.nan
        self._counts = {"malformed_embeddings": 0, "model_mismatches": 0, "invalid_goals": 0}

        callbacks = ReentrantCallbackGroup()
        self._plan_pub = self.create_publisher(Plan, "/jepa/plan", reliable_qos(5))
        self._prediction_pub = self.create_publisher(Prediction, "/jepa/prediction", reliable_qos(5))
        self.create_subscription(Embedding, "/jepa/embedding", self._on_embedding, reliable_qos(5),
                                 callback_group=callbacks)
        self.create_subscription(Image, "/jepa/goal_image", self._on_goal_image, reliable_qos(1),
                                 callback_group=callbacks)
        self.create_subscription(Embedding, "/jepa/goal_embedding", self._on_goal_embedding, reliable_qos(1),
                                 callback_group=callbacks)
        self.create_service(Predict, "/jepa/predict", self._on_predict, callback_group=callbacks)
        self._action_server = ActionServer(
            self, ReachGoal, "/jepa/reach_goal", self._execute, callback_group=callbacks,
            goal_callback=self._on_goal_request, cancel_callback=self._on_cancel_request)
        self._diagnostics = Diagnostics(self, "planner_node")
        self._diagnostics.set(WARN, "waiting: no goal", **self._values())
        self.create_timer(1.0 / self._p["plan_rate"], self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"predictor {self._p['predictor']!r} ({self._predictor.model_id}), encoder {self._p['encoder']!r} "
            f"(model_id {self._model_id}) on {self._device}; actions {list(self._action_names)}, "
            f"horizon {self._planner.config.horizon}, mode {self._p['mode']}")

    # ----------------------------------------------------------------------------------------------- parameters
    def _declare_model_parameters(self) -> dict:
        d = {}
        d["predictor"] = declare(self, "predictor", "tiny", "action-conditioned predictor: preset name, checkpoint "
                                 "directory or official .pt file (action/state spaces come from it)", read_only=True)
        d["encoder"] = declare(self, "encoder", "tiny", "encoder for goal images; must be the perception node's "
                               "(embeddings with another model_id are refused)", read_only=True)
        d["device"] = declare(self, "device", "cpu", "torch device (cpu, cuda, cuda:1)", read_only=True)
        d["torch_threads"] = declare(self, "torch_threads", 0, "torch CPU threads; 0 = torch's default",
                                     low=0, high=1024, read_only=True)
        d["crop"] = declare(self, "crop", "center", "goal images: center = centre-crop to the input aspect then "
                            "resize, none = resize the whole frame (match the perception node)", read_only=True)
        d["image_size"] = declare(self, "image_size", 0, "goal images: encoder input size [px]; 0 = the encoder's "
                                  "crop size (match the perception node)", low=0, high=8192, read_only=True)
        if d["crop"] not in CROP_MODES:
            raise PlannerParameterError(f"parameter crop={d['crop']!r}: must be one of {list(CROP_MODES)}")
        return d

    def _declare_planner_parameters(self) -> dict:
        space = self._predictor.action_space
        d = {}
        d["samples"] = declare(self, "samples", 64, "CEM action sequences sampled per iteration", low=1, high=1_000_000)
        d["iterations"] = declare(self, "iterations", 4, "CEM iterations per plan", low=1, high=10_000)
        d["elites"] = declare(self, "elites", 8, "CEM elites refitted per iteration (<= samples)", low=1,
                              high=1_000_000)
        d["horizon"] = declare(self, "horizon", 2, "plan length in control steps (<= the predictor's max horizon)",
                               low=1, high=1024)
        d["momentum"] = declare(self, "momentum", 0.15, "CEM momentum of mean and std (0 = no smoothing)",
                                low=0.0, high=0.999)
        d["init_std"] = declare(self, "init_std", 0.0, "initial sampling std [action units]; 0 = half of each "
                                "axis' box width", low=0.0, high=1e6)
        d["action_low"] = declare(self, "action_low", list(space.low), "per-axis action lower bounds; default: "
                                  "the predictor's action space")
        d["action_high"] = declare(self, "action_high", list(space.high), "per-axis action upper bounds; default: "
                                   "the predictor's action space")
        d["l1_radius"] = declare(self, "l1_radius", 0.0, "L1-ball radius of each action step; 0 = off",
                                 low=0.0, high=1e6)
        d["fixed_dims"] = declare(self, "fixed_dims", "", "action dims held at a value, 'name=value' pairs separated "
                                  "by commas (e.g. 'dz=0.0'); empty = none")
        d["seed"] = declare(self, "seed", 0, "CEM random seed", low=0, high=2**31 - 1)
        d["energy_mode"] = declare(self, "energy_mode", "final", "CEM ranking: final = last step's energy, "
                                   "all = mean over steps")
        d["early_stop_patience"] = declare(self, "early_stop_patience", 0, "stop CEM after this many iterations "
                                           "without improvement; 0 = always run every iteration", low=0, high=10_000)
        d["early_stop_rtol"] = declare(self, "early_stop_rtol", 1e-3, "relative energy improvement below which an "
                                       "iteration counts as no improvement", low=0.0, high=1.0)
        d["mode"] = declare(self, "mode", "step", "step: plan on a frame stamped settle_time after the previous "
                            "plan went out; continuous: plan on every new frame")
        d["plan_rate"] = declare(self, "plan_rate", 50.0, "how often the planning loop looks for a new frame [Hz]",
                                 low=0.1, high=1000.0, read_only=True)
        d["settle_time"] = declare(self, "settle_time", 0.1, "step mode: the frame must be stamped this long after "
                                   "the previous plan was published (the action's execution time) [s]",
                                   low=0.0, high=60.0)
        d["min_plan_interval"] = declare(self, "min_plan_interval", 0.0, "least wall time between two plans [s]",
                                         low=0.0, high=3600.0)
        d["embedding_timeout"] = declare(self, "embedding_timeout", 0.5, "embeddings older than this (camera "
                                         "stamp) are stale: no plan [s]", low=0.001, high=3600.0)
        d["stale_abort_after"] = declare(self, "stale_abort_after", 2.0, "ReachGoal aborts ('stale input') after "
                                         "this long without fresh input [s]", low=0.01, high=3600.0)
        d["default_step_budget"] = declare(self, "default_step_budget", 50, "ReachGoal control steps per goal when "
                                           "step_budgets is empty", low=1, high=1_000_000)
        d["default_tolerance"] = declare(self, "default_tolerance", 0.1, "energy at or below which a goal is "
                                         "reached: for ReachGoal requests with tolerance <= 0, and for topic "
                                         "goals (the planner then publishes hold plans)", low=0.0, high=1e9)
        self._check_choices(d)
        return d

    @staticmethod
    def _check_choices(d: dict) -> None:
        if d["mode"] not in MODES:
            raise PlannerParameterError(f"parameter mode={d['mode']!r}: must be one of {list(MODES)}")

    def _build_planner(self, p: dict) -> CEMPlanner:
        """A CEM planner for parameters `p`; PlannerParameterError names what is wrong."""
        names = self._action_names
        for key in ("action_low", "action_high"):
            if len(p[key]) != len(names):
                raise PlannerParameterError(f"parameter {key} has {len(p[key])} values, the predictor's action "
                                            f"space {list(names)} has {len(names)}")
        for i, (low, high) in enumerate(zip(p["action_low"], p["action_high"])):
            if not low <= high:
                raise PlannerParameterError(f"parameter action_low[{i}]={low} is not <= action_high[{i}]={high} "
                                            f"({names[i]})")
        try:
            config = CEMConfig(
                low=[float(v) for v in p["action_low"]], high=[float(v) for v in p["action_high"]],
                samples=p["samples"], iterations=p["iterations"], elites=p["elites"], horizon=p["horizon"],
                momentum_mean=p["momentum"], momentum_std=p["momentum"], init_std=p["init_std"] or None,
                l1_radius=p["l1_radius"] or None, fixed_dims=parse_fixed_dims(p["fixed_dims"], names),
                seed=p["seed"], energy_mode=p["energy_mode"], early_stop_patience=p["early_stop_patience"],
                early_stop_rtol=p["early_stop_rtol"])
            return CEMPlanner(self._predictor, l1_energy, config)
        except (CEMConfigError, ActionSpaceError) as exc:
            raise PlannerParameterError(f"invalid planner parameters: {exc}") from exc

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Validate run-time changes; a CEM change swaps in a new planner (warm start dropped)."""
        changed = {param.name: param.value for param in parameters if param.name in self._p}
        candidate = {**self._p, **changed}
        try:
            self._check_choices(candidate)
            planner = self._build_planner(candidate) if set(changed) & set(CEM_PARAMETERS) else None
        except PlannerParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self._p = candidate
            if planner is not None:
                self._planner, self._warm = planner, None
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------------- models
    def _load_models(self) -> None:
        p = self._p
        if p["torch_threads"]:
            torch.set_num_threads(p["torch_threads"])
        try:
            self._device = torch.device(p["device"])
            if self._device.type == "cuda" and not torch.cuda.is_available():
                raise PlannerParameterError(f"parameter device={p['device']!r}: CUDA is not available")
            self._predictor = load_predictor(p["predictor"]).to(self._device)
            self._encoder = load_encoder(p["encoder"]).to(self._device)
        except (WorldModelError, RuntimeError, OSError) as exc:
            raise PlannerParameterError(f"cannot load the models: {exc}") from exc
        self._model_id = self._encoder.model_id
        config = self._predictor.config
        self._feature_shape = (config.tokens_per_frame, config.embed_dim)
        encoder_shape = (self._encoder.num_tokens(), self._encoder.embed_dim)
        if encoder_shape != self._feature_shape:
            raise PlannerParameterError(f"encoder {p['encoder']!r} makes features {encoder_shape}, predictor "
                                        f"{p['predictor']!r} expects {self._feature_shape}")
        trained_on = self._predictor.encoder_id
        if trained_on and trained_on != self._model_id:
            raise PlannerParameterError(f"predictor {p['predictor']!r} was trained on encoder {trained_on}, but "
                                        f"encoder {p['encoder']!r} is {self._model_id}")
        self._action_names = config.action_space.names
        self._action_units = config.action_space.units
        self._state_names = config.state_space.names
        self._image_size = p["image_size"] or self._encoder.config.crop_size

    def _energy(self, features: np.ndarray, goal: torch.Tensor) -> float:
        """Energy of observed features (N, D) to goal features."""
        observed = torch.from_numpy(features).to(self._device).unsqueeze(0)
        return float(l1_energy(observed, goal)[0])

    def _encode_image(self, msg: Image) -> torch.Tensor:
        """Goal image -> features (N, D) on the device; ImageEncodingError / ValueError on bad images."""
        rgb = prepare_image(image_to_rgb(msg), self._image_size, self._p["crop"])
        with self._model_lock, torch.inference_mode():
            features = self._encoder(torch.from_numpy(np.ascontiguousarray(rgb)).unsqueeze(0))[0].float()
        if not torch.isfinite(features).all():
            raise InvalidGoalError("the encoder returned non-finite features")
        return features.clone()

    # ----------------------------------------------------------------------------------------------- messages
    def _features(self, msg: Embedding, field_name: str) -> np.ndarray:
        """Validated features (N, D) of an Embedding made by this node's encoder."""
        if msg.model_id != self._model_id:
            raise ModelMismatchError(f"{field_name}.model_id", f"{msg.model_id!r} is not the planner's encoder "
                                     f"{self._model_id!r} ({self._p['encoder']})")
        features = embedding_array(msg, field_name)
        if features.shape != self._feature_shape:
            raise MessageValidationError(f"{field_name}.shape", f"{list(features.shape)} differs from the models' "
                                         f"{list(self._feature_shape)}")
        return features

    def _state(self, msg: Embedding, field_name: str) -> np.ndarray:
        """Validated paired state in the predictor's state space order."""
        state = embedding_state(msg, field_name)
        if tuple(msg.state_names) != self._state_names:
            raise MessageValidationError(f"{field_name}.state_names", f"{list(msg.state_names)} differ from the "
                                         f"predictor's state space {list(self._state_names)}")
        return state

    def _on_embedding(self, msg: Embedding) -> None:
        try:
            observation = Observation(self._features(msg, "Embedding"), self._state(msg, "Embedding"), msg.header,
                                      stamp_ns(msg.header.stamp))
        except MessageValidationError as exc:
            mismatch = isinstance(exc, ModelMismatchError)
            kind = "model mismatch" if mismatch else "malformed embedding"
            with self._lock:
                self._counts["model_mismatches" if mismatch else "malformed_embeddings"] += 1
                self._input_problem = f"{kind}: {exc}"
            self.get_logger().warning(f"ignoring /jepa/embedding ({kind}): {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._latest, self._input_problem = observation, ""

    def _set_topic_goal(self, make_goal, source: str) -> None:
        """Encode/validate a topic goal with `make_goal()` and make it the goal (unless an action runs)."""
        try:
            goal = make_goal()
        except (ValueError, RuntimeError) as exc:   # ImageEncodingError, MessageValidationError, InputError
            with self._lock:
                self._counts["invalid_goals"] += 1
                self._goal_problem = f"invalid goal on {source}: {exc}"
            self.get_logger().warning(f"ignoring goal on {source}: {exc}")
            return
        with self._lock:
            if self._action_busy:
                self.get_logger().warning(f"ignoring goal on {source}: a ReachGoal action is running")
                return
            self._topic_goal, self._warm, self._goal_problem = goal, None, ""
        self.get_logger().info(f"new goal from {source}")

    def _on_goal_image(self, msg: Image) -> None:
        self._set_topic_goal(lambda: self._encode_image(msg), "/jepa/goal_image")

    def _on_goal_embedding(self, msg: Embedding) -> None:
        self._set_topic_goal(lambda: torch.from_numpy(self._features(msg, "goal_embedding")).to(self._device),
                             "/jepa/goal_embedding")

    # ------------------------------------------------------------------------------------------------ planning
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _usable_observation(self, now_ns: int) -> tuple[Observation | None, str]:
        """The observation to plan from now, or None and why ("" when simply waiting for the next frame)."""
        with self._lock:
            obs, problem, p = self._latest, self._input_problem, self._p
            last_publish, last_planned = self._last_publish_ns, self._last_planned_ns
            last_mono = self._last_plan_mono
        if obs is None:
            return None, problem or "no embedding received on /jepa/embedding"
        age = (now_ns - obs.stamp_ns) * 1e-9
        if age > p["embedding_timeout"]:
            return None, problem or f"stale input: embedding is {age:.2f} s old (> {p['embedding_timeout']} s)"
        if last_planned is not None and obs.stamp_ns <= last_planned:
            return None, ""
        if p["mode"] == "step" and last_publish is not None and \
                obs.stamp_ns < last_publish + int(p["settle_time"] * 1e9):
            return None, ""
        if time.monotonic() - last_mono < p["min_plan_interval"]:
            return None, ""
        return obs, ""

    def _tick(self) -> None:
        """Planning loop: one step toward the action's or the topic's goal when a usable frame is there."""
        obs, problem = self._usable_observation(self._now_ns())
        with self._lock:
            run, topic_goal, goal_problem = self._run, self._topic_goal, self._goal_problem
        if run is not None:
            self._step_action(run, obs, problem)
        elif topic_goal is not None:
            if obs is not None:
                energy, tolerance = self._energy(obs.features, topic_goal), self._p["default_tolerance"]
                holding = energy <= tolerance
                try:
                    result = self._hold_plan(obs, topic_goal) if holding else self._plan(obs, topic_goal)
                except PlanningError:
                    return
                status = f"holding: goal reached (energy {energy:.4g} <= {tolerance:g})" if holding else "planning"
                self._publish_plan(obs, topic_goal, result, 0, lambda: self._topic_goal is topic_goal, status)
            elif problem:
                self._diagnostics.set(WARN, f"waiting: {problem}", **self._values())
        else:
            refused = f" ({goal_problem})" if goal_problem else ""
            self._diagnostics.set(WARN, f"waiting: no goal{refused}", **self._values())

    def _step_action(self, run: ActionRun, obs: Observation | None, problem: str) -> None:
        """Judge the last step of the running ReachGoal on `obs`, then plan and publish the next one."""
        if run.handle.is_cancel_requested:
            run.finish("canceled")
        if run.done.is_set():
            return
        if obs is None and problem:
            self._diagnostics.set(WARN, f"waiting: {problem}", **self._values())
            if time.monotonic() - run.last_input > self._p["stale_abort_after"]:
                run.finish("stale input")
            return
        run.last_input = time.monotonic()   # the latest embedding is fresh (maybe not yet usable)
        if obs is None:
            return
        sequence = run.sequence
        energy = self._energy(obs.features, sequence.current)
        if run.stepped:
            run.stepped = False
            status = sequence.update(energy)
            run.energy = energy
            if status == "done":
                run.finish("reached")
                return
            if status == "failed":
                self.get_logger().info(f"ReachGoal: {sequence.failure_reason}")
                run.finish("budget exhausted")
                return
            if status == "advanced":
                self.get_logger().info(f"ReachGoal: sub-goal {sequence.index - 1} reached (energy {energy:.4g})")
                energy = self._energy(obs.features, sequence.current)
        run.energy = energy
        goal, goal_index = sequence.current, sequence.index
        try:
            result = self._plan(obs, goal)
        except PlanningError as exc:
            run.finish(f"planner error: {exc}")
            return
        if not self._publish_plan(obs, goal, result, goal_index,
                                  lambda: not run.cancel_requested and not run.done.is_set()):
            return
        run.stepped = True
        run.steps += 1
        run.handle.publish_feedback(ReachGoal.Feedback(
            goal_index=goal_index, step=sequence.steps_used + 1, energy=energy, planning_time_ms=result.time_ms,
            action=result.actions[0].tolist()))

    def _plan(self, obs: Observation, goal: torch.Tensor) -> PlanResult:
        """Plan from `obs` toward `goal`, warm-started from the previous plan when it had the same goal.

        Raises PlanningError when there is no valid plan (reported on /diagnostics; the frame counts as used).
        """
        with self._lock:
            planner, warm = self._planner, self._warm
        config = planner.config
        warm_start = None
        if warm is not None and warm[0] is goal and tuple(warm[1].shape) == (config.horizon, config.action_dim):
            warm_start = shift_warm_start(warm[1])
        context, state = self._model_inputs(obs)
        try:
            with self._model_lock:
                result = planner.plan(context, state, goal, warm_start)
            problem = self._invalid_result(result)
        except (ValueError, RuntimeError) as exc:
            problem = str(exc)
        if problem:
            with self._lock:
                self._warm, self._last_planned_ns = None, obs.stamp_ns
            self._diagnostics.set(ERROR, f"no valid plan: {problem}", **self._values())
            self.get_logger().error(f"planner gave no valid plan, nothing published: {problem}",
                                    throttle_duration_sec=5.0)
            raise PlanningError(problem)
        return result

    def _model_inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """An observation as the predictor's one-frame context (1, 1, N, D) and state (1, 1, S)."""
        return (torch.from_numpy(obs.features).to(self._device)[None, None],
                torch.from_numpy(obs.state).float().to(self._device)[None, None])

    def _hold_plan(self, obs: Observation, goal: torch.Tensor) -> PlanResult:
        """The plan that keeps the arm where it is (zero actions), with the predictor's rollout of staying put."""
        started = time.perf_counter()
        with self._lock:
            config = self._planner.config
        actions = torch.zeros(1, config.horizon, config.action_dim, device=self._device)
        context, state = self._model_inputs(obs)
        try:
            with self._model_lock:
                predictions = self._predictor.rollout(context, state, actions)[0]
                energies = l1_energy(predictions, goal)
            result = PlanResult(actions=actions[0], energy=float(energies[-1]), step_energies=energies,
                                predictions=predictions, iterations_run=0,
                                time_ms=(time.perf_counter() - started) * 1e3)
            problem = self._invalid_result(result)
        except (ValueError, RuntimeError) as exc:
            problem = str(exc)
        if problem:
            self._diagnostics.set(ERROR, f"no valid hold plan: {problem}", **self._values())
            raise PlanningError(problem)
        return result

    def _publish_plan(self, obs: Observation, goal: torch.Tensor, result: PlanResult, goal_index: int,
                      still_wanted, status: str = "planning") -> bool:
        """Publish Plan + Prediction unless the goal was dropped meanwhile (`still_wanted()` False, called
        under the node lock). Returns whether it was published."""
        with self._lock:
            if not still_wanted():
                return False
            self._sequence += 1
            self._publish(obs, result, goal_index, self._sequence)
            self._last_publish_ns = self._now_ns()
            self._last_planned_ns = obs.stamp_ns
            self._last_plan_mono = time.monotonic()
            self._last_energy, self._last_plan_ms = result.energy, result.time_ms
            self._warm = (goal, result.actions)
        self._diagnostics.set(OK, status, **self._values())
        return True

    @staticmethod
    def _invalid_result(result: PlanResult) -> str:
        """Why a planner result must not be published ("" when it is fine)."""
        if not result.ok:
            return result.reason or "planner reported failure"
        if not math.isfinite(result.energy):
            return f"energy is {result.energy}"
        for name, tensor in (("actions", result.actions), ("step energies", result.step_energies),
                             ("predictions", result.predictions)):
            if tensor is None or not torch.isfinite(tensor).all():
                return f"{name} are missing or non-finite"
        return ""

    def _publish(self, obs: Observation, result: PlanResult, goal_index: int, sequence: int) -> None:
        energies = result.step_energies.float().cpu().numpy()
        plan = fill_plan(Plan(), result.actions.float().cpu().numpy(), action_names=self._action_names,
                         action_units=self._action_units, energies=energies, energy=result.energy,
                         header=obs.header, goal_index=goal_index, planning_time_ms=result.time_ms,
                         sequence=sequence)
        predictions = result.predictions.float().cpu().numpy()
        prediction = Prediction(header=obs.header, sequence=sequence, energies=energies,
                                steps=[fill_embedding(Embedding(), step, header=obs.header, model_id=self._model_id)
                                       for step in predictions])
        self._plan_pub.publish(plan)
        self._prediction_pub.publish(prediction)

    def _values(self) -> dict:
        """Key values for /diagnostics."""
        with self._lock:
            latest = self._latest
            goal = "action" if self._run is not None else "topic" if self._topic_goal is not None else "none"
            values = dict(goal=goal, last_energy=f"{self._last_energy:.4g}", plan_ms=f"{self._last_plan_ms:.1f}",
                          plans=self._sequence, **self._counts)
        age = (self._now_ns() - latest.stamp_ns) * 1e-9 if latest is not None else math.nan
        values["input_age_s"] = f"{age:.3f}"
        values["model_id"] = self._model_id
        return values

    # ------------------------------------------------------------------------------------------------- action
    def _on_goal_request(self, _request: ReachGoal.Goal) -> GoalResponse:
        with self._lock:
            if self._action_busy:
                self.get_logger().warning("ReachGoal rejected: another goal is being executed")
                return GoalResponse.REJECT
            self._action_busy = True
        return GoalResponse.ACCEPT

    def _on_cancel_request(self, handle: ServerGoalHandle) -> CancelResponse:
        with self._lock:
            if self._run is not None and self._run.handle is handle:
                self._run.cancel_requested = True   # from now on nothing more is published for it
        return CancelResponse.ACCEPT

    def _goal_sequence(self, request: ReachGoal.Goal) -> GoalSequence:
        """The request's goals, budgets and tolerance as a GoalSequence; InvalidGoalError says what is wrong."""
        if bool(request.goal_images) == bool(request.goal_embeddings):
            raise InvalidGoalError("give goal_images or goal_embeddings (one of them, not both)")
        count = len(request.goal_images) + len(request.goal_embeddings)
        if request.step_budgets and len(request.step_budgets) != count:
            raise InvalidGoalError(f"step_budgets has {len(request.step_budgets)} entries for {count} goals")
        goals = []
        for i, image in enumerate(request.goal_images):
            try:
                goals.append(self._encode_image(image))
            except ValueError as exc:   # ImageEncodingError, the encoder's InputError
                raise InvalidGoalError(f"goal_images[{i}]: {exc}") from exc
        try:
            goals += [torch.from_numpy(self._features(msg, f"goal_embeddings[{i}]")).to(self._device)
                      for i, msg in enumerate(request.goal_embeddings)]
            budgets = [int(b) for b in request.step_budgets] or self._p["default_step_budget"]
            tolerance = request.tolerance if request.tolerance > 0 else self._p["default_tolerance"]
            return GoalSequence(goals, budgets, tolerance)
        except ValueError as exc:   # MessageValidationError, GoalSequenceError
            raise InvalidGoalError(str(exc)) from exc

    def _execute(self, handle: ServerGoalHandle) -> ReachGoal.Result:
        try:
            try:
                sequence = self._goal_sequence(handle.request)
            except InvalidGoalError as exc:
                with self._lock:
                    self._counts["invalid_goals"] += 1
                self.get_logger().warning(f"ReachGoal aborted: invalid goal: {exc}")
                handle.abort()
                return ReachGoal.Result(success=False, final_energy=math.nan, reason=f"invalid goal: {exc}")
            run = ActionRun(handle, sequence)
            with self._lock:
                self._run, self._topic_goal, self._warm = run, None, None
            self.get_logger().info(f"ReachGoal: {len(sequence.goals)} goal(s), budgets {sequence.budgets}, "
                                   f"tolerance {sequence.tolerances[0]:g}")
            while not run.done.wait(0.05):
                if handle.is_cancel_requested:
                    run.finish("canceled")
                elif not self.context.ok():
                    run.finish("planner shutting down")
            with self._lock:
                self._run = None
            return self._end(run)
        finally:
            with self._lock:
                self._action_busy = False

    def _end(self, run: ActionRun) -> ReachGoal.Result:
        sequence = run.sequence
        result = ReachGoal.Result(success=run.reason == "reached", final_energy=run.energy, steps=run.steps,
                                  goals_reached=sequence.index, reason=run.reason)
        if result.success:
            run.handle.succeed()
        elif run.reason == "canceled" and run.handle.is_cancel_requested:
            run.handle.canceled()
        else:
            run.handle.abort()
        self.get_logger().info(f"ReachGoal ended: {run.reason} after {run.steps} steps, {sequence.index} goal(s) "
                               f"reached, energy {run.energy:.4g}")
        self._diagnostics.set(OK if result.success else WARN, f"ReachGoal ended: {run.reason}", **self._values())
        return result

    # ------------------------------------------------------------------------------------------------ predict
    def _on_predict(self, request: Predict.Request, response: Predict.Response) -> Predict.Response:
        response.energy = math.nan
        try:
            predictions, energies = self._predict(request)
        except (ValueError, RuntimeError) as exc:
            response.success, response.message = False, str(exc)
            return response
        header, model_id = request.context.header, request.context.model_id
        response.predictions = [fill_embedding(Embedding(), step, header=header, model_id=model_id)
                                for step in predictions]
        if energies is not None:
            response.energies = energies
            response.energy = float(energies[-1])
        response.success, response.message = True, f"{len(predictions)} steps predicted"
        return response

    def _predict(self, request: Predict.Request) -> tuple[np.ndarray, np.ndarray | None]:
        """Roll the predictor out for a Predict request: predictions (H, N, D) and energies (H,) or None."""
        horizon, dim = int(request.horizon), len(self._action_names)
        if not 1 <= horizon <= self._predictor.max_horizon:
            raise ValueError(f"horizon {horizon} must be in [1, {self._predictor.max_horizon}] (the predictor's "
                             f"max horizon)")
        if len(request.actions) != horizon * dim:
            raise ValueError(f"actions has {len(request.actions)} values, horizon {horizon} x {dim} action dims "
                             f"{list(self._action_names)} needs {horizon * dim}")
        actions = np.asarray(request.actions, dtype=np.float32).reshape(1, horizon, dim)
        if not np.isfinite(actions).all():
            raise ValueError("actions contain NaN or Inf")
        context = torch.from_numpy(self._features(request.context, "context")).to(self._device)[None, None]
        state = torch.from_numpy(self._state(request.context, "context")).float().to(self._device)[None, None]
        goal = None
        if len(request.goal.data):
            goal = torch.from_numpy(self._features(request.goal, "goal")).to(self._device)
        with self._model_lock:
            predicted = self._predictor.rollout(context, state, torch.from_numpy(actions).to(self._device))[0]
            energies = None if goal is None else l1_energy(predicted, goal).float().cpu().numpy()
        return predicted.float().cpu().numpy(), energies


def main(args: list[str] | None = None) -> int:
    """Run the planner until shutdown; returns a process exit code (2: bad parameters or models)."""
    return run_node(PlannerNode, "planner_node", args,
                    make_executor=lambda: MultiThreadedExecutor(num_threads=EXECUTOR_THREADS))


if __name__ == "__main__":
    sys.exit(main())

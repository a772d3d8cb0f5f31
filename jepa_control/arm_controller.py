"""The arm controller without ROS: plans and robot states in, one safe command per control cycle out.

:class:`ArmController` holds every rule of the controller node (``jepa_ros/nodes/controller_node.py`` only turns
messages into calls and :class:`Command` values into messages):

- It starts disarmed. :meth:`~ArmController.arm` succeeds only with the e-stop clear and a state younger than
  ``state_timeout``; arming forgets older plans, so only a plan received after arming moves the arm.
- Each new plan (new sequence or stamp) that passes the checks becomes a :class:`Step`: its first action, a
  displacement, executed over ``step_duration``. ``mode: step`` integrates exactly to the displacement (braking in
  time so that it never overshoots it); ``mode: continuous`` holds the velocity displacement / step_duration. In
  both modes the step ends after ``step_duration`` and the command then ramps down to zero within the
  acceleration limits, unless a newer plan takes over.
- A plan's ``dgripper`` action (V-JEPA 2-AC's 7-D actions; closedness, 1 = closed) sets a gripper target that
  every armed cycle's :class:`Command` carries, rate and range limited; a stop holds the gripper and never opens
  it; a non-finite or out-of-range ``dgripper`` refuses the whole plan (the rules: :mod:`jepa_control.gripper`).
- Every command passes the safety filters of :mod:`jepa_control.safety` (speed and norm limits, workspace or
  joint box with braking at the acceleration limit, acceleration limit).
- Time: a plan or state stamped more than ``max_future_stamp`` ahead of the clock is refused and counted; an
  accepted input counts at min(stamp, receive time) and the latest one counts, so no single message can hold a
  watchdog off.
- Immediate stops (the only commands allowed to exceed the acceleration limits): the e-stop, disarming, the
  watchdogs (plan older than ``plan_timeout`` or state older than ``state_timeout``: stop and disarm), the
  stale-state hold (state older than ``motion_state_age``: no motion until a fresh state arrives, still armed),
  and the box's last resort (a measured position with less room to a face than braking needs).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
from transforms3d.euler import euler2axangle

from jepa_common import frames, topics
from jepa_common.settings import SettingsError, setting
from jepa_common.gripper import closedness
from jepa_control.gripper import GRIPPER_NAME, GRIPPER_UNITS, Gripper, check_delta
from jepa_control.safety import BoxLimit, EStop, SafetyFilter, Watchdog, braking_speed
from jepa_control.servo_startup import SERVO_STARTUPS

MODES = ("step", "continuous")
OUTPUTS = ("twist", "joint_trajectory", "position_commands")
GRIPPER_OUTPUTS = ("topic", "action", "none")
LINEAR_NAMES = ("dx", "dy", "dz")
ANGULAR_NAMES = ("droll", "dpitch", "dyaw")
_ANGLE_UNITS = ("rad", "")
_LENGTH_UNITS = ("m", "")
# log(level, message, throttle): level "info", "warning" or "error"; throttle marks repeatable messages
Log = Callable[[str, str, bool], None]


@dataclasses.dataclass(frozen=True)
class ControllerSettings:
    """The controller node's parameters; the defaults are the built-in MuJoCo simulation's (3-joint arm,
    end-effector displacement actions [dx, dy, dz] of one 0.1 s control period)."""

    rate: float = setting(20.0, "control loop rate", unit="Hz", low=1.0, high=1000.0, read_only=True)
    output: str = setting("twist", "command interface: twist (<servo_node>/delta_twist_cmds), joint_trajectory "
                          "(~/joint_trajectory) or position_commands (~/commands, std_msgs/Float64MultiArray)",
                          choices=OUTPUTS, read_only=True)
    mode: str = setting("step", "step: each plan's first action once over step_duration, then zero until the "
                        "next plan; continuous: hold that velocity for step_duration (then ramp down) unless a "
                        "newer plan takes over", choices=MODES, read_only=True)
    step_duration: float = setting(0.1, "duration of one action (displacement); must match the model's action "
                                   "period (sim: 0.1 s)", unit="s", low=0.001, high=10.0, read_only=True)
    frame_id: str = setting(frames.BASE, "base frame: /ee_pose must be stamped in it (a pose in another frame is "
                            "refused and stops the arm), the workspace box is in it, and the twist commands are "
                            "expressed in it and stamped with it (MoveIt Servo transforms a TwistStamped from its "
                            "header frame into its planning frame, so this must be a link of the robot model)",
                            read_only=True)
    dry_run: bool = setting(False, "the whole loop runs, but each command is published on ~/preview (same type as "
                            "the output) and nothing on the actuator topic; no Servo start-up", read_only=True)
    servo_startup: str = setting("none", "MoveIt Servo start-up before the first command (twist output): none (the "
                                 "sim, or Servo started by hand), humble (std_srvs/srv/Trigger "
                                 "<servo_node>/start_servo), jazzy (moveit_msgs/srv/ServoCommandType "
                                 "<servo_node>/switch_command_type, TWIST; Jazzy and later)",
                                 choices=SERVO_STARTUPS, read_only=True)
    servo_node: str = setting(topics.SERVO_NODE, "fully qualified name of the MoveIt Servo node: twist commands go to "
                              "<servo_node>/delta_twist_cmds, the start-up calls <servo_node>/start_servo or "
                              "<servo_node>/switch_command_type", read_only=True)
    servo_retry: float = setting(1.0, "seconds between Servo start-up attempts until one succeeds", unit="s",
                                 low=0.05, high=60.0, read_only=True)
    plan_timeout: float = setting(1.5, "armed and the plan (camera stamp) older than this: stop and disarm; one "
                                  "sim step (frame + encode + plan + settle) takes 0.3-0.6 s on 2 loaded CPU "
                                  "cores", unit="s", low=0.01, high=60.0, read_only=True)
    state_timeout: float = setting(1.0, "armed and the state older than this: stop and disarm (a real arm: 0.3, "
                                   "see controller_arm.yaml); arming needs a state younger than this",
                                   unit="s", low=0.01, high=60.0, read_only=True)
    motion_state_age: float = setting(0.1, "no motion while the state is older than this (two control periods "
                                      "at 20 Hz): the workspace box cannot vouch for an older pose; motion "
                                      "resumes with a fresh state (at most state_timeout)", unit="s",
                                      low=0.001, high=60.0, read_only=True)
    max_future_stamp: float = setting(0.1, "a plan or state stamped more than this ahead of the node's clock is "
                                      "refused and counted (clock skew between machines, /clock jitter under "
                                      "use_sim_time)", unit="s", low=0.0, high=10.0, read_only=True)
    max_linear_speed: float = setting(0.5, "norm of the end-effector velocity", unit="m/s", low=0.0, high=10.0,
                                      read_only=True)
    max_axis_speed: float = setting(0.5, "end-effector speed per axis", unit="m/s", low=0.0, high=10.0,
                                    read_only=True)
    max_angular_speed: float = setting(1.0, "norm of the angular velocity", unit="rad/s", low=0.0, high=20.0,
                                       read_only=True)
    max_linear_accel: float = setting(5.0, "linear acceleration and deceleration per axis", unit="m/s^2",
                                      low=0.001, high=100.0, read_only=True)
    max_angular_accel: float = setting(8.0, "angular acceleration and deceleration per axis", unit="rad/s^2",
                                       low=0.001, high=1000.0, read_only=True)
    workspace_min: tuple = setting((0.13, -0.22, 0.03), "end-effector box in frame_id, lower corner [x, y, z] "
                                   "(sim workspace + 2 cm); commands are clipped to the box", unit="m",
                                   read_only=True)
    workspace_max: tuple = setting((0.47, 0.22, 0.32), "end-effector box, upper corner [x, y, z]", unit="m",
                                   read_only=True)
    joint_names: tuple = setting(("base_yaw", "shoulder_pitch", "elbow_pitch"), "joints commanded by the joint "
                                 "outputs (plan action names must be exactly these)", read_only=True,
                                 item_type=str)
    joint_lower: tuple = setting((-2.6, -1.2, 0.0), "joint position lower limits", unit="rad or m",
                                 read_only=True)
    joint_upper: tuple = setting((2.6, 1.75, 2.7), "joint position upper limits", unit="rad or m",
                                 read_only=True)
    max_joint_speed: float = setting(1.5, "speed per joint", unit="rad/s", low=0.0, high=50.0, read_only=True)
    max_joint_accel: float = setting(10.0, "acceleration and deceleration per joint", unit="rad/s^2",
                                     low=0.001, high=1000.0, read_only=True)
    gripper_output: str = setting("topic", "gripper command interface for plans with a dgripper action (closedness "
                                  "change, 1 = closed): topic (std_msgs/Float64 closedness on "
                                  f"{topics.GRIPPER_COMMAND}), action (control_msgs/action/GripperCommand goals on "
                                  "gripper_action, position in finger joint units) or none (plans with dgripper "
                                  "are refused); with dry_run both publish the closedness on ~/gripper_preview "
                                  "instead", choices=GRIPPER_OUTPUTS, read_only=True)
    gripper_action: str = setting(topics.GRIPPER_ACTION, "fully qualified name of the GripperCommand action "
                                  "(gripper_output action; ros2_control's gripper action controllers serve "
                                  "<controller>/gripper_cmd)", read_only=True)
    gripper_joint: str = setting("", "finger joint in /joint_states whose position is the measured gripper "
                                 "opening; empty: none measured (then the first dgripper plan is refused, the "
                                 "gripper's position being unknown)", read_only=True)
    gripper_open_position: float = setting(0.04, "gripper_joint position when fully open (closedness 0; Franka "
                                           "Hand finger joint: 0.04 m), also the action goal's position for 0",
                                           unit="m or rad", low=-10.0, high=10.0, read_only=True)
    gripper_closed_position: float = setting(0.0, "gripper_joint position when fully closed (closedness 1), also "
                                             "the action goal's position for 1", unit="m or rad", low=-10.0,
                                             high=10.0, read_only=True)
    gripper_min: float = setting(0.0, "lowest commanded closedness (0 = fully open)", unit="1", low=0.0, high=1.0,
                                 read_only=True)
    gripper_max: float = setting(1.0, "highest commanded closedness (1 = fully closed)", unit="1", low=0.0,
                                 high=1.0, read_only=True)
    max_gripper_speed: float = setting(1.0, "largest change of the commanded closedness per second (1: open to "
                                       "closed in 1 s)", unit="1/s", low=0.01, high=100.0, read_only=True)
    gripper_max_effort: float = setting(20.0, "GripperCommand goal max_effort (gripper_output action; its meaning "
                                        "is the action server's, 0 often means no limit)", unit="N", low=0.0,
                                        high=1000.0, read_only=True)

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise SettingsError(f"output={self.output!r}: must be one of {list(OUTPUTS)}")
        if self.gripper_output not in GRIPPER_OUTPUTS:
            raise SettingsError(f"gripper_output={self.gripper_output!r}: must be one of {list(GRIPPER_OUTPUTS)}")
        if self.mode not in MODES:
            raise SettingsError(f"mode={self.mode!r}: must be one of {list(MODES)}")
        if self.servo_startup != "none" and self.output != "twist":
            raise SettingsError(f"servo_startup={self.servo_startup} is MoveIt Servo's start-up: it needs output "
                                f"twist, not {self.output}")
        if not self.servo_node.startswith("/") or self.servo_node.endswith("/") or " " in self.servo_node:
            raise SettingsError(f"servo_node={self.servo_node!r}: needs the node's fully qualified name, e.g. "
                                f"{topics.SERVO_NODE}")
        if self.gripper_min >= self.gripper_max:
            raise SettingsError(f"gripper_min {self.gripper_min} must be below gripper_max {self.gripper_max}")
        if self.gripper_open_position == self.gripper_closed_position:
            raise SettingsError(f"gripper_open_position and gripper_closed_position are both "
                                f"{self.gripper_open_position}: open and closed must differ")
        if self.gripper_output == "action" and (not self.gripper_action.startswith("/")
                                                or self.gripper_action.endswith("/") or " " in self.gripper_action):
            raise SettingsError(f"gripper_action={self.gripper_action!r}: needs the action's fully qualified name, "
                                f"e.g. {topics.GRIPPER_ACTION}")
        if not self.frame_id:
            raise SettingsError("frame_id is empty: name the base frame of /ee_pose and of the twist commands")
        for name in ("workspace_min", "workspace_max"):
            if len(getattr(self, name)) != 3:
                raise SettingsError(f"{name}={list(getattr(self, name))}: needs 3 values [x, y, z]")
        if self.motion_state_age > self.state_timeout:
            raise SettingsError(f"motion_state_age {self.motion_state_age} s must not exceed state_timeout "
                                f"{self.state_timeout} s")
        if self.joint_space:
            if not self.joint_names or "" in self.joint_names:
                raise SettingsError(f"output={self.output} needs joint_names (the plan's action names), got "
                                    f"{list(self.joint_names)}")
            for name in ("joint_lower", "joint_upper"):
                if len(getattr(self, name)) != len(self.joint_names):
                    raise SettingsError(f"{name} has {len(getattr(self, name))} values for "
                                        f"{len(self.joint_names)} joint_names")

    @property
    def period(self) -> float:
        """Seconds per control cycle."""
        return 1.0 / self.rate

    @property
    def joint_space(self) -> bool:
        """Whether the output commands joint positions (else an end-effector twist)."""
        return self.output != "twist"


# --------------------------------------------------------------------------------------------- action mapping
class ActionMappingError(ValueError):
    """A plan's action space does not fit the controller's output; the message names the offending action."""


def _check_units(names: Sequence[str], units: Sequence[str], allowed: dict[str, tuple[str, ...]]) -> None:
    if not units:
        return
    for name, unit in zip(names, units):
        if unit not in allowed[name]:
            raise ActionMappingError(f"action {name!r} has unit {unit!r}; expected one of {allowed[name]}")


def cartesian_displacement(names: Sequence[str], units: Sequence[str],
                           row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An action row -> (linear displacement [m] (3,), rotation vector [rad] (3,)); missing dims are zero.

    Names ``dx, dy, dz`` [m] and ``droll, dpitch, dyaw`` [rad] (static-axis xyz Euler increments); any other name
    is refused: the controller never guesses what a dimension means.
    """
    known = LINEAR_NAMES + ANGULAR_NAMES
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ActionMappingError(f"action names {unknown} are not end-effector displacements; a twist output "
                                 f"accepts {list(known)}")
    if len(set(names)) != len(names):
        raise ActionMappingError(f"action names repeat: {list(names)}")
    allowed = {**{n: _LENGTH_UNITS for n in LINEAR_NAMES}, **{n: _ANGLE_UNITS for n in ANGULAR_NAMES}}
    _check_units(names, units, allowed)
    values = dict(zip(names, np.asarray(row, dtype=np.float64)))
    linear = np.array([values.get(n, 0.0) for n in LINEAR_NAMES])
    roll, pitch, yaw = (values.get(n, 0.0) for n in ANGULAR_NAMES)
    axis, angle = euler2axangle(roll, pitch, yaw, "sxyz")
    return linear, np.asarray(axis, dtype=np.float64) * angle


def joint_displacement(names: Sequence[str], units: Sequence[str], row: np.ndarray,
                       joint_names: Sequence[str]) -> np.ndarray:
    """An action row of joint displacements (names exactly ``joint_names``, any order) -> ``joint_names`` order."""
    if sorted(names) != sorted(joint_names):
        raise ActionMappingError(f"action names {list(names)} are not the controller's joint names "
                                 f"{list(joint_names)}; joint outputs need joint-displacement plans")
    _check_units(names, units, {n: ("rad", "m", "") for n in names})
    values = dict(zip(names, np.asarray(row, dtype=np.float64)))
    return np.array([values[n] for n in joint_names])


# ------------------------------------------------------------------------------------------------------ values
@dataclasses.dataclass(frozen=True)
class PlanInput:
    """A received plan in physical units: ``actions`` (horizon, action_dim), row 0 is executed."""

    actions: np.ndarray
    action_names: tuple[str, ...]
    action_units: tuple[str, ...] = ()
    energies: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    energy: float = 0.0
    sequence: int = 0


@dataclasses.dataclass
class Step:
    """The plan action in execution: ``velocity`` = displacement / step_duration, ``remaining`` displacement
    (step mode), ``cycles_left`` until the step ends."""

    velocity: np.ndarray
    remaining: np.ndarray
    cycles_left: int


@dataclasses.dataclass(frozen=True)
class Command:
    """One cycle's output. ``velocity``: twist [vx, vy, vz, wx, wy, wz] or joint velocities. ``positions``: the
    joint set-point (or, with ``stop``, the position to hold); None: the joint outputs send nothing. ``stop``: an
    immediate stop (zero twist, or hold ``positions`` with zero velocity). ``gripper``: the gripper command,
    closedness in [0, 1] (1 = closed), or None: nothing to send to the gripper this cycle (no plan with a
    ``dgripper`` action since arming, or disarmed after the one hold of a stop)."""

    velocity: np.ndarray
    positions: np.ndarray | None = None
    stop: bool = False
    gripper: float | None = None


# -------------------------------------------------------------------------------------------------- controller
class ArmController:
    """Plans and states in, :class:`Command` out; see the module docstring for the rules.

    Times are seconds on the node's clock; every method takes the current time ``now`` where it matters.
    """

    def __init__(self, settings: ControllerSettings, log: Log | None = None):
        s = self.settings = settings
        self._log = log or (lambda level, message, throttle: None)
        self._dt = s.period
        self._step_cycles = max(1, round(s.step_duration / self._dt))
        self._plan_watchdog = Watchdog(s.plan_timeout, s.max_future_stamp)
        self._state_watchdog = Watchdog(s.state_timeout, s.max_future_stamp)
        if s.joint_space:
            k = len(s.joint_names)
            self._filters = [SafetyFilter(k, s.max_joint_speed, None, BoxLimit(s.joint_lower, s.joint_upper),
                                          s.max_joint_accel)]
            self._accel = np.full(k, s.max_joint_accel)
        else:
            self._filters = [SafetyFilter(3, s.max_axis_speed, s.max_linear_speed,
                                          BoxLimit(s.workspace_min, s.workspace_max), s.max_linear_accel),
                             SafetyFilter(3, None, s.max_angular_speed, None, s.max_angular_accel)]
            self._accel = np.array([s.max_linear_accel] * 3 + [s.max_angular_accel] * 3)
        self._dim = self._accel.size
        self.estop_state = EStop()
        self.armed = False
        self.fault = ""                       # why the watchdog last stopped the arm (cleared by arming)
        self.step: Step | None = None
        self.velocity = np.zeros(self._dim)   # the last commanded velocity
        self._moving = False                  # joint outputs: a set-point was sent since the last stop
        self._position: np.ndarray | None = None
        self._setpoint: np.ndarray | None = None
        self._last_plan_key: tuple | None = None
        self.last_plan_stamp: float | None = None
        self.counts = {"executed_plans": 0, "rejected_plans": 0, "ignored_state": 0, "future_stamps": 0,
                       "stale_state_holds": 0, "wrong_frame": 0}
        self.last_rejection = ""
        self._wrong_frame = ""                # the latest pose refused for its frame
        self.gripper = None if s.gripper_output == "none" else Gripper(
            s.gripper_min, s.gripper_max, s.max_gripper_speed, self._dt, s.state_timeout)

    # ---------------------------------------------------------------------------------------------- inputs
    def state_age(self, now: float) -> float:
        """Seconds since the latest accepted state (inf before the first)."""
        return self._state_watchdog.age(now)

    def on_state(self, position: Sequence[float], stamp: float, now: float) -> bool:
        """A measured position (end effector [x, y, z], or joints in ``joint_names`` order); False if refused."""
        position = np.asarray(position, dtype=np.float64).reshape(-1)
        expected = len(self.settings.joint_names) if self.settings.joint_space else 3
        if position.size != expected or not np.all(np.isfinite(position)):
            return self._ignore_state(f"state {position.tolist()}: needs {expected} finite values")
        if not self._state_watchdog.feed(stamp, now):
            self.counts["future_stamps"] += 1
            return self._ignore_state(f"state stamped {stamp - now:.3f} s ahead of the clock (max_future_stamp "
                                      f"{self.settings.max_future_stamp} s)")
        self._position = position
        return True

    def on_pose(self, position: Sequence[float], frame: str, stamp: float, now: float) -> Command | None:
        """An end-effector position [x, y, z] stamped in ``frame``: taken as :meth:`on_state` when ``frame`` is
        ``frame_id``. Otherwise it is refused and counted, the status shows the fault until re-arming, and an
        armed arm stops and disarms: the returned stop is to be sent now (None otherwise)."""
        if frame == self.settings.frame_id:
            self.on_state(position, stamp, now)
            return None
        self.counts["wrong_frame"] += 1
        self.last_rejection = (f"pose in frame {frame!r}, expected frame_id {self.settings.frame_id!r} (no "
                               f"transform: fix the pose source or frame_id)")
        self._ignore_state(self.last_rejection)
        self.fault = self._wrong_frame = f"wrong frame: {self.last_rejection}"
        return self.disarm(self.fault, now) if self.armed else None

    def on_joint_state(self, names: Sequence[str], positions: Sequence[float], stamp: float, now: float) -> bool:
        """A joint state message's names and positions (any order, extra joints allowed); False if refused.
        Names and positions of different lengths are refused, as sensor_msgs/JointState requires."""
        if len(names) != len(positions):
            return self._ignore_state(f"joint state with {len(names)} names but {len(positions)} positions "
                                      "(sensor_msgs/JointState: name and position must have the same length)")
        index = {name: i for i, name in enumerate(names)}
        try:
            position = [positions[index[n]] for n in self.settings.joint_names]
        except (KeyError, IndexError):
            return self._ignore_state(f"joint state without positions for all of {list(self.settings.joint_names)}"
                                      f" (names: {list(names)})")
        return self.on_state(position, stamp, now)

    def on_gripper_state(self, names: Sequence[str], positions: Sequence[float], stamp: float, now: float) -> bool:
        """A joint state message's names and positions: ``gripper_joint``'s position is the measured gripper
        opening (turned into closedness); False when it is absent, not finite or stamped in the future."""
        s = self.settings
        if self.gripper is None or not s.gripper_joint or s.gripper_joint not in names:
            return False
        index = list(names).index(s.gripper_joint)
        if index >= len(positions) or not math.isfinite(stamp) or stamp > now + s.max_future_stamp:
            return False
        value = closedness(float(positions[index]), s.gripper_open_position, s.gripper_closed_position)
        return self.gripper.measure(value, min(stamp, now))

    def _ignore_state(self, reason: str) -> bool:
        self.counts["ignored_state"] += 1
        self._log("warning", f"state ignored: {reason}", True)
        return False

    def reject_plan(self, reason: str) -> bool:
        """Count and log a refused plan (also for plans the caller could not read); returns False."""
        self.counts["rejected_plans"] += 1
        self.last_rejection = reason
        self._log("warning", f"plan rejected: {reason}", True)
        return False

    def on_plan(self, plan: PlanInput, stamp: float, now: float) -> bool:
        """A plan stamped ``stamp`` (its camera frame); True when it became the step in execution."""
        for name, values in (("actions", plan.actions), ("energies", plan.energies), ("energy", plan.energy)):
            if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
                return self.reject_plan(f"Plan.{name} contains NaN or Inf")
        try:
            displacement, gripper_delta = self._displacement(plan)
        except ActionMappingError as exc:
            return self.reject_plan(str(exc))
        if gripper_delta is not None and check_delta(gripper_delta):
            return self.reject_plan(check_delta(gripper_delta))
        s = self.settings
        if not math.isfinite(stamp) or stamp > now + s.max_future_stamp:
            self.counts["future_stamps"] += 1
            return self.reject_plan(f"Plan.header.stamp is {stamp - now:.3f} s in the future (max_future_stamp "
                                    f"{s.max_future_stamp} s)")
        if now - stamp > s.plan_timeout:
            return self.reject_plan(f"Plan.header.stamp is {now - stamp:.3f} s old (plan_timeout "
                                    f"{s.plan_timeout} s)")
        key = (int(plan.sequence), stamp)
        if key == self._last_plan_key or (self.last_plan_stamp is not None and stamp < self.last_plan_stamp):
            return False  # a repeat or an out-of-order older plan: each plan runs once
        self._last_plan_key, self.last_plan_stamp = key, stamp
        if not self.armed or self.estop_state.engaged:
            return False  # kept only for the plan age in diagnostics; arming forgets it
        if gripper_delta is not None:
            problem = self.gripper.plan(gripper_delta, self.armed, now)
            if problem:
                return self.reject_plan(problem)
        self._plan_watchdog.feed(stamp, now)
        self.counts["executed_plans"] += 1
        self.step = Step(velocity=displacement / s.step_duration, remaining=displacement.copy(),
                         cycles_left=self._step_cycles)
        return True

    def _displacement(self, plan: PlanInput) -> tuple[np.ndarray, float | None]:
        """(the arm's displacement, the ``dgripper`` action or None) of the plan's first action."""
        actions = np.asarray(plan.actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0 or actions.shape[1] != len(plan.action_names):
            raise ActionMappingError(f"actions of shape {actions.shape} for {len(plan.action_names)} action names")
        names, units, row = list(plan.action_names), list(plan.action_units), actions[0]
        delta = None
        if GRIPPER_NAME in names:
            if self.gripper is None:
                raise ActionMappingError(f"action {GRIPPER_NAME!r} but gripper_output is none: this controller "
                                         f"commands no gripper")
            if names.count(GRIPPER_NAME) > 1:
                raise ActionMappingError(f"action names repeat: {names}")
            index = names.index(GRIPPER_NAME)
            if units:
                _check_units([GRIPPER_NAME], [units.pop(index)], {GRIPPER_NAME: GRIPPER_UNITS})
            delta = float(row[index])
            names.pop(index)
            row = np.delete(row, index)
        if self.settings.joint_space:
            return joint_displacement(names, units, row, self.settings.joint_names), delta
        return np.concatenate(cartesian_displacement(names, units, row)), delta

    # ------------------------------------------------------------------------------- arm, disarm, e-stop
    def arm(self, now: float, blocker: str = "") -> tuple[bool, str]:
        """Arm if nothing blocks it (``blocker``: why the actuator cannot take commands yet, e.g. MoveIt Servo's
        start-up), the e-stop is clear and the state fresh; returns (success, message)."""
        if blocker:
            return False, blocker
        if self.estop_state.engaged:
            return False, f"e-stop engaged ({self.estop_state.reason}): clear it first"
        if self._state_watchdog.expired(now):
            refused = f"; last refused pose: {self._wrong_frame}" if self._wrong_frame else ""
            return False, (f"no fresh state (age {self.state_age(now):.3f} s > state_timeout "
                           f"{self.settings.state_timeout} s){refused}")
        if self.armed:  # re-arming must not cut the step in progress (an abrupt stop past the accel limit)
            return True, "already armed"
        self.armed, self.fault, self.step = True, "", None
        self._plan_watchdog.reset()
        self._reset_filters()
        self._log("info", "armed", False)
        return True, "armed: waiting for a new plan"

    def disarm(self, reason: str, now: float) -> Command:
        """Disarm; returns the stop command to send now (not at the next cycle)."""
        if self.armed:
            self._log("warning", f"disarmed: {reason}", False)
        self.armed, self.step = False, None
        stop = self._stop(now)
        held = self.gripper.hold(now) if self.gripper is not None else None
        if held is not None:
            self._log("warning", f"gripper holds at closedness {held:.3f} ({reason})", False)
        return dataclasses.replace(stop, gripper=held)

    def estop(self, engage: bool, source: str, now: float) -> Command | None:
        """``~/estop``: true engages (and disarms; returns the stop to send now), false clears (no re-arm)."""
        if engage:
            if not self.estop_state.engaged:
                self._log("error", f"E-STOP engaged by {source}", False)
            self.estop_state.engage(source)
            return self.disarm(f"e-stop ({source})", now)
        self.estop_state.clear()
        self._log("info", "e-stop cleared (still disarmed: call ~/arm)", False)
        return None

    def estop_topic(self, value: bool, source: str, now: float) -> Command | None:
        """The latched e-stop topic: true engages; false is ignored (a stale publisher cannot release a stop)."""
        if value:
            return self.estop(True, source, now)
        if self.estop_state.engaged:
            self._log("warning", f"false on {source} ignored: only the ~/estop service clears an e-stop", True)
        return None

    # ------------------------------------------------------------------------------------------- control
    def cycle(self, now: float) -> Command:
        """The command for the control period starting at ``now``."""
        if self.armed:
            problem = self._watchdog_problem(now)
            if problem:
                self._log("error", f"watchdog stop: {problem}; disarmed (call ~/arm to resume)", False)
                self.fault = f"watchdog stop: {problem}"
                return self.disarm(f"watchdog: {problem}", now)
        if not self.armed:
            return self._stop(now) if self._moving or not self.settings.joint_space else self._idle()
        if self.step is None and not self.velocity.any():
            command = self._stop(now) if self._moving or not self.settings.joint_space else self._idle()
        elif self.state_age(now) > self.settings.motion_state_age:
            return self._with_gripper(self._hold_for_state(now), advance=False)
        else:
            command = self._move()
        return self._with_gripper(command)

    def _with_gripper(self, command: Command, advance: bool = True) -> Command:
        """An armed cycle's command with the gripper's (rate limited toward its target; ``advance`` False: the
        command stays where it is, as while the state is too old for the arm to move)."""
        gripper = self.gripper
        if gripper is None or not gripper.active:
            return command
        return dataclasses.replace(command, gripper=gripper.cycle() if advance else gripper.commanded)

    def _watchdog_problem(self, now: float) -> str:
        state, plan = self._state_watchdog, self._plan_watchdog
        if state.expired(now):
            return f"state stale ({state.age(now):.3f} s > {state.timeout} s)"
        if plan.stamp is not None and plan.expired(now):
            return f"plan stale ({plan.age(now):.3f} s > {plan.timeout} s)"
        return ""

    def _hold_for_state(self, now: float) -> Command:
        """State too old for the box to vouch for motion: stop now; the step's time runs on."""
        self._advance_step()
        if not self.velocity.any() and not self._moving:
            return self._idle() if self.settings.joint_space else Command(np.zeros(self._dim), stop=True)
        self.counts["stale_state_holds"] += 1
        self._log("warning", f"holding: state {self.state_age(now):.3f} s old (motion_state_age "
                  f"{self.settings.motion_state_age} s)", True)
        return self._stop(now)

    def _desired(self) -> np.ndarray:
        step = self.step
        if step is None:
            return np.zeros(self._dim)          # after the step: ramp down
        if self.settings.mode == "continuous":
            return step.velocity
        spread = step.remaining / (step.cycles_left * self._dt)
        # never faster than braking at the acceleration limit allows, so the step ends on its displacement
        cap = braking_speed(np.abs(step.remaining), self._accel, self._dt)
        return np.clip(spread, -cap, cap)

    def _move(self) -> Command:
        desired = self._desired()
        if self.settings.joint_space:
            if self._setpoint is None or not self._moving:
                self._setpoint = self._position.copy()
            velocity = self._filters[0].apply(desired, self._dt, self._setpoint)
        else:
            velocity = np.concatenate([self._filters[0].apply(desired[:3], self._dt, self._position),
                                       self._filters[1].apply(desired[3:], self._dt)])
        if self.step is not None:
            self.step.remaining = self.step.remaining - velocity * self._dt
        self._advance_step()
        self.velocity = velocity
        if not self.settings.joint_space:
            return Command(velocity)
        if not velocity.any():
            # the ramp ended: the last set-point is where the arm stops (a hold would pull it back)
            self._moving = False
            return self._idle()
        self._setpoint = self._setpoint + velocity * self._dt
        self._moving = True
        return Command(velocity, positions=self._setpoint.copy())

    def _advance_step(self) -> None:
        if self.step is not None:
            self.step.cycles_left -= 1
            if self.step.cycles_left <= 0:
                self.step = None

    def _stop(self, now: float) -> Command:
        """An immediate stop: filters restart from zero; joints hold (the measured position while it is younger
        than state_timeout, else the last set-point) once after motion, then nothing."""
        self._reset_filters()
        hold = None
        if self.settings.joint_space and self._moving:
            fresh = not self._state_watchdog.expired(now) and self._position is not None
            hold = self._position.copy() if fresh else self._setpoint
        self._moving, self._setpoint = False, None
        return Command(np.zeros(self._dim), positions=hold, stop=True)

    def _idle(self) -> Command:
        return Command(np.zeros(self._dim))

    def _reset_filters(self) -> None:
        for safety in self._filters:
            safety.stop()
        self.velocity = np.zeros(self._dim)

    # -------------------------------------------------------------------------------------------- status
    def status(self, now: float) -> tuple[str, str, dict]:
        """(level "ok" | "warn" | "error", message, key values) for /diagnostics; in a dry run the message starts
        with "DRY RUN"."""
        level, message, values = self._status(now)
        if self.settings.dry_run:
            message = f"DRY RUN (commands on ~/preview only): {message}"
        return level, message, values

    def _status(self, now: float) -> tuple[str, str, dict]:
        values = {
            "armed": self.armed,
            "dry_run": self.settings.dry_run,
            "frame_id": self.settings.frame_id,
            "estop": self.estop_state.engaged,
            "output": self.settings.output,
            "plan_age": f"{now - self.last_plan_stamp:.3f}" if self.last_plan_stamp is not None else "none",
            "state_age": f"{self.state_age(now):.3f}",
            "commanded_velocity": " ".join(f"{v:.4f}" for v in self.velocity),
            "commanded_speed": f"{float(np.linalg.norm(self.velocity[:3])):.4f}",
            **self.counts,
            "last_rejection": self.last_rejection,
        }
        if self.gripper is not None:
            for key, value in (("gripper_target", self.gripper.target), ("gripper_command", self.gripper.commanded),
                               ("gripper_measured", self.gripper.measured)):
                values[key] = "none" if value is None else f"{value:.4f}"
        if self.estop_state.engaged:
            return "error", f"e-stop engaged ({self.estop_state.reason})", values
        if self.fault:
            return "error", f"{self.fault}; re-arm to resume", values
        if not self.armed:
            return "warn", "disarmed", values
        if self.state_age(now) > self.settings.motion_state_age:
            return "warn", f"armed, holding: state older than motion_state_age {self.settings.motion_state_age} s", \
                values
        if self.step is None and self._plan_watchdog.stamp is None:
            return "warn", "armed, waiting for a plan", values
        return "ok", "armed, executing", values

"""Controller node: executes the first action of the latest plan, safely, at a fixed rate.

``python -m jepa_ros.nodes.controller_node --ros-args --params-file config/controller.yaml``

Inputs: /jepa/plan (jepa_msgs/Plan), the robot state (/ee_pose geometry_msgs/PoseStamped for the twist output,
/joint_states sensor_msgs/JointState for the joint outputs), /jepa/estop (std_msgs/Bool, transient-local).
Outputs (parameter ``output``): ``twist`` -> /servo_node/delta_twist_cmds (geometry_msgs/TwistStamped);
``joint_trajectory`` -> ~/joint_trajectory; ``position_commands`` -> ~/commands (std_msgs/Float64MultiArray).
Services: ~/arm and ~/estop (std_srvs/SetBool). Diagnostics on /diagnostics as "jepa_ros: controller_node".

Rules (the controller is the only node that moves the arm, and it fails safe):
- It starts DISARMED. ~/arm true arms it only when no e-stop is engaged and the state is fresh; arming forgets
  older plans, so only a plan received after arming moves the arm.
- Step mode (default): each new plan (new sequence or stamp) has its first action, an end-effector or joint
  displacement, executed once over ``step_duration``; then the command is zero until the next plan. A newer plan
  preempts the step in progress. Continuous mode keeps the velocity displacement/step_duration until the next plan.
- Every cycle the safety filters (speed and norm limits, workspace or joint-limit box, acceleration limit) apply.
- Watchdog: armed with a plan older than ``plan_timeout`` (judged on Plan.header.stamp, the camera stamp) or a
  state older than ``state_timeout`` -> stop at the next cycle AND disarm. A planner that dies and comes back
  therefore never moves the arm again until someone re-arms.
- E-stop: ~/estop true or a true on /jepa/estop engages it; the stop command is sent at once (not at the next
  cycle), the controller disarms and the stop latches. Only ~/estop false clears it (a false on the topic is
  ignored, so a stale publisher cannot release a stop); clearing does not re-arm.
- Stopped (disarmed, e-stop, watchdog, waiting for a plan): the twist output sends a zero twist every cycle; the
  joint outputs send one hold command (current position) when motion stops and nothing while stopped, so a
  disarmed controller never fights another controller for the joints.
"""
from __future__ import annotations

import sys

import numpy as np
from geometry_msgs.msg import PoseStamped
from jepa_msgs.msg import Plan
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from jepa_ros.nodes.command_adapters import (OUTPUTS, ActionMappingError, JointTrajectoryAdapter,
                                           PositionCommandsAdapter, TwistAdapter, cartesian_displacement,
                                           joint_displacement)
from jepa_planner.safety import BoxLimit, EStop, SafetyFilter, Watchdog
from jepa_ros.msg_validation import MessageValidationError, plan_actions
from jepa_ros.ros_util import ERROR, OK, WARN, Diagnostics, declare, latched_qos, reliable_qos, run_node, stamp_seconds

MODES = ("step", "continuous")
SIM_JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch"]


class ControllerNode(Node):
    """Plan -> safe actuator commands at ``rate`` Hz (see the module docstring for the rules)."""

    def __init__(self, **kwargs):
        super().__init__("controller_node", **kwargs)
        p = self._declare_parameters()
        self._dt = 1.0 / p["rate"]
        self._mode = p["mode"]
        self._step_cycles = max(1, round(p["step_duration"] / self._dt))
        self._step_duration = p["step_duration"]
        self._plan_watchdog = Watchdog(p["plan_timeout"])
        self._state_watchdog = Watchdog(p["state_timeout"])
        self._estop = EStop()
        self._armed = False
        self._fault = ""                     # why the watchdog last stopped the arm (cleared by arming)
        self._step: dict | None = None       # {"velocity": desired (k,), "remaining": (k,) or None, "cycles": n}
        self._last_plan_key: tuple | None = None
        self._last_plan_stamp: float | None = None
        self._moving = False
        self._command = np.zeros(6)          # last commanded velocity (for diagnostics)
        self._counts = {"executed_plans": 0, "rejected_plans": 0, "ignored_state": 0}
        self._last_rejection = ""
        self._position: np.ndarray | None = None
        self._setpoint: np.ndarray | None = None

        out_qos = reliable_qos(10)
        if self._output == "twist":
            self._adapter = TwistAdapter(self, "/servo_node/delta_twist_cmds", p["frame_id"], out_qos)
            self._linear = SafetyFilter(3, p["max_axis_speed"], p["max_linear_speed"],
                                        BoxLimit(p["workspace_min"], p["workspace_max"]), p["max_linear_accel"])
            self._angular = SafetyFilter(3, None, p["max_angular_speed"], None, p["max_angular_accel"])
            self.create_subscription(PoseStamped, "/ee_pose", self._on_pose, reliable_qos(5))
        else:
            if self._output == "joint_trajectory":
                self._adapter = JointTrajectoryAdapter(self, "~/joint_trajectory", self._joint_names,
                                                       self._dt, out_qos)
            else:
                self._adapter = PositionCommandsAdapter(self, "~/commands", out_qos)
            self._joint = SafetyFilter(len(self._joint_names), p["max_joint_speed"], None,
                                       BoxLimit(p["joint_lower"], p["joint_upper"]), p["max_joint_accel"])
            self.create_subscription(JointState, "/joint_states", self._on_joint_state, reliable_qos(5))

        self.create_subscription(Plan, "/jepa/plan", self._on_plan, reliable_qos(5))
        self.create_subscription(Bool, "/jepa/estop", self._on_estop_topic, latched_qos())
        self.create_service(SetBool, "~/arm", self._on_arm)
        self.create_service(SetBool, "~/estop", self._on_estop_service)
        self._diagnostics = Diagnostics(self, "controller_node")
        self.create_timer(self._dt, self._cycle)
        self.get_logger().info(f"output={self._output} mode={self._mode} rate={p['rate']} Hz; DISARMED "
                               f"(call ~/arm to start)")

    # ----------------------------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> dict:
        d = {}
        d["rate"] = declare(self, "rate", 20.0, "control rate [Hz]", low=1.0, high=1000.0, read_only=True)
        d["output"] = declare(self, "output", "twist", f"command interface: {', '.join(OUTPUTS)}", read_only=True)
        d["mode"] = declare(self, "mode", "step", "step: execute each plan's first action once over "
                            "step_duration; continuous: keep its velocity until the next plan", read_only=True)
        d["step_duration"] = declare(self, "step_duration", 0.1, "time to execute one action (displacement) [s]",
                                     low=0.001, high=10.0, read_only=True)
        d["frame_id"] = declare(self, "frame_id", "base_link", "frame of the twist commands (and of /ee_pose)",
                                read_only=True)
        d["plan_timeout"] = declare(self, "plan_timeout", 1.0, "stop and disarm when the plan's camera stamp is "
                                    "older than this [s]", low=0.01, high=60.0, read_only=True)
        d["state_timeout"] = declare(self, "state_timeout", 0.5, "stop and disarm when the state is older than "
                                     "this [s]", low=0.01, high=60.0, read_only=True)
        d["max_linear_speed"] = declare(self, "max_linear_speed", 0.5, "end-effector speed limit (norm) [m/s]",
                                        low=0.0, high=10.0, read_only=True)
        d["max_axis_speed"] = declare(self, "max_axis_speed", 0.5, "per-axis end-effector speed limit [m/s]",
                                      low=0.0, high=10.0, read_only=True)
        d["max_angular_speed"] = declare(self, "max_angular_speed", 1.0, "angular speed limit (norm) [rad/s]",
                                         low=0.0, high=20.0, read_only=True)
        d["max_linear_accel"] = declare(self, "max_linear_accel", 5.0, "per-axis linear acceleration limit "
                                        "[m/s^2]", low=0.001, high=100.0, read_only=True)
        d["max_angular_accel"] = declare(self, "max_angular_accel", 8.0, "per-axis angular acceleration limit "
                                         "[rad/s^2]", low=0.001, high=1000.0, read_only=True)
        d["workspace_min"] = declare(self, "workspace_min", [0.05, -0.35, 0.04], "end-effector workspace box, "
                                     "lower corner [x, y, z] in frame_id [m]", read_only=True)
        d["workspace_max"] = declare(self, "workspace_max", [0.55, 0.35, 0.45], "end-effector workspace box, "
                                     "upper corner [x, y, z] [m]", read_only=True)
        d["joint_names"] = declare(self, "joint_names", SIM_JOINTS, "joints commanded by the joint outputs "
                                   "(plan action names must be exactly these)", read_only=True)
        d["joint_lower"] = declare(self, "joint_lower", [-2.6, -1.2, 0.0], "joint position lower limits "
                                   "[rad or m]", read_only=True)
        d["joint_upper"] = declare(self, "joint_upper", [2.6, 1.75, 2.7], "joint position upper limits",
                                   read_only=True)
        d["max_joint_speed"] = declare(self, "max_joint_speed", 1.5, "per-joint speed limit [rad/s]",
                                       low=0.0, high=50.0, read_only=True)
        d["max_joint_accel"] = declare(self, "max_joint_accel", 10.0, "per-joint acceleration limit [rad/s^2]",
                                       low=0.001, high=1000.0, read_only=True)
        self._check_parameters(d)
        return d

    def _check_parameters(self, d: dict) -> None:
        if d["output"] not in OUTPUTS:
            raise ValueError(f"parameter output={d['output']!r}: must be one of {list(OUTPUTS)}")
        if d["mode"] not in MODES:
            raise ValueError(f"parameter mode={d['mode']!r}: must be one of {list(MODES)}")
        for name in ("workspace_min", "workspace_max"):
            if len(d[name]) != 3:
                raise ValueError(f"parameter {name}={list(d[name])}: needs 3 values [x, y, z]")
        self._output = d["output"]
        self._joint_names = [str(n) for n in d["joint_names"]]
        if self._output != "twist":
            if not self._joint_names or "" in self._joint_names:
                raise ValueError(f"output={self._output} needs joint_names (the plan's action names), got "
                                 f"{self._joint_names}")
            for name in ("joint_lower", "joint_upper"):
                if len(d[name]) != len(self._joint_names):
                    raise ValueError(f"parameter {name} has {len(d[name])} values for "
                                     f"{len(self._joint_names)} joint_names")

    # ------------------------------------------------------------------------------------------------- inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        position = np.array([p.x, p.y, p.z])
        if not np.all(np.isfinite(position)):
            self._counts["ignored_state"] += 1
            return
        self._position = position
        self._state_watchdog.feed(stamp_seconds(msg.header.stamp))

    def _on_joint_state(self, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        try:
            position = np.array([msg.position[index[n]] for n in self._joint_names], dtype=np.float64)
        except (KeyError, IndexError):
            self._counts["ignored_state"] += 1
            self.get_logger().warning(f"JointState without positions for all of {self._joint_names} ignored "
                                      f"(names: {list(msg.name)})", throttle_duration_sec=5.0)
            return
        if not np.all(np.isfinite(position)):
            self._counts["ignored_state"] += 1
            return
        self._position = position
        self._state_watchdog.feed(stamp_seconds(msg.header.stamp))

    def _reject(self, reason: str) -> None:
        self._counts["rejected_plans"] += 1
        self._last_rejection = reason
        self.get_logger().warning(f"plan rejected: {reason}", throttle_duration_sec=5.0)

    def _on_plan(self, msg: Plan) -> None:
        try:
            actions = plan_actions(msg)
            names, units = list(msg.action_names), list(msg.action_units)
            if self._adapter.joint_space:
                displacement = joint_displacement(names, units, actions[0], self._joint_names)
            else:
                linear, rotation = cartesian_displacement(names, units, actions[0])
                displacement = np.concatenate([linear, rotation])
        except (MessageValidationError, ActionMappingError) as exc:
            self._reject(str(exc))
            return
        stamp = stamp_seconds(msg.header.stamp)
        age = self._now() - stamp
        if age > self._plan_watchdog.timeout:
            self._reject(f"Plan.header.stamp is {age:.3f} s old (plan_timeout {self._plan_watchdog.timeout} s)")
            return
        if age < -self._plan_watchdog.timeout:
            self._reject(f"Plan.header.stamp is {-age:.3f} s in the future")
            return
        key = (int(msg.sequence), stamp)
        if key == self._last_plan_key or (self._last_plan_stamp is not None and stamp < self._last_plan_stamp):
            return  # a repeat or an out-of-order older plan: each plan runs once
        self._last_plan_key, self._last_plan_stamp = key, stamp
        if not self._armed or self._estop.engaged:
            return  # kept only for the plan age in diagnostics; arming forgets it
        self._plan_watchdog.feed(stamp)
        self._counts["executed_plans"] += 1
        step_velocity = displacement / self._step_duration
        if self._mode == "step":
            self._step = {"velocity": step_velocity, "remaining": displacement.copy(), "cycles": self._step_cycles}
        else:
            self._step = {"velocity": step_velocity, "remaining": None, "cycles": None}
        if self._adapter.joint_space:
            self._setpoint = self._position.copy() if self._position is not None else None

    # ------------------------------------------------------------------------------------ arm, disarm, e-stop
    def _on_arm(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if not request.data:
            self._disarm("disarmed by ~/arm")
            response.success, response.message = True, "disarmed"
            return response
        now = self._now()
        if self._estop.engaged:
            response.success, response.message = False, f"e-stop engaged ({self._estop.reason}): clear it first"
        elif self._state_watchdog.expired(now):
            response.success = False
            response.message = (f"no fresh state (age {self._state_watchdog.age(now):.3f} s > state_timeout "
                                f"{self._state_watchdog.timeout} s)")
        else:
            self._armed, self._fault, self._step = True, "", None
            self._plan_watchdog.reset()
            self._reset_filters()
            response.success, response.message = True, "armed: waiting for a new plan"
            self.get_logger().info("armed")
        return response

    def _on_estop_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self._engage_estop("~/estop service")
            response.message = "e-stop engaged"
        else:
            self._estop.clear()
            self.get_logger().info("e-stop cleared (still disarmed: call ~/arm)")
            response.message = "e-stop cleared; call ~/arm to resume"
        response.success = True
        return response

    def _on_estop_topic(self, msg: Bool) -> None:
        if msg.data:
            self._engage_estop("/jepa/estop")
        elif self._estop.engaged:
            self.get_logger().warning("false on /jepa/estop ignored: only the ~/estop service clears an e-stop",
                                   throttle_duration_sec=5.0)

    def _engage_estop(self, source: str) -> None:
        if not self._estop.engaged:
            self.get_logger().error(f"E-STOP engaged by {source}")
        self._estop.engage(source)
        self._disarm(f"e-stop ({source})")

    def _disarm(self, reason: str, fault: str = "", send_stop: bool = True) -> None:
        """Disarm; unless the caller is about to, send the stop command now (not at the next cycle)."""
        if self._armed:
            self.get_logger().warning(f"disarmed: {reason}")
        self._armed, self._step = False, None
        if fault:
            self._fault = fault
        if send_stop:
            self._send_stop(self.get_clock().now().to_msg())

    def _reset_filters(self) -> None:
        for safety in self._filters():
            safety.stop()

    def _filters(self) -> list[SafetyFilter]:
        return [self._joint] if self._adapter.joint_space else [self._linear, self._angular]

    # ----------------------------------------------------------------------------------------------- control
    def _send_stop(self, stamp) -> None:
        self._reset_filters()
        self._command = np.zeros(6)
        if not self._adapter.joint_space:
            self._adapter.stop(stamp)
        elif self._moving:
            fresh = not self._state_watchdog.expired(self._now())
            self._adapter.stop(stamp, self._position if fresh and self._position is not None else self._setpoint)
        self._moving, self._setpoint = False, None

    def _cycle(self) -> None:
        now_time = self.get_clock().now()
        now, stamp = now_time.nanoseconds * 1e-9, now_time.to_msg()
        if self._armed:
            if self._state_watchdog.expired(now):
                self._trip(f"state stale ({self._state_watchdog.age(now):.3f} s > {self._state_watchdog.timeout} s)")
            elif self._plan_watchdog.stamp is not None and self._plan_watchdog.expired(now):
                self._trip(f"plan stale ({self._plan_watchdog.age(now):.3f} s > {self._plan_watchdog.timeout} s)")
        if self._armed and self._step is not None:
            self._execute(stamp)
        else:
            self._send_stop(stamp)
        self._report(now)

    def _trip(self, reason: str) -> None:
        """Watchdog stop: disarm; the running cycle sends the stop command."""
        self.get_logger().error(f"watchdog stop: {reason}; disarmed (call ~/arm to resume)")
        self._disarm(f"watchdog: {reason}", fault=f"watchdog stop: {reason}", send_stop=False)

    def _execute(self, stamp) -> None:
        step = self._step
        if step["remaining"] is not None:
            desired = step["remaining"] / (step["cycles"] * self._dt)
        else:
            desired = step["velocity"]
        if self._adapter.joint_space:
            if self._setpoint is None:
                self._setpoint = self._position.copy()
            velocity = self._joint.apply(desired, self._dt, self._setpoint)
            self._setpoint = self._setpoint + velocity * self._dt
            self._adapter.send(stamp, self._setpoint)
            self._command = np.zeros(6)
            self._command[:min(6, velocity.size)] = velocity[:6]
        else:
            linear = self._linear.apply(desired[:3], self._dt, self._position)
            angular = self._angular.apply(desired[3:], self._dt)
            velocity = np.concatenate([linear, angular])
            self._adapter.send(stamp, velocity)
            self._command = velocity
        self._moving = True
        if step["remaining"] is not None:
            step["remaining"] = step["remaining"] - velocity * self._dt
            step["cycles"] -= 1
            if step["cycles"] <= 0:
                # Done. Twist: the next cycle sends zero. Joints: the last set-point already is the step's end,
                # so nothing more is sent (a hold at the measured position would pull the arm back).
                self._step, self._moving = None, False

    def _report(self, now: float) -> None:
        values = {
            "armed": self._armed,
            "estop": self._estop.engaged,
            "output": self._output,
            "plan_age": f"{now - self._last_plan_stamp:.3f}" if self._last_plan_stamp is not None else "none",
            "state_age": f"{self._state_watchdog.age(now):.3f}",
            "commanded_velocity": " ".join(f"{v:.4f}" for v in self._command),
            "commanded_speed": f"{float(np.linalg.norm(self._command[:3])):.4f}",
            **self._counts,
            "last_rejection": self._last_rejection,
        }
        if self._estop.engaged:
            self._diagnostics.set(ERROR, f"e-stop engaged ({self._estop.reason})", **values)
        elif self._fault:
            self._diagnostics.set(ERROR, f"{self._fault}; re-arm to resume", **values)
        elif not self._armed:
            self._diagnostics.set(WARN, "disarmed", **values)
        elif self._step is None and self._plan_watchdog.stamp is None:
            self._diagnostics.set(WARN, "armed, waiting for a plan", **values)
        else:
            self._diagnostics.set(OK, "armed, executing", **values)


def main(args: list[str] | None = None) -> int:
    """Run the controller until shutdown; returns a process exit code (2: bad parameters)."""
    return run_node(ControllerNode, "controller_node", args)


if __name__ == "__main__":
    sys.exit(main())

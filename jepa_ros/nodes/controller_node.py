"""Controller node: executes the first action of the latest plan, safely, at a fixed rate.

``python -m jepa_ros.nodes.controller_node --ros-args --params-file config/controller.yaml``

Inputs: /jepa/plan (jepa_msgs/Plan), the robot state (/ee_pose geometry_msgs/PoseStamped for the twist output,
/joint_states sensor_msgs/JointState for the joint outputs; a pose not in ``frame_id`` stops the arm), /jepa/estop
(std_msgs/Bool, transient-local).
Outputs (parameter ``output``): ``twist`` -> <servo_node>/delta_twist_cmds (geometry_msgs/TwistStamped);
``joint_trajectory`` -> ~/joint_trajectory; ``position_commands`` -> ~/commands (std_msgs/Float64MultiArray).
With ``dry_run`` the same messages go to ~/preview and nothing to the actuator topic.
Gripper (plans with a ``dgripper`` action; closedness in [0, 1], 1 = closed; parameter ``gripper_output``): ``topic``
-> /jepa/gripper_command (std_msgs/Float64), ``action`` -> control_msgs/action/GripperCommand goals on
``gripper_action`` (control_msgs is imported only then); with ``dry_run`` the closedness goes to ~/gripper_preview.
The measured opening is ``gripper_joint``'s position in /joint_states. Services: ~/arm and ~/estop
(std_srvs/SetBool). Diagnostics on /diagnostics as "jepa_ros: controller_node".
``servo_startup`` (humble | jazzy) makes the node call MoveIt Servo's start-up service
(:mod:`jepa_control.servo_startup`) until it succeeds; until then it sends nothing and refuses to arm (the
optional moveit_msgs is imported only for jazzy).

This node only turns messages into calls of :class:`jepa_control.arm_controller.ArmController` (which holds every rule:
arming, e-stop latch, watchdogs, step execution, limits; see its module docstring) and its commands into messages
(:mod:`jepa_ros.nodes.command_adapters`). Its parameters are the fields of
:class:`jepa_control.arm_controller.ControllerSettings`.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from jepa_msgs.msg import Plan
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from jepa_common import topics
from jepa_control.arm_controller import ArmController, Command, ControllerSettings, PlanInput
from jepa_control.servo_startup import ServoStartup, startup_call
from jepa_ros.msg_validation import MessageValidationError, plan_actions
from jepa_ros.nodes.command_adapters import make_adapter, make_gripper_adapter
from jepa_ros.ros_util import (ERROR, OK, WARN, Diagnostics, declare_settings, latched_qos, reliable_qos, run_node,
                               stamp_seconds)
from jepa_common.settings import SettingsError

SETTINGS = ControllerSettings
_LEVELS = {"ok": OK, "warn": WARN, "error": ERROR}


class ControllerNode(Node):
    """Plan -> safe actuator commands at ``rate`` Hz (the rules: :mod:`jepa_control.arm_controller`)."""

    def __init__(self, **kwargs):
        super().__init__("controller_node", **kwargs)
        self._logged: dict[str, float] = {}
        settings = declare_settings(self, ControllerSettings)
        self._controller = ArmController(settings, log=self._log)
        self._adapter = make_adapter(self, settings, reliable_qos(10))
        self._gripper = make_gripper_adapter(self, settings, reliable_qos(10))
        self._startup = ServoStartup(startup_call(settings.servo_startup, settings.servo_node),
                                     settings.servo_retry, settings.dry_run)
        self._startup_client, self._startup_request = self._startup_service(settings)
        self._startup_future = None
        if settings.joint_space:
            self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, reliable_qos(5))
        else:
            self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, reliable_qos(5))
            if self._gripper is not None and settings.gripper_joint:
                self.create_subscription(JointState, topics.JOINT_STATES, self._on_gripper_state, reliable_qos(5))
        self.create_subscription(Plan, topics.PLAN, self._on_plan, reliable_qos(5))
        self.create_subscription(Bool, topics.ESTOP, self._on_estop_topic, latched_qos())
        self.create_service(SetBool, "~/arm", self._on_arm)
        self.create_service(SetBool, "~/estop", self._on_estop_service)
        self._diagnostics = Diagnostics(self, "controller_node")
        self.create_timer(settings.period, self._cycle)
        target = "~/preview (DRY RUN: nothing to the actuator)" if settings.dry_run else settings.output
        gripper = settings.gripper_output if self._gripper is None or not settings.dry_run else "~/gripper_preview"
        self.get_logger().info(f"output={target} gripper={gripper} mode={settings.mode} rate={settings.rate} Hz "
                               f"frame_id={settings.frame_id} servo_startup={self._startup.state}; DISARMED "
                               f"(call ~/arm)")

    def _startup_service(self, settings: ControllerSettings):
        """(client, request) of the Servo start-up service, or (None, None) when there is nothing to start."""
        if self._startup.state != "waiting":
            return None, None
        if settings.servo_startup == "humble":
            from std_srvs.srv import Trigger
            return self.create_client(Trigger, self._startup.call.service), Trigger.Request()
        try:
            from moveit_msgs.srv import ServoCommandType
        except ImportError as exc:
            raise SettingsError(f"servo_startup=jazzy needs moveit_msgs (moveit_msgs/srv/ServoCommandType; "
                                f"{exc}): install ros-$ROS_DISTRO-moveit-msgs, or use servo_startup:=humble "
                                f"on Humble") from exc
        request = ServoCommandType.Request(command_type=ServoCommandType.Request.TWIST)
        return self.create_client(ServoCommandType, self._startup.call.service), request

    def _servo_startup(self, now: float) -> None:
        """Drive the start-up: give up an unanswered call, call again when due, start again when Servo goes."""
        startup = self._startup
        if startup.state == "done":
            if not self._startup_client.service_is_ready() and startup.lost(now):
                # nothing to send the arm's stop to; the gripper holds
                self._send_gripper(self._controller.disarm(startup.last_error, now))
                self._log("error", f"servo start-up: {startup.last_error}; disarmed, starting again", False)
            return
        if startup.timed_out(now):
            self._startup_client.remove_pending_request(self._startup_future)
            startup.give_up(now)
        if not startup.due(now):
            return
        if not self._startup_client.service_is_ready():
            startup.unavailable(now)
            self._log("warning", f"servo start-up: {startup.last_error}; retrying every {startup.retry} s", True)
            return
        startup.attempt(now)
        self._startup_future = self._startup_client.call_async(self._startup_request)
        self._startup_future.add_done_callback(self._on_startup_answer)

    def _on_startup_answer(self, future) -> None:
        if future is not self._startup_future or future.cancelled() or self._startup.state != "calling":
            return  # an answer to a call given up already
        response = future.result()
        success = bool(response is not None and response.success)
        self._startup.result(success, getattr(response, "message", ""), self._now())
        if success:
            self._log("info", f"MoveIt Servo started ({self._startup.call.service}); commands go out now", False)
        else:
            self._log("warning", f"servo start-up: {self._startup.last_error}", True)

    def _log(self, level: str, message: str, throttle: bool) -> None:
        """The controller's log lines; repeatable ones at most every 5 s per kind (the text before ':')."""
        if throttle:
            kind, now = message.split(":", 1)[0], time.monotonic()
            if now - self._logged.get(kind, -math.inf) < 5.0:
                return
            self._logged[kind] = now
        logger = self.get_logger()   # one call site per severity (rclpy requires it)
        if level == "error":
            logger.error(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.info(message)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _send(self, command: Command | None, stamp=None) -> None:
        """Send a command at once (stops of the e-stop and of disarming do not wait for the next cycle); nothing
        goes out before MoveIt Servo's start-up succeeded (it would refuse it)."""
        if command is not None and self._startup.ready:
            self._adapter.send(stamp or self.get_clock().now().to_msg(), command)
        self._send_gripper(command)

    def _send_gripper(self, command: Command | None) -> None:
        """The gripper part of a command (none without a gripper command; its adapter sends a waiting one)."""
        if self._gripper is not None:
            self._gripper.send(None if command is None else command.gripper)

    # ------------------------------------------------------------------------------------------------- inputs
    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self._send(self._controller.on_pose([p.x, p.y, p.z], msg.header.frame_id, stamp_seconds(msg.header.stamp),
                                            self._now()))

    def _on_joint_state(self, msg: JointState) -> None:
        self._controller.on_joint_state(list(msg.name), list(msg.position), stamp_seconds(msg.header.stamp),
                                        self._now())
        self._on_gripper_state(msg)

    def _on_gripper_state(self, msg: JointState) -> None:
        self._controller.on_gripper_state(list(msg.name), list(msg.position), stamp_seconds(msg.header.stamp),
                                          self._now())

    def _on_plan(self, msg: Plan) -> None:
        try:
            actions = plan_actions(msg)
        except MessageValidationError as exc:
            self._controller.reject_plan(str(exc))
            return
        plan = PlanInput(actions=actions, action_names=tuple(msg.action_names),
                         action_units=tuple(msg.action_units), energies=np.asarray(msg.energies, dtype=np.float64),
                         energy=float(msg.energy), sequence=int(msg.sequence))
        self._controller.on_plan(plan, stamp_seconds(msg.header.stamp), self._now())

    # ------------------------------------------------------------------------------------ arm, disarm, e-stop
    def _on_arm(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            response.success, response.message = self._controller.arm(self._now(), self._startup.blocker())
        else:
            self._send(self._controller.disarm("disarmed by ~/arm", self._now()))
            response.success, response.message = True, "disarmed"
        return response

    def _on_estop_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._send(self._controller.estop(request.data, "~/estop service", self._now()))
        response.success = True
        response.message = "e-stop engaged" if request.data else "e-stop cleared; call ~/arm to resume"
        return response

    def _on_estop_topic(self, msg: Bool) -> None:
        self._send(self._controller.estop_topic(msg.data, topics.ESTOP, self._now()))

    # ----------------------------------------------------------------------------------------------- control
    def _cycle(self) -> None:
        now_time = self.get_clock().now()
        now = now_time.nanoseconds * 1e-9
        if self._startup_client is not None:
            self._servo_startup(now)
        self._send(self._controller.cycle(now), now_time.to_msg())
        level, message, values = self._startup.status(*self._controller.status(now))
        self._diagnostics.set(_LEVELS[level], message, **values)


def main(args: list[str] | None = None) -> int:
    """Run the controller until shutdown; returns a process exit code (2: bad parameters)."""
    return run_node(ControllerNode, "controller_node", args)


if __name__ == "__main__":
    sys.exit(main())

"""Output adapters: a :class:`jepa_control.arm_controller.Command` -> the ROS message of one command interface.

One adapter per controller, chosen by the ``output`` setting (the action mapping and every safety rule live in
:mod:`jepa_control.arm_controller`):
- :class:`TwistAdapter`: geometry_msgs/TwistStamped, fresh stamp every cycle; a zero twist when stopped, every cycle.
- :class:`JointTrajectoryAdapter`: trajectory_msgs/JointTrajectory with one point (the next position set-point,
  reached ``time_from_start`` later; header stamp zero = "start on receipt"); a stop holds with zero velocities.
- :class:`PositionCommandsAdapter`: std_msgs/Float64MultiArray of joint position set-points
  (forward_command_controller).
Joint adapters send a command only when it carries positions (the controller sends one hold when motion stops,
then nothing while stopped). In a dry run (``dry_run``) the adapter publishes on ``~/preview`` instead.

The gripper part of a command (``Command.gripper``: closedness in [0, 1], 1 = closed; None: nothing to send) goes
through a second adapter, chosen by ``gripper_output``:
- :class:`GripperTopicAdapter`: std_msgs/Float64 closedness on ``/jepa/gripper_command`` (the sim's interface),
  every armed cycle while there is a gripper command, and the one hold of a stop.
- :class:`GripperActionAdapter`: control_msgs/action/GripperCommand goals (what ros2_control's gripper action
  controllers serve; position in finger joint units, ``gripper_open_position`` .. ``gripper_closed_position``), one
  goal per change of the command (a newer goal preempts the older); control_msgs is imported only then.
In a dry run both publish the closedness on ``~/gripper_preview`` and send nothing to the gripper.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_common import topics
from jepa_common.settings import SettingsError
from jepa_control.arm_controller import Command, ControllerSettings
from jepa_common.gripper import finger_position


class TwistAdapter:
    """Publishes geometry_msgs/TwistStamped (linear [m/s] and angular [rad/s] velocity) on ``topic``."""

    def __init__(self, node, topic: str, frame_id: str, qos):
        self._frame_id = frame_id
        self._publisher = node.create_publisher(TwistStamped, topic, qos)

    def send(self, stamp, command: Command) -> None:
        """Publish ``command.velocity`` (6,) = [vx, vy, vz, wx, wy, wz] stamped ``stamp`` (zero for a stop)."""
        velocity = np.zeros(6) if command.stop else command.velocity
        msg = TwistStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self._frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in velocity[:3])
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in velocity[3:6])
        self._publisher.publish(msg)


class JointTrajectoryAdapter:
    """Publishes one-point trajectory_msgs/JointTrajectory set-points for ``joint_names``."""

    def __init__(self, node, topic: str, joint_names: Sequence[str], time_from_start: float, qos):
        self._joint_names = list(joint_names)
        seconds = int(time_from_start)
        self._duration = Duration(sec=seconds, nanosec=int(round((time_from_start - seconds) * 1e9)))
        self._publisher = node.create_publisher(JointTrajectory, topic, qos)

    def send(self, stamp, command: Command) -> None:
        """Reach ``command.positions`` ``time_from_start`` after receipt (a stop: hold them with zero velocity);
        nothing without positions."""
        if command.positions is None:
            return
        point = JointTrajectoryPoint(positions=[float(p) for p in command.positions],
                                     time_from_start=self._duration)
        if command.stop:
            point.velocities = [0.0] * len(command.positions)
        self._publisher.publish(JointTrajectory(joint_names=self._joint_names, points=[point]))


class PositionCommandsAdapter:
    """Publishes std_msgs/Float64MultiArray joint position set-points (forward_command_controller)."""

    def __init__(self, node, topic: str, qos):
        self._publisher = node.create_publisher(Float64MultiArray, topic, qos)

    def send(self, stamp, command: Command) -> None:
        """Command ``command.positions`` (already rate-limited by the controller); nothing without positions."""
        if command.positions is not None:
            self._publisher.publish(Float64MultiArray(data=[float(p) for p in command.positions]))


PREVIEW_TOPIC = "~/preview"


def actuator_topic(settings: ControllerSettings) -> str:
    """Where commands go: twist -> <servo_node>/delta_twist_cmds (`jepa_common.topics.SERVO_TWIST` by default),
    joint_trajectory -> ~/joint_trajectory, position_commands -> ~/commands."""
    if settings.output == "twist":
        return f"{settings.servo_node}/{topics.SERVO_TWIST_INPUT}"
    return "~/joint_trajectory" if settings.output == "joint_trajectory" else "~/commands"


def make_adapter(node, settings: ControllerSettings, qos):
    """The adapter of ``settings.output`` on its :func:`actuator_topic`, or with ``dry_run`` on ``~/preview``
    (same message type; the actuator topic then has no publisher at all)."""
    topic = PREVIEW_TOPIC if settings.dry_run else actuator_topic(settings)
    if settings.output == "twist":
        return TwistAdapter(node, topic, settings.frame_id, qos)
    if settings.output == "joint_trajectory":
        return JointTrajectoryAdapter(node, topic, settings.joint_names, settings.period, qos)
    return PositionCommandsAdapter(node, topic, qos)


# -------------------------------------------------------------------------------------------------- gripper
GRIPPER_PREVIEW_TOPIC = "~/gripper_preview"


class GripperTopicAdapter:
    """Publishes the commanded closedness (1 = closed) as std_msgs/Float64 on ``topic``."""

    def __init__(self, node, topic: str, qos):
        self._publisher = node.create_publisher(Float64, topic, qos)

    def send(self, value: float | None) -> None:
        """Publish ``value``; nothing for None."""
        if value is not None:
            self._publisher.publish(Float64(data=float(value)))


class GripperActionAdapter:
    """Sends control_msgs/action/GripperCommand goals to ``settings.gripper_action``: one per change of the
    command; a command that finds no server waits (the newest one) and goes out once the server is there."""

    def __init__(self, node, settings: ControllerSettings):
        try:
            from control_msgs.action import GripperCommand
        except ImportError as exc:
            raise SettingsError(f"gripper_output=action needs control_msgs (control_msgs/action/GripperCommand; "
                                f"{exc}): install ros-$ROS_DISTRO-control-msgs, or use gripper_output:=topic") \
                from exc
        from rclpy.action import ActionClient

        self._node, self._settings, self._type = node, settings, GripperCommand
        self._client = ActionClient(node, GripperCommand, settings.gripper_action)
        self._pending: float | None = None
        self._sent: float | None = None

    def send(self, value: float | None) -> None:
        """Take the command ``value`` (None: none this cycle) and send the newest unsent one if the server is up."""
        if value is not None:
            self._pending = float(value)
        if self._pending is None or self._pending == self._sent:
            return
        if not self._client.server_is_ready():
            self._node.get_logger().warning(f"gripper: no action server {self._settings.gripper_action}; the "
                                            f"command waits", throttle_duration_sec=5.0)
            return
        s = self._settings
        goal = self._type.Goal()
        goal.command.position = finger_position(self._pending, s.gripper_open_position, s.gripper_closed_position)
        goal.command.max_effort = s.gripper_max_effort
        self._client.send_goal_async(goal).add_done_callback(self._on_goal_response)
        self._sent = self._pending

    def _on_goal_response(self, future) -> None:
        handle = future.result() if not future.cancelled() else None
        if handle is None or not handle.accepted:
            self._node.get_logger().warning(f"gripper: goal refused by {self._settings.gripper_action}",
                                            throttle_duration_sec=5.0)


def make_gripper_adapter(node, settings: ControllerSettings, qos):
    """The gripper adapter of ``settings.gripper_output`` (None for none), or with ``dry_run`` a
    :class:`GripperTopicAdapter` on ``~/gripper_preview`` (nothing reaches the gripper)."""
    if settings.gripper_output == "none":
        return None
    if settings.dry_run:
        return GripperTopicAdapter(node, GRIPPER_PREVIEW_TOPIC, qos)
    if settings.gripper_output == "topic":
        return GripperTopicAdapter(node, topics.GRIPPER_COMMAND, qos)
    return GripperActionAdapter(node, settings)

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
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_common import topics
from jepa_control.arm_controller import Command, ControllerSettings


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

"""From a plan's action row to actuator commands: action-space mapping and the three output adapters.

Mapping (no ROS):
- Cartesian outputs (``twist``) take end-effector displacements named ``dx, dy, dz`` [m] and optionally
  ``droll, dpitch, dyaw`` [rad] (static-axis xyz Euler increments, converted to a rotation vector with
  transforms3d). Any other action name is refused: the controller never guesses what a dimension means.
- Joint outputs (``joint_trajectory``, ``position_commands``) take joint displacements whose action names are
  exactly the configured joint names (any order).

Adapters (publish ROS messages; one instance per controller):
- :class:`TwistAdapter`: geometry_msgs/TwistStamped, fresh stamp every cycle; zero twist when stopped, every cycle.
- :class:`JointTrajectoryAdapter`: trajectory_msgs/JointTrajectory with one point (the next position set-point,
  reached ``time_from_start`` later; header stamp zero = "start on receipt").
- :class:`PositionCommandsAdapter`: std_msgs/Float64MultiArray of joint position set-points
  (forward_command_controller).
Joint adapters send one hold command (current position) when motion stops, then nothing while stopped.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from transforms3d.euler import euler2axangle

LINEAR_NAMES = ("dx", "dy", "dz")
ANGULAR_NAMES = ("droll", "dpitch", "dyaw")
OUTPUTS = ("twist", "joint_trajectory", "position_commands")
_ANGLE_UNITS = ("rad", "")
_LENGTH_UNITS = ("m", "")


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
    """An action row -> (linear displacement [m] (3,), rotation vector [rad] (3,)); missing dims are zero."""
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
    """An action row of joint displacements -> a vector in ``joint_names`` order."""
    if sorted(names) != sorted(joint_names):
        raise ActionMappingError(f"action names {list(names)} are not the controller's joint names "
                                 f"{list(joint_names)}; joint outputs need joint-displacement plans")
    _check_units(names, units, {n: ("rad", "m", "") for n in names})
    values = dict(zip(names, np.asarray(row, dtype=np.float64)))
    return np.array([values[n] for n in joint_names])


class TwistAdapter:
    """Publishes geometry_msgs/TwistStamped (linear [m/s] and angular [rad/s] velocity) on ``topic``."""

    joint_space = False

    def __init__(self, node, topic: str, frame_id: str, qos):
        self._node = node
        self._frame_id = frame_id
        self._publisher = node.create_publisher(TwistStamped, topic, qos)

    def send(self, stamp, velocity: np.ndarray) -> None:
        """Command ``velocity`` (6,) = [vx, vy, vz, wx, wy, wz] stamped ``stamp``."""
        msg = TwistStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self._frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in velocity[:3])
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in velocity[3:6])
        self._publisher.publish(msg)

    def stop(self, stamp, hold: np.ndarray | None = None) -> None:
        """A zero twist (``hold`` is unused: a velocity interface stops by commanding zero)."""
        self.send(stamp, np.zeros(6))


class JointTrajectoryAdapter:
    """Publishes one-point trajectory_msgs/JointTrajectory set-points for ``joint_names``."""

    joint_space = True

    def __init__(self, node, topic: str, joint_names: Sequence[str], time_from_start: float, qos):
        self._joint_names = list(joint_names)
        seconds = int(time_from_start)
        self._duration = Duration(sec=seconds, nanosec=int(round((time_from_start - seconds) * 1e9)))
        self._publisher = node.create_publisher(JointTrajectory, topic, qos)

    def send(self, stamp, positions: np.ndarray, velocities: np.ndarray | None = None) -> None:
        """Reach ``positions`` (moving at ``velocities``) ``time_from_start`` after receipt."""
        point = JointTrajectoryPoint(positions=[float(p) for p in positions], time_from_start=self._duration)
        if velocities is not None:
            point.velocities = [float(v) for v in velocities]
        self._publisher.publish(JointTrajectory(joint_names=self._joint_names, points=[point]))

    def stop(self, stamp, hold: np.ndarray | None = None) -> None:
        """Hold ``hold`` with zero velocity (nothing is sent when no position is known)."""
        if hold is not None:
            self.send(stamp, hold, np.zeros(len(hold)))


class PositionCommandsAdapter:
    """Publishes std_msgs/Float64MultiArray joint position set-points (forward_command_controller)."""

    joint_space = True

    def __init__(self, node, topic: str, qos):
        self._publisher = node.create_publisher(Float64MultiArray, topic, qos)

    def send(self, stamp, positions: np.ndarray, velocities: np.ndarray | None = None) -> None:
        """Command ``positions`` (the controller already rate-limited them)."""
        self._publisher.publish(Float64MultiArray(data=[float(p) for p in positions]))

    def stop(self, stamp, hold: np.ndarray | None = None) -> None:
        """Hold ``hold`` (nothing is sent when no position is known)."""
        if hold is not None:
            self.send(stamp, hold)

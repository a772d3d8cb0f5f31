"""ROS 2 adapter over :class:`jepa_sim.arm_sim.ArmSim`: real-time physics, camera, state and command topics.

Run: ``python -m jepa_ros.nodes.sim_node --ros-args -p camera_rate:=10.0``.

Publishes ``/camera/image_raw`` + ``/camera/camera_info`` (sensor-data QoS) at ``camera_rate``, ``/joint_states`` and
``/ee_pose`` (frame ``base_link``) at ``state_rate``, ``~/goal_image`` (reliable, transient-local) on request,
``/diagnostics`` at 1 Hz and, with ``publish_clock``, ``/clock`` (simulated time, which then also stamps every
message). Without ``publish_clock`` messages are stamped with the node clock when rendered/measured.
Subscribes ``/servo_node/delta_twist_cmds`` (TwistStamped, linear part in m/s in ``base_link``; held until the next
command or until ``command_timeout`` (0.1 s, MoveIt Servo's default) passes without one, then the arm
stops), ``/joint_trajectory_controller/
joint_trajectory`` (goes to the last point by its time_from_start) and ``~/goal_pose`` (PoseStamped; its position is
rendered as a goal image). Service ``~/reset`` (std_srvs/Trigger) returns the arm to its initial pose.
Physics runs on the steady (wall) clock, so it keeps going under ``use_sim_time``.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_ros.ros_util import (OK, WARN, Diagnostics, declare_settings, latched_qos, reliable_qos, run_node,
                               sensor_qos)
from jepa_sim.arm_sim import BASE_FRAME, CAMERA_FRAME, HOME_JOINT_POSITIONS, ArmSim
from jepa_world_model.settings import setting

NODE_NAME = "sim_node"
PHYSICS_PERIOD = 0.01  # s between physics updates (the physics itself runs at the model timestep)
MAX_CATCH_UP = 0.25  # s of simulated time the node may fall behind before it drops wall time
_BASE_FRAMES = ("", BASE_FRAME)


@dataclasses.dataclass(frozen=True)
class SimSettings:
    """Parameters of the sim node."""

    image_size: int = setting(64, "side of the square camera image", unit="px", low=8, high=1024, read_only=True)
    camera_rate: float = setting(10.0, "/camera/image_raw and /camera/camera_info publishing rate", unit="Hz",
                                 low=0.1, high=120.0, read_only=True)
    state_rate: float = setting(50.0, "/joint_states and /ee_pose publishing rate", unit="Hz", low=1.0,
                                high=1000.0, read_only=True)
    command_timeout: float = setting(0.1, "a twist command is applied until this long passes without a new one, "
                                     "then the arm stops (MoveIt Servo's incoming_command_timeout default)",
                                     unit="s", low=0.01, high=10.0, read_only=True)
    publish_clock: bool = setting(False, "publish /clock with the simulated time and stamp messages with it (use "
                                  "with use_sim_time on the other nodes)", read_only=True)
    seed: int = setting(0, "seed of the simulator's random generator", low=0, high=2**31 - 1, read_only=True)
    initial_joint_positions: tuple = setting(HOME_JOINT_POSITIONS, "initial and ~/reset joint positions: base_yaw, "
                                             "shoulder_pitch, elbow_pitch", unit="rad", read_only=True)


SETTINGS = SimSettings


def _stamp_from_seconds(seconds: float) -> TimeMsg:
    sec = math.floor(seconds)
    return TimeMsg(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


class SimNode(Node):
    """Thin ROS adapter: maps topics/services onto :class:`ArmSim` and keeps its physics in real time."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.sim: ArmSim | None = None  # destroy_node may run after a failed start
        self.settings = s = declare_settings(self, SimSettings)
        self.sim = ArmSim(image_size=s.image_size, seed=s.seed)
        self._initial_q = np.asarray(s.initial_joint_positions, dtype=float)
        try:
            self.sim.reset(self._initial_q)
        except ValueError as exc:
            raise ValueError(f"parameter initial_joint_positions: {exc}") from exc
        self.sim.render()  # create the renderer now, not in the first camera callback

        self._image_pub = self.create_publisher(Image, "/camera/image_raw", sensor_qos())
        self._info_pub = self.create_publisher(CameraInfo, "/camera/camera_info", sensor_qos())
        self._joint_pub = self.create_publisher(JointState, "/joint_states", reliable_qos())
        self._pose_pub = self.create_publisher(PoseStamped, "/ee_pose", reliable_qos())
        self._goal_pub = self.create_publisher(Image, "~/goal_image", latched_qos())
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", reliable_qos(1)) if s.publish_clock else None
        self._diagnostics = Diagnostics(self, NODE_NAME)

        # Best effort accepts both reliable and best-effort publishers of the command stream.
        self.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", self._on_twist, sensor_qos())
        self.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                 self._on_trajectory, reliable_qos())
        self.create_subscription(PoseStamped, "~/goal_pose", self._on_goal_pose, reliable_qos())
        self.create_service(Trigger, "~/reset", self._on_reset)

        self._wall_offset = time.monotonic() - self.sim.time  # sim time = wall time - offset
        self._last_command: float | None = None  # wall time of the last accepted command of any kind
        self._last_rejected: float | None = None
        self._frames = 0
        self._render_seconds = 0.0
        self._diag_window = (time.monotonic(), self.sim.time)
        self._dropped = 0.0

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(PHYSICS_PERIOD, self._advance, clock=steady)
        self.create_timer(1.0 / s.camera_rate, self._publish_camera, clock=steady)
        self.create_timer(1.0 / s.state_rate, self._publish_state, clock=steady)
        self.create_timer(1.0, self._report, clock=steady)
        self.get_logger().info(
            f"simulating {', '.join(self.sim.joint_names)}; camera {self.sim.image_size}px at {s.camera_rate} Hz, "
            f"state at {s.state_rate} Hz, twists time out after {s.command_timeout} s")

    # -------------------------------------------------------------- helpers
    def _stamp(self) -> TimeMsg:
        if self.settings.publish_clock:
            return _stamp_from_seconds(self.sim.time)
        return self.get_clock().now().to_msg()

    def _reject(self, what: str, reason: str) -> None:
        self.get_logger().warning(f"rejected {what}: {reason}; stopping the arm")
        self._last_rejected = time.monotonic()
        self.sim.stop()

    # -------------------------------------------------------------- physics
    def _advance(self) -> None:
        """Step the physics up to the current wall time (a twist that times out stops on time inside)."""
        now = time.monotonic()
        behind = now - self._wall_offset - self.sim.time
        if behind > MAX_CATCH_UP:  # stalled (e.g. slow rendering): drop wall time instead of racing
            self._wall_offset += behind - MAX_CATCH_UP
            self._dropped += behind - MAX_CATCH_UP
        self._step_to(now - self._wall_offset)
        if self._clock_pub is not None:
            self._clock_pub.publish(ClockMsg(clock=_stamp_from_seconds(self.sim.time)))

    def _step_to(self, sim_time: float) -> None:
        n = int((sim_time - self.sim.time) / self.sim.timestep)
        if n > 0:
            self.sim.step(n)

    # ------------------------------------------------------------- publishing
    def _publish_camera(self) -> None:
        self._advance()
        start = time.perf_counter()
        stamp = self._stamp()
        image = self.sim.render()
        self._render_seconds += time.perf_counter() - start
        self._frames += 1
        self._image_pub.publish(self._image_msg(image, stamp))
        info = self.sim.camera_info()
        k = info["K"]
        msg = CameraInfo(width=info["width"], height=info["height"], distortion_model="plumb_bob",
                         d=[0.0] * 5, k=k.ravel().tolist(), r=np.eye(3).ravel().tolist(),
                         p=np.hstack([k, np.zeros((3, 1))]).ravel().tolist())
        msg.header.stamp = stamp
        msg.header.frame_id = info["frame"]
        self._info_pub.publish(msg)

    def _image_msg(self, image: np.ndarray, stamp: TimeMsg) -> Image:
        msg = Image(height=image.shape[0], width=image.shape[1], encoding="rgb8", is_bigendian=0,
                    step=3 * image.shape[1])
        msg.header.stamp = stamp
        msg.header.frame_id = CAMERA_FRAME
        msg.data = image.tobytes()
        return msg

    def _publish_state(self) -> None:
        self._advance()
        stamp = self._stamp()
        joints = JointState(name=list(self.sim.joint_names), position=self.sim.joint_positions().tolist(),
                            velocity=self.sim.joint_velocities().tolist(), effort=self.sim.joint_efforts().tolist())
        joints.header.stamp = stamp
        self._joint_pub.publish(joints)
        pos, quat = self.sim.ee_pose()
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.header.frame_id = BASE_FRAME
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in pos)
        o = pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in quat)
        self._pose_pub.publish(pose)

    def _report(self) -> None:
        """Set the /diagnostics status from the last second: frame rate, real-time factor, rejected commands."""
        now = time.monotonic()
        wall0, sim0 = self._diag_window
        elapsed = max(now - wall0, 1e-9)
        fps = self._frames / elapsed
        real_time_factor = (self.sim.time - sim0) / elapsed
        camera_rate = self.settings.camera_rate
        problems = []
        if fps < 0.8 * camera_rate:
            problems.append(f"rendering {fps:.1f} fps < camera_rate {camera_rate:g} Hz")
        if real_time_factor < 0.9:
            problems.append(f"physics behind real time (factor {real_time_factor:.2f})")
        if self._last_rejected is not None and now - self._last_rejected < 5.0:
            problems.append("malformed command rejected in the last 5 s")

        def age(t: float | None) -> str:
            return "never" if t is None else f"{now - t:.3f}"

        self._diagnostics.set(
            WARN if problems else OK, "; ".join(problems) if problems else "simulating in real time",
            rendered_fps=f"{fps:.2f}", render_ms=f"{1000.0 * self._render_seconds / max(self._frames, 1):.2f}",
            camera_rate=f"{camera_rate:g}", real_time_factor=f"{real_time_factor:.3f}",
            dropped_seconds=f"{self._dropped:.3f}", mode=self.sim.mode, last_command_age=age(self._last_command),
            last_rejected_age=age(self._last_rejected),
            ee_position=" ".join(f"{v:.4f}" for v in self.sim.ee_position()))
        self._frames = 0
        self._render_seconds = 0.0
        self._diag_window = (now, self.sim.time)

    # --------------------------------------------------------------- commands
    def _on_twist(self, msg: TwistStamped) -> None:
        linear = [msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z]
        angular = [msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z]
        if not all(math.isfinite(v) for v in linear + angular):
            self._reject("twist", f"non-finite values linear={linear} angular={angular}")
            return
        if msg.header.frame_id not in _BASE_FRAMES:
            self._reject("twist", f"frame_id '{msg.header.frame_id}' is not '{BASE_FRAME}' (or empty)")
            return
        if any(angular):
            self.get_logger().warning("ignoring the angular part of twist commands (position-only arm)",
                                      throttle_duration_sec=5.0)
        self._advance()
        self.sim.start_twist(linear, timeout=self.settings.command_timeout)
        self._last_command = time.monotonic()

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        names = list(msg.joint_names)
        expected = list(self.sim.joint_names)
        if sorted(names) != sorted(expected):
            self._reject("joint trajectory", f"joint_names {names} do not match {expected}")
            return
        if not msg.points:
            self._reject("joint trajectory", "it has no points")
            return
        last = msg.points[-1]
        if len(last.positions) != len(names):
            self._reject("joint trajectory",
                         f"last point has {len(last.positions)} positions for {len(names)} joint_names")
            return
        by_name = dict(zip(names, last.positions))
        target = [by_name[n] for n in expected]
        duration = last.time_from_start.sec + 1e-9 * last.time_from_start.nanosec
        self._advance()
        try:
            self.sim.start_joint_motion(target, duration)
        except ValueError as exc:
            self._reject("joint trajectory", str(exc))
            return
        self._last_command = time.monotonic()

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        xyz = [p.x, p.y, p.z]
        if msg.header.frame_id not in _BASE_FRAMES:
            self.get_logger().warning(f"goal_pose frame_id '{msg.header.frame_id}' is not '{BASE_FRAME}'; ignored")
            return
        try:
            image = self.sim.render_goal(xyz)
        except ValueError as exc:
            self.get_logger().warning(f"no goal image: {exc}")
            return
        if not self.sim.workspace.contains(xyz):
            self.get_logger().info(f"goal {xyz} is reachable but outside the workspace box")
        self._goal_pub.publish(self._image_msg(image, self._stamp()))
        self.get_logger().info(f"published goal image for EE at {np.round(xyz, 4).tolist()}")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._advance()
        self.sim.reset(self._initial_q)
        response.success = True
        response.message = f"reset to joint positions {self._initial_q.tolist()}"
        return response

    def destroy_node(self) -> None:
        """Close the simulator (renderer), then the node."""
        if self.sim is not None:
            self.sim.close()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa_ros.nodes.sim_node`` / the ``sim_node`` console script (2: cannot start)."""
    return run_node(SimNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())

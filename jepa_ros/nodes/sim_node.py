"""ROS 2 adapter over :class:`jepa_sim.arm_sim.ArmSim`: real-time physics, camera, state and command topics.

Run: ``python -m jepa_ros.nodes.sim_node --ros-args -p camera_rate:=10.0``.

Publishes ``/camera/image_raw`` + ``/camera/camera_info`` (sensor-data QoS) at ``camera_rate``, ``/joint_states`` and
``/ee_pose`` (frame ``base_link``) at ``state_rate``, ``~/goal_image`` (reliable, transient-local) on request,
``/diagnostics`` at 1 Hz and, with ``publish_clock``, ``/clock`` (simulated time, which then also stamps every
message). Without ``publish_clock`` messages are stamped with the node clock when rendered/measured.
Subscribes ``/servo_node/delta_twist_cmds`` (TwistStamped, linear part in m/s in ``base_link``; held until the next
command or until ``command_timeout`` passes without one, then the arm stops), ``/joint_trajectory_controller/
joint_trajectory`` (goes to the last point by its time_from_start) and ``~/goal_pose`` (PoseStamped; its position is
rendered as a goal image). Service ``~/reset`` (std_srvs/Trigger) returns the arm to its initial pose.
Physics runs on the steady (wall) clock, so it keeps going under ``use_sim_time``.
"""
from __future__ import annotations

import math
import signal
import time
from typing import Sequence

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_sim.arm_sim import BASE_FRAME, CAMERA_FRAME, HOME_JOINT_POSITIONS, ArmSim

NODE_NAME = "sim_node"
DIAGNOSTIC_NAME = f"jepa_ros: {NODE_NAME}"
PHYSICS_PERIOD = 0.01  # s between physics updates (the physics itself runs at the model timestep)
MAX_CATCH_UP = 0.25  # s of simulated time the node may fall behind before it drops wall time
_BASE_FRAMES = ("", BASE_FRAME)


def _float_param(description: str, low: float, high: float, read_only: bool = True) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=description, type=ParameterType.PARAMETER_DOUBLE, read_only=read_only,
        floating_point_range=[FloatingPointRange(from_value=low, to_value=high, step=0.0)])


def _int_param(description: str, low: int, high: int) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=description, type=ParameterType.PARAMETER_INTEGER, read_only=True,
        integer_range=[IntegerRange(from_value=low, to_value=high, step=1)])


def _stamp_from_seconds(seconds: float) -> TimeMsg:
    sec = math.floor(seconds)
    return TimeMsg(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


class SimNode(Node):
    """Thin ROS adapter: maps topics/services onto :class:`ArmSim` and keeps its physics in real time."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.declare_parameter("image_size", 64, _int_param("Side of the square camera image in pixels.", 8, 1024))
        self.declare_parameter("camera_rate", 10.0, _float_param("Camera publishing rate (Hz).", 0.1, 120.0))
        self.declare_parameter("state_rate", 50.0, _float_param(
            "/joint_states and /ee_pose publishing rate (Hz).", 1.0, 1000.0))
        self.declare_parameter("command_timeout", 0.2, _float_param(
            "A twist command is applied until this many seconds pass without a new one, then the arm stops.",
            0.01, 10.0, read_only=False))
        self.declare_parameter("publish_clock", False, ParameterDescriptor(
            description="Publish /clock with the simulated time and stamp messages with it.",
            type=ParameterType.PARAMETER_BOOL, read_only=True))
        self.declare_parameter("seed", 0, _int_param("Seed of the simulator's random generator.", 0, 2**31 - 1))
        self.declare_parameter("initial_joint_positions", list(HOME_JOINT_POSITIONS), ParameterDescriptor(
            description="Initial and ~/reset joint positions (rad): base_yaw, shoulder_pitch, elbow_pitch.",
            type=ParameterType.PARAMETER_DOUBLE_ARRAY, read_only=True))

        self.sim = ArmSim(image_size=self._param("image_size"), seed=self._param("seed"))
        self._initial_q = np.asarray(self._param("initial_joint_positions"), dtype=float)
        try:
            self.sim.reset(self._initial_q)
        except ValueError as exc:
            raise ValueError(f"parameter initial_joint_positions: {exc}") from exc
        self.sim.render()  # create the renderer now, not in the first camera callback
        self._publish_clock = bool(self._param("publish_clock"))

        self._image_pub = self.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, "/camera/camera_info", qos_profile_sensor_data)
        self._joint_pub = self.create_publisher(JointState, "/joint_states", 10)
        self._pose_pub = self.create_publisher(PoseStamped, "/ee_pose", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._goal_pub = self.create_publisher(Image, "~/goal_image", latched)
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", 1) if self._publish_clock else None

        # Best effort accepts both reliable and best-effort publishers of the command stream.
        twist_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", self._on_twist, twist_qos)
        self.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                 self._on_trajectory, 10)
        self.create_subscription(PoseStamped, "~/goal_pose", self._on_goal_pose, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)

        self._wall_offset = time.monotonic() - self.sim.time  # sim time = wall time - offset
        self._twist_received: float | None = None  # wall time of the last accepted twist
        self._last_command: float | None = None  # wall time of the last accepted command of any kind
        self._last_rejected: float | None = None
        self._frames = 0
        self._render_seconds = 0.0
        self._diag_window = (time.monotonic(), self.sim.time)
        self._dropped = 0.0

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(PHYSICS_PERIOD, self._advance, clock=steady)
        self.create_timer(1.0 / self._param("camera_rate"), self._publish_camera, clock=steady)
        self.create_timer(1.0 / self._param("state_rate"), self._publish_state, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f"simulating {', '.join(self.sim.joint_names)}; camera {self.sim.image_size}px at "
            f"{self._param('camera_rate')} Hz, state at {self._param('state_rate')} Hz")

    # -------------------------------------------------------------- helpers
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _stamp(self) -> TimeMsg:
        if self._publish_clock:
            return _stamp_from_seconds(self.sim.time)
        return self.get_clock().now().to_msg()

    def _reject(self, what: str, reason: str) -> None:
        self.get_logger().warning(f"rejected {what}: {reason}; stopping the arm")
        self._last_rejected = time.monotonic()
        self._twist_received = None
        self.sim.stop()

    # -------------------------------------------------------------- physics
    def _advance(self) -> None:
        """Step the physics up to the current wall time, stopping a twist whose command timed out on time."""
        now = time.monotonic()
        behind = now - self._wall_offset - self.sim.time
        if behind > MAX_CATCH_UP:  # stalled (e.g. slow rendering): drop wall time instead of racing
            self._wall_offset += behind - MAX_CATCH_UP
            self._dropped += behind - MAX_CATCH_UP
        target = now - self._wall_offset
        if self._twist_received is not None and self.sim.mode == "twist":
            deadline = self._twist_received + float(self._param("command_timeout")) - self._wall_offset
            if deadline <= target:
                self._step_to(deadline)
                self.sim.stop()
                self._twist_received = None
        self._step_to(target)
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

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        wall0, sim0 = self._diag_window
        elapsed = max(now - wall0, 1e-9)
        fps = self._frames / elapsed
        real_time_factor = (self.sim.time - sim0) / elapsed
        camera_rate = float(self._param("camera_rate"))
        problems = []
        if fps < 0.8 * camera_rate:
            problems.append(f"rendering {fps:.1f} fps < camera_rate {camera_rate:g} Hz")
        if real_time_factor < 0.9:
            problems.append(f"physics behind real time (factor {real_time_factor:.2f})")
        if self._last_rejected is not None and now - self._last_rejected < 5.0:
            problems.append("malformed command rejected in the last 5 s")

        def age(t: float | None) -> str:
            return "never" if t is None else f"{now - t:.3f}"

        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK, name=DIAGNOSTIC_NAME,
            message="; ".join(problems) if problems else "simulating in real time", hardware_id="mujoco")
        values = {
            "rendered_fps": f"{fps:.2f}",
            "render_ms": f"{1000.0 * self._render_seconds / max(self._frames, 1):.2f}",
            "camera_rate": f"{camera_rate:g}",
            "real_time_factor": f"{real_time_factor:.3f}",
            "dropped_seconds": f"{self._dropped:.3f}",
            "mode": self.sim.mode,
            "last_command_age": age(self._last_command),
            "last_rejected_age": age(self._last_rejected),
            "ee_position": " ".join(f"{v:.4f}" for v in self.sim.ee_position()),
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._stamp()
        self._diag_pub.publish(msg)
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
        self.sim.start_twist(linear)
        self._twist_received = self._last_command = time.monotonic()

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
        self._twist_received = None
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
        self._twist_received = None
        response.success = True
        response.message = f"reset to joint positions {self._initial_q.tolist()}"
        return response


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa_ros.nodes.sim_node`` / the ``sim_node`` console script."""
    # Own signal handling: SIGINT/SIGTERM raise KeyboardInterrupt in spin(), so shutdown is always orderly.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    node = None
    try:
        node = SimNode()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except (ValueError, ParameterException) as exc:  # bad parameters: say which, exit non-zero
        rclpy.logging.get_logger(NODE_NAME).error(f"cannot start: {exc}")
        return 1
    finally:
        if node is not None:
            node.sim.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

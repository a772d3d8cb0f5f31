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

With ``task:=push`` the scene has a puck and the camera looks down on the table (``jepa_sim/arm_push.xml``). Then
``/object_pose`` (PoseStamped, the puck's centre in ``base_link``; for evaluation and recording, never a planner
input) is published with the state, ``~/reset`` also puts the puck at ``initial_object_position`` (empty: a random
spot from ``seed``), ``~/place_object`` (PoseStamped) puts it at rest at a pose and ``~/place_ee`` (PoseStamped)
puts the arm at rest with its end effector at a position (evaluation resets; a joint trajectory would be overridden
by the controller's twist stream), ``~/goal_pose``
images show the puck where it is, and ``~/goal_object_pose`` (PoseStamped) renders the goal scene "puck at this
position, end effector touching it from behind on the line from the puck's current position" (``jepa_sim.push``).

With ``task:=grasp`` or ``task:=pick_place`` the node serves the Franka Panda with its gripper, a 4 cm cube and a
green target disc instead (``jepa_sim.franka_sim.FrankaSim``, camera ``franka_image_size`` px). Then twists apply
their linear AND angular parts (rad/s, base frame; same topic, timeout and checks); ``/jepa/gripper_command``
(std_msgs/Float64, closedness 0 open .. 1 closed, what the controller publishes) moves the fingers, a NaN or
out-of-range value is refused with a warning and counted (``/diagnostics``: ``rejected_gripper_commands``);
``/joint_states`` holds panda_joint1..7 and panda_finger_joint1/2 (m, each finger's opening 0 .. 0.04);
``/ee_pose`` the position and orientation of the point between the finger pads; ``/object_pose`` the cube (for
judging and recording only). ``~/reset`` draws a new start from the generator of ``seed`` (the arm pointing down
at a random pose, the cube and the target; ``initial_object_position`` / ``initial_target_position`` fix the cube's
/ target's x, y). PoseStamped inputs whose orientation stands for the gripper's (``~/goal_pose``, ``~/place_ee``)
keep the gripper pointing down and take only the orientation's yaw about the vertical (the identity: yaw 0).
``~/place_object`` puts the cube at rest on the table at x, y with the orientation's yaw, ``~/place_target`` the
target disc, ``~/place_ee`` the arm at rest (gripper open) with its end effector at a position, the cube and target
kept. ``~/goal_pose`` images show the end effector at a position with the gripper as it is now;
``~/goal_object_pose`` renders the scene of the cube's centre at a position, as a person stages it: above the table
(its centre raised ``LIFTED`` or more) the cube is held by the gripper closed on it, facing its sides; on the table
the cube rests there with the gripper open and raised ``RETREAT_ABOVE`` above it. Joint trajectories are refused.
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
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_common import frames, topics
from jepa_ros.ros_util import (OK, WARN, Diagnostics, declare_settings, latched_qos, reliable_qos, run_node,
                               sensor_qos)
from jepa_sim.arm_sim import EE_RADIUS, HOME_JOINT_POSITIONS, PUCK_HALF_HEIGHT, PUSH_WORKSPACE, TASKS, ArmSim
from jepa_sim.franka_script import GRASP_HEIGHT
from jepa_sim.franka_script import TASKS as FRANKA_TASKS
from jepa_sim.franka_sim import (CAMERA_NAME, CUBE_HALF, DOWN_EULER, FINGER_MAX, FINGERTIP_BELOW_EE, IMAGE_SIZE,
                                 FrankaSim)
from jepa_sim.push import CONTACT, PushTask, goal_scene
from jepa_common.settings import setting

NODE_NAME = "sim_node"
PHYSICS_PERIOD = 0.01  # s between physics updates (the physics itself runs at the model timestep)
MAX_CATCH_UP = 0.25  # s of simulated time the node may fall behind before it drops wall time
_BASE_FRAMES = ("", frames.BASE)
# The Franka scenes (grasp, pick_place): where objects may be placed, and how goal scenes are staged (the same
# geometry as jepa_episodes.tasks.grasp / pick_place, which stage the episodes' goal images).
FRANKA_TABLE = ((0.20, -0.45), (0.80, 0.45))  # m, x-y box on the table inside the camera's view
LIFTED = 0.01  # m a cube's centre must be above its resting height to be a held cube's in a goal scene
HELD_BELOW_EE = GRASP_HEIGHT - CUBE_HALF  # m from the end-effector point down to a held cube's centre
HOLDING_GRIPPER = 1.0 - CUBE_HALF / FINGER_MAX  # the closedness of fingers closed on the cube
RETREAT_ABOVE = 0.075  # m from a placed cube's centre up to the end-effector point in a goal scene
CLEARANCE = 0.005  # m between fingertips and a placed cube


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
                                             "shoulder_pitch, elbow_pitch (the 3-joint arm; the Franka starts at a "
                                             "random pose drawn from seed)", unit="rad", read_only=True)
    task: str = setting("reach", "reach: the arm alone, oblique scene camera; push: a puck on the table, the "
                        "camera looking down on the table, /object_pose published; grasp, pick_place: the Franka "
                        "Panda with its gripper, a cube and a target (jepa_sim.franka_sim), /object_pose = the cube, "
                        "/jepa/gripper_command served", choices=TASKS + FRANKA_TASKS, read_only=True)
    initial_object_position: tuple = setting((), "push task: the puck's x, y on start and ~/reset; grasp, "
                                             "pick_place: the cube's; empty = a random spot (from seed)", unit="m",
                                             read_only=True)
    franka_image_size: int = setting(IMAGE_SIZE, "grasp, pick_place: side of the Franka scene's square camera image "
                                     "(image_size is the 3-joint arm's)", unit="px", low=8, high=640,
                                     read_only=True)
    initial_target_position: tuple = setting((), "grasp, pick_place: the target disc's x, y on start and ~/reset; "
                                             "empty = a random spot (from seed)", unit="m", read_only=True)

    def __post_init__(self) -> None:
        for name in ("initial_object_position", "initial_target_position"):
            if len(getattr(self, name)) not in (0, 2):
                raise ValueError(f"{name} must be empty or x, y, got {list(getattr(self, name))}")


SETTINGS = SimSettings


def _overlaps(ee_xyz: np.ndarray, puck_xy: np.ndarray) -> bool:
    """Whether the end-effector sphere at ``ee_xyz`` would intersect the puck standing at ``puck_xy``."""
    low_enough = ee_xyz[2] < 2.0 * PUCK_HALF_HEIGHT + EE_RADIUS
    return bool(low_enough and np.linalg.norm(np.asarray(ee_xyz[:2]) - puck_xy) < CONTACT)


def _yaw(orientation) -> float:
    """Yaw (rad, about the vertical) of a geometry_msgs Quaternion; 0 when it is not finite."""
    o = orientation
    yaw = math.atan2(2.0 * (o.w * o.z + o.x * o.y), 1.0 - 2.0 * (o.y * o.y + o.z * o.z))
    return yaw if math.isfinite(yaw) else 0.0


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _stamp_from_seconds(seconds: float) -> TimeMsg:
    sec = math.floor(seconds)
    return TimeMsg(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


class SimNode(Node):
    """Thin ROS adapter: maps topics/services onto :class:`ArmSim` (reach, push) or :class:`FrankaSim` (grasp,
    pick_place) and keeps its physics in real time."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.sim: ArmSim | FrankaSim | None = None  # destroy_node may run after a failed start
        self.settings = s = declare_settings(self, SimSettings)
        self._push = s.task == "push"
        self._franka = s.task in FRANKA_TASKS
        self._initial_q = np.asarray(s.initial_joint_positions, dtype=float)
        self._initial_object = tuple(s.initial_object_position) or None
        self._initial_target = tuple(s.initial_target_position) or None
        self._twist_deadline: float | None = None  # Franka: sim time at which the current twist times out
        self._gripper_rejected = 0
        if self._franka:
            self.sim = FrankaSim(image_size=s.franka_image_size, seed=s.seed)
            self._rng = np.random.default_rng(s.seed)
            try:
                self._reset_franka()
            except ValueError as exc:
                raise ValueError(f"parameter initial_object_position/initial_target_position: {exc}") from exc
        else:
            self.sim = ArmSim(image_size=s.image_size, seed=s.seed, task=s.task)
            try:
                self.sim.reset(self._initial_q, self._initial_object if self._push else None)
            except ValueError as exc:
                raise ValueError(f"parameter initial_joint_positions/initial_object_position: {exc}") from exc
        self.sim.render()  # create the renderer now, not in the first camera callback

        self._image_pub = self.create_publisher(Image, topics.CAMERA, sensor_qos())
        self._info_pub = self.create_publisher(CameraInfo, topics.CAMERA_INFO, sensor_qos())
        self._joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, reliable_qos())
        self._pose_pub = self.create_publisher(PoseStamped, topics.EE_POSE, reliable_qos())
        self._goal_pub = self.create_publisher(Image, "~/goal_image", latched_qos())
        self._clock_pub = self.create_publisher(ClockMsg, topics.CLOCK, reliable_qos(1)) if s.publish_clock else None
        self._object_pub = self.create_publisher(PoseStamped, topics.OBJECT_POSE, reliable_qos()) \
            if self._push or self._franka else None
        self._diagnostics = Diagnostics(self, NODE_NAME)

        # Best effort accepts both reliable and best-effort publishers of the command stream.
        self.create_subscription(TwistStamped, topics.SERVO_TWIST, self._on_twist, sensor_qos())
        self.create_subscription(JointTrajectory, topics.JOINT_TRAJECTORY, self._on_trajectory, reliable_qos())
        self.create_subscription(PoseStamped, "~/goal_pose", self._on_goal_pose, reliable_qos())
        self.create_service(Trigger, "~/reset", self._on_reset)
        if self._push:
            self.create_subscription(PoseStamped, "~/place_object", self._on_place_object, reliable_qos())
            self.create_subscription(PoseStamped, "~/place_ee", self._on_place_ee, reliable_qos())
            self.create_subscription(PoseStamped, "~/goal_object_pose", self._on_goal_object_pose, reliable_qos())
        if self._franka:
            # Best effort accepts both reliable and best-effort publishers, as for the twists.
            self.create_subscription(Float64, topics.GRIPPER_COMMAND, self._on_gripper, sensor_qos())
            self.create_subscription(PoseStamped, "~/place_object", self._on_place_cube, reliable_qos())
            self.create_subscription(PoseStamped, "~/place_ee", self._on_place_franka_ee, reliable_qos())
            self.create_subscription(PoseStamped, "~/place_target", self._on_place_target, reliable_qos())
            self.create_subscription(PoseStamped, "~/goal_object_pose", self._on_goal_cube_pose, reliable_qos())

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
            f"simulating {', '.join(self.sim.joint_names)} ({s.task} task); camera {self.sim.image_size}px at "
            f"{s.camera_rate} Hz, state at {s.state_rate} Hz, twists time out after {s.command_timeout} s")

    # -------------------------------------------------------------- helpers
    def _stamp(self) -> TimeMsg:
        if self.settings.publish_clock:
            return _stamp_from_seconds(self.sim.time)
        return self.get_clock().now().to_msg()

    def _reject(self, what: str, reason: str) -> None:
        self.get_logger().warning(f"rejected {what}: {reason}; stopping the arm")
        self._last_rejected = time.monotonic()
        self._twist_deadline = None
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
        deadline = self._twist_deadline  # the Franka's twists time out here (ArmSim times its own out)
        if deadline is not None and sim_time >= deadline:
            n = int((deadline - self.sim.time) / self.sim.timestep)
            if n > 0:
                self.sim.step(n)
            self.sim.stop()
            self._twist_deadline = None
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
        info = self._camera_info()
        k = info["K"]
        msg = CameraInfo(width=info["width"], height=info["height"], distortion_model="plumb_bob",
                         d=[0.0] * 5, k=k.ravel().tolist(), r=np.eye(3).ravel().tolist(),
                         p=np.hstack([k, np.zeros((3, 1))]).ravel().tolist())
        msg.header.stamp = stamp
        msg.header.frame_id = info["frame"]
        self._info_pub.publish(msg)

    def _camera_info(self) -> dict:
        """K (3x3), width, height and frame of the camera (the Franka's from its field of view)."""
        if not self._franka:
            return self.sim.camera_info()
        size = self.sim.image_size
        fovy = math.radians(float(self.sim.model.cam_fovy[self.sim.model.camera(CAMERA_NAME).id]))
        f = 0.5 * size / math.tan(0.5 * fovy)
        c = (size - 1) / 2.0
        return {"K": np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]), "width": size, "height": size,
                "frame": frames.SIM_CAMERA_OPTICAL}

    def _image_msg(self, image: np.ndarray, stamp: TimeMsg) -> Image:
        msg = Image(height=image.shape[0], width=image.shape[1], encoding="rgb8", is_bigendian=0,
                    step=3 * image.shape[1])
        msg.header.stamp = stamp
        msg.header.frame_id = frames.SIM_CAMERA_OPTICAL
        msg.data = image.tobytes()
        return msg

    def _publish_state(self) -> None:
        self._advance()
        stamp = self._stamp()
        if self._franka:
            joints = JointState(name=list(self.sim.joint_names), position=self.sim.joint_positions_all().tolist(),
                                velocity=self.sim.joint_velocities_all().tolist())
        else:
            joints = JointState(name=list(self.sim.joint_names), position=self.sim.joint_positions().tolist(),
                                velocity=self.sim.joint_velocities().tolist(),
                                effort=self.sim.joint_efforts().tolist())
        joints.header.stamp = stamp
        self._joint_pub.publish(joints)
        self._pose_pub.publish(self._pose_msg(*self.sim.ee_pose(), stamp))
        if self._object_pub is not None:
            pose = self.sim.cube_pose() if self._franka else self.sim.object_pose()
            self._object_pub.publish(self._pose_msg(*pose, stamp))

    @staticmethod
    def _pose_msg(position: np.ndarray, quat_wxyz: np.ndarray, stamp: TimeMsg) -> PoseStamped:
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.header.frame_id = frames.BASE
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in position)
        o = pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in quat_wxyz)
        return pose

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

        gripper = {}
        if self._franka:
            gripper = dict(gripper_command=f"{self.sim.gripper_command:.3f}",
                           gripper=f"{self.sim.gripper_state():.3f}",
                           rejected_gripper_commands=str(self._gripper_rejected))
        self._diagnostics.set(
            WARN if problems else OK, "; ".join(problems) if problems else "simulating in real time", **gripper,
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
            self._reject("twist", f"frame_id '{msg.header.frame_id}' is not '{frames.BASE}' (or empty)")
            return
        if self._franka:
            self._advance()
            self.sim.start_twist(linear, angular)
            self._twist_deadline = self.sim.time + self.settings.command_timeout
            self._last_command = time.monotonic()
            return
        if any(angular):
            self.get_logger().warning("ignoring the angular part of twist commands (position-only arm)",
                                      throttle_duration_sec=5.0)
        self._advance()
        self.sim.start_twist(linear, timeout=self.settings.command_timeout)
        self._last_command = time.monotonic()

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if self._franka:
            self._reject("joint trajectory", "the Franka scene is driven by twists and gripper commands only")
            return
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
            self.get_logger().warning(f"goal_pose frame_id '{msg.header.frame_id}' is not '{frames.BASE}'; ignored")
            return
        if self._franka:
            self._publish_franka_goal(xyz, self._down(_yaw(msg.pose.orientation)), self.sim.gripper_state(), None,
                                      f"EE at {np.round(xyz, 4).tolist()}")
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
        if self._franka:
            self._reset_franka()
            response.success = True
            response.message = (f"reset to EE {np.round(self.sim.ee_position(), 4).tolist()}, cube at "
                                f"{np.round(self.sim.cube_position()[:2], 4).tolist()}, target at "
                                f"{np.round(self.sim.target_position()[:2], 4).tolist()}")
            return response
        self.sim.reset(self._initial_q, self._initial_object if self._push else None)
        response.success = True
        response.message = f"reset to joint positions {self._initial_q.tolist()}"
        if self._push:
            response.message += f", puck at {np.round(self.sim.object_position()[:2], 4).tolist()}"
        return response

    # ------------------------------------------------------------------ push task
    def _table_xy(self, msg: PoseStamped, what: str) -> np.ndarray | None:
        """The x, y of a PoseStamped in the base frame inside the push workspace, or None (logged)."""
        p = msg.pose.position
        xy = np.array([p.x, p.y])
        problem = ""
        if msg.header.frame_id not in _BASE_FRAMES:
            problem = f"frame_id '{msg.header.frame_id}' is not '{frames.BASE}'"
        elif not np.all(np.isfinite(xy)):
            problem = f"non-finite position {xy.tolist()}"
        elif not PUSH_WORKSPACE.contains([*xy, PUSH_WORKSPACE.low[2]]):
            problem = f"position {np.round(xy, 4).tolist()} is outside the push workspace"
        if problem:
            self.get_logger().warning(f"{what} ignored: {problem}")
            return None
        return xy

    def _on_place_object(self, msg: PoseStamped) -> None:
        xy = self._table_xy(msg, "place_object")
        if xy is None:
            return
        self._advance()
        if _overlaps(self.sim.ee_position(), xy):
            self.get_logger().warning(f"place_object ignored: {np.round(xy, 4).tolist()} overlaps the end effector")
            return
        o = msg.pose.orientation
        yaw = math.atan2(2.0 * (o.w * o.z + o.x * o.y), 1.0 - 2.0 * (o.y * o.y + o.z * o.z))
        self.sim.place_object(xy, yaw if math.isfinite(yaw) else 0.0)
        self.get_logger().info(f"puck placed at {np.round(xy, 4).tolist()}")

    def _on_place_ee(self, msg: PoseStamped) -> None:
        xy = self._table_xy(msg, "place_ee")
        if xy is None:
            return
        xyz = [*xy, msg.pose.position.z]
        q = self.sim.ik(xyz) if math.isfinite(xyz[2]) else None
        if q is None:
            self.get_logger().warning(f"place_ee ignored: {np.round(xyz, 4).tolist()} is not reachable")
            return
        self._advance()
        puck = self.sim.object_position()[:2]
        if _overlaps(np.asarray(xyz), puck):
            self.get_logger().warning(f"place_ee ignored: {np.round(xyz, 4).tolist()} overlaps the puck")
            return
        self.sim.reset(q, puck)
        self.get_logger().info(f"arm placed with the end effector at {np.round(xyz, 4).tolist()}")

    def _on_goal_object_pose(self, msg: PoseStamped) -> None:
        target = self._table_xy(msg, "goal_object_pose")
        if target is None:
            return
        start = self.sim.object_position()[:2]
        if np.linalg.norm(target - start) < 1e-3:
            self.get_logger().warning("goal_object_pose ignored: the puck is already there (no push direction)")
            return
        task = PushTask(tuple(start), tuple(target), tuple(self.sim.ee_position()))
        try:
            image = self.sim.render_goal(*goal_scene(task, "target"))
        except ValueError as exc:
            self.get_logger().warning(f"no goal image: {exc}")
            return
        self._goal_pub.publish(self._image_msg(image, self._stamp()))
        self.get_logger().info(f"published goal image for the puck at {np.round(target, 4).tolist()}")

    # ------------------------------------------------------------------ Franka tasks
    def _reset_franka(self) -> None:
        """A new random start from the seed's generator (the cube and target fixed when set), gripper open."""
        self._twist_deadline = None
        self.sim.reset(rng=self._rng, cube_xy=self._initial_object, target_xy=self._initial_target)

    @staticmethod
    def _down(yaw: float) -> tuple[float, float, float]:
        """Euler angles of the gripper pointing down, turned by ``yaw`` about the vertical."""
        return DOWN_EULER[0], DOWN_EULER[1], DOWN_EULER[2] + yaw

    def _on_gripper(self, msg: Float64) -> None:
        value = float(msg.data)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            self._gripper_rejected += 1
            self._last_rejected = time.monotonic()
            self.get_logger().warning(f"rejected gripper command {value}: closedness must be a finite number in "
                                      f"[0, 1] ({self._gripper_rejected} refused so far); the gripper keeps "
                                      f"{self.sim.gripper_command:.3f}")
            return
        self._advance()
        self.sim.set_gripper(value)
        self._last_command = time.monotonic()

    def _franka_xy(self, msg: PoseStamped, what: str) -> np.ndarray | None:
        """The x, y of a PoseStamped in the base frame on the Franka's table, or None (logged)."""
        p = msg.pose.position
        xy = np.array([p.x, p.y])
        low, high = FRANKA_TABLE
        problem = ""
        if msg.header.frame_id not in _BASE_FRAMES:
            problem = f"frame_id '{msg.header.frame_id}' is not '{frames.BASE}'"
        elif not np.all(np.isfinite(xy)):
            problem = f"non-finite position {xy.tolist()}"
        elif np.any(xy < low) or np.any(xy > high):
            problem = f"position {np.round(xy, 4).tolist()} is outside the table area {[list(low), list(high)]}"
        if problem:
            self.get_logger().warning(f"{what} ignored: {problem}")
            return None
        return xy

    @staticmethod
    def _fingers_overlap(ee: np.ndarray, cube_xy: np.ndarray) -> bool:
        """Whether fingers around ``ee`` would intersect a cube resting at ``cube_xy``."""
        low_enough = ee[2] - FINGERTIP_BELOW_EE < 2.0 * CUBE_HALF + CLEARANCE
        return bool(low_enough and np.linalg.norm(ee[:2] - cube_xy) < CUBE_HALF * math.sqrt(2.0) + FINGER_MAX)

    def _on_place_cube(self, msg: PoseStamped) -> None:
        xy = self._franka_xy(msg, "place_object")
        if xy is None:
            return
        self._advance()
        if self._fingers_overlap(self.sim.ee_position(), xy):
            self.get_logger().warning(f"place_object ignored: {np.round(xy, 4).tolist()} overlaps the gripper")
            return
        yaw = _yaw(msg.pose.orientation)
        self.sim.place_cube([*xy, CUBE_HALF], [math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)])
        self.get_logger().info(f"cube placed at {np.round(xy, 4).tolist()}")

    def _on_place_target(self, msg: PoseStamped) -> None:
        xy = self._franka_xy(msg, "place_target")
        if xy is None:
            return
        self._advance()
        self.sim.set_target(xy)
        self.get_logger().info(f"target placed at {np.round(xy, 4).tolist()}")

    def _on_place_franka_ee(self, msg: PoseStamped) -> None:
        xy = self._franka_xy(msg, "place_ee")
        if xy is None:
            return
        xyz = np.array([*xy, msg.pose.position.z])
        euler = self._down(_yaw(msg.pose.orientation))
        q = self.sim.ik(xyz, euler) if math.isfinite(xyz[2]) else None
        if q is None:
            self.get_logger().warning(f"place_ee ignored: {np.round(xyz, 4).tolist()} is not reachable pointing down")
            return
        self._advance()
        cube, target = self.sim.cube_position(), self.sim.target_position()
        if self._fingers_overlap(xyz, cube[:2]):
            self.get_logger().warning(f"place_ee ignored: {np.round(xyz, 4).tolist()} overlaps the cube")
            return
        self._twist_deadline = None
        self.sim.reset(joint_positions=q, cube_xy=cube[:2], cube_yaw=self.sim.cube_yaw(), target_xy=target[:2])
        self.get_logger().info(f"arm placed with the end effector at {np.round(xyz, 4).tolist()}")

    def _on_goal_cube_pose(self, msg: PoseStamped) -> None:
        xy = self._franka_xy(msg, "goal_object_pose")
        if xy is None:
            return
        z = float(msg.pose.position.z)
        if not math.isfinite(z):
            self.get_logger().warning("goal_object_pose ignored: non-finite height")
            return
        cube_yaw = _yaw(msg.pose.orientation)
        ee_yaw = float(self.sim.ee_euler()[2])
        grasp_yaw = ee_yaw + _wrap(4.0 * (cube_yaw - ee_yaw)) / 4.0  # facing the cube's sides
        cube_quat = [math.cos(cube_yaw / 2.0), 0.0, 0.0, math.sin(cube_yaw / 2.0)]
        if z - CUBE_HALF >= LIFTED:
            cube = np.array([*xy, z])
            ee, gripper, what = cube + [0.0, 0.0, HELD_BELOW_EE], HOLDING_GRIPPER, "held"
        else:
            cube = np.array([*xy, CUBE_HALF])
            ee, gripper, what = cube + [0.0, 0.0, RETREAT_ABOVE], 0.0, "released"
        self._publish_franka_goal(ee, self._down(grasp_yaw), gripper, (cube, cube_quat),
                                  f"the cube {what} at {np.round(cube, 4).tolist()}")

    def _publish_franka_goal(self, ee: Sequence[float], euler: Sequence[float], gripper: float,
                             cube: tuple | None, what: str) -> None:
        """Render the Franka scene (EE pose, gripper closedness, cube pose or where it is) as the goal image."""
        try:
            image = self.sim.render_goal(ee, euler, float(np.clip(gripper, 0.0, 1.0)),
                                         *(cube if cube is not None else (None, None)))
        except ValueError as exc:
            self.get_logger().warning(f"no goal image: {exc}")
            return
        self._goal_pub.publish(self._image_msg(image, self._stamp()))
        self.get_logger().info(f"published goal image for {what}")

    def destroy_node(self) -> None:
        """Close the simulator (renderer), then the node."""
        if self.sim is not None:
            self.sim.close()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa_ros.nodes.sim_node`` / the ``sim_node`` console script (2: cannot start)."""
    return run_node(SimNode, NODE_NAME, args, own_signals=True)


if __name__ == "__main__":
    sys.exit(main())

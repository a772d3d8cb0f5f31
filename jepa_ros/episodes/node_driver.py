"""The node driver: episodes against a running stack over ROS (a ``jepa_episodes.runner.Driver``).

Rules: only the stack's public interfaces are used: sim_node's ``~/reset``, ``~/place_object``, ``~/place_ee``,
``~/goal_pose`` / ``~/goal_object_pose`` -> ``~/goal_image``, the controller's ``~/arm``, the planner's ReachGoal
action, and the pose topics to measure what happened (never planner inputs). A reset disarms the controller before
the scene is touched and arms it once the scene is placed, so its plan watchdog starts afresh every episode. Topic
and frame names come from `jepa_common.topics` / `jepa_common.frames`; outcome names from `jepa_common.outcomes`.

Franka tasks (``task.sim_task`` "grasp" or "pick_place"): start scenes also place the target marker
(``~/place_target``) and turn the cube and the gripper to their yaws (the PoseStamped orientation's yaw about the
vertical); goal scenes with ``object_position`` send the cube's centre with its height (a lifted cube is rendered
held in the closed gripper) and its yaw; the observed state is 7-D as the offline driver's ([x, y, z, roll, pitch,
yaw, gripper]: /ee_pose and the finger joints of /joint_states). Reach and push send what they always sent.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

import numpy as np
from geometry_msgs.msg import PoseStamped
from jepa_msgs.action import ReachGoal
from jepa_msgs.msg import Embedding, Plan
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import SetBool, Trigger

from jepa_common import frames, topics
from jepa_common.outcomes import END_NODE_DIED, END_REJECTED, no_result
from jepa_episodes.record import EpisodeRecord, SceneState
from jepa_episodes.runner import OnStep, run_episode
from jepa_episodes.tasks import GoalScene, StartScene, Task
from jepa_episodes.tasks.reach import REACH
from jepa_ros.launch_runner.stack import wait_until
from jepa_ros.msg_validation import image_to_array
from jepa_ros.ros_util import latched_qos, reliable_qos, sensor_qos
from jepa_world_model.actions import pose_state
from jepa_world_model.data.dataset import FINGER_JOINT_MARK, gripper_closedness

SIM_NODE = "/sim_node"
CONTROLLER_NODE = "/controller_node"
PLACED_M = 0.002  # a placed object or end effector counts as there within this distance
#: sim tasks played on the Franka (FrankaSim): 7-D states, yaws, the target marker
FRANKA_SIM_TASKS = ("grasp", "pick_place")


class NodeExited(RuntimeError):
    """A node of the stack exited while the driver waited for it."""


class NodeDriver:
    """A ROS node (spun in a background thread) that drives episodes of ``task`` on a running stack.

    ``alive()`` is polled while a ReachGoal runs (False: it ends as a dead node's); ``goal_timeout`` bounds each
    ReachGoal (None: 30 s + 3 s per budgeted step)."""

    name = "nodes"

    def __init__(self, task: Task = REACH, sim: str = SIM_NODE, controller: str = CONTROLLER_NODE,
                 alive: Callable[[], bool] = lambda: True, goal_timeout: float | None = None) -> None:
        self.task = task
        self.alive = alive
        self.goal_timeout = goal_timeout
        self.node = Node("jepa_episode_driver")
        self._lock = threading.Lock()
        self.ee_position: np.ndarray | None = None
        self.ee_euler: np.ndarray | None = None  # Franka: the gripper's extrinsic x-y-z Euler angles (rad)
        self.gripper: float | None = None  # Franka: closedness 0 open .. 1 closed, from the finger joints
        self.franka = task.sim_task in FRANKA_SIM_TASKS
        self.object_position: np.ndarray | None = None
        self.last_image: Image | None = None
        self.goal_image_msg: Image | None = None
        self.last_goal_images: list[Image] = []  # the goal images of the episode now running, in order
        self.plans: list[Plan] = []
        self.embeddings = 0
        node = self.node
        node.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, reliable_qos())
        node.create_subscription(PoseStamped, topics.OBJECT_POSE, self._on_object, reliable_qos())
        node.create_subscription(Image, topics.CAMERA, self._on_image, sensor_qos())
        node.create_subscription(Image, f"{sim}/goal_image", self._on_goal_image, latched_qos())
        node.create_subscription(Plan, topics.PLAN, self.plans.append, reliable_qos())
        node.create_subscription(Embedding, topics.EMBEDDING, self._on_embedding, reliable_qos())
        self._goal_pose = node.create_publisher(PoseStamped, f"{sim}/goal_pose", reliable_qos())
        self._goal_object = node.create_publisher(PoseStamped, f"{sim}/goal_object_pose", reliable_qos())
        self._place_object = node.create_publisher(PoseStamped, f"{sim}/place_object", reliable_qos())
        self._place_ee = node.create_publisher(PoseStamped, f"{sim}/place_ee", reliable_qos())
        if self.franka:
            self._place_target = node.create_publisher(PoseStamped, f"{sim}/place_target", reliable_qos())
            node.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, reliable_qos())
        self._reset = node.create_client(Trigger, f"{sim}/reset")
        self._arm = node.create_client(SetBool, f"{controller}/arm")
        # Before the spin thread starts: rclpy (9.1) adds an ActionClient to its node before building it fully.
        self._reach = ActionClient(node, ReachGoal, topics.REACH_GOAL_ACTION)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    # --- subscriptions -------------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        if self.franka:
            q = msg.pose.orientation
            euler = pose_state([p.x, p.y, p.z], [q.x, q.y, q.z, q.w], "ee_pose")[3:]
            with self._lock:
                self.ee_euler = euler
        with self._lock:
            self.ee_position = np.array([p.x, p.y, p.z])

    def _on_joints(self, msg: JointState) -> None:
        fingers = [v for name, v in zip(msg.name, msg.position) if FINGER_JOINT_MARK in name]
        if fingers and np.all(np.isfinite(fingers)):
            with self._lock:
                self.gripper = float(gripper_closedness(fingers))

    def _on_object(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        with self._lock:
            self.object_position = np.array([p.x, p.y, p.z])

    def _on_image(self, msg: Image) -> None:
        self.last_image = msg

    def _on_goal_image(self, msg: Image) -> None:
        self.goal_image_msg = msg

    def _on_embedding(self, msg: Embedding) -> None:
        self.embeddings += 1

    # --- helpers -------------------------------------------------------------------------------------------
    def distance_to(self, target: np.ndarray) -> float:
        """Current end-effector distance to ``target`` (inf while no pose has arrived)."""
        with self._lock:
            return float("inf") if self.ee_position is None else float(np.linalg.norm(self.ee_position - target))

    def object_distance(self, xy: Any) -> float:
        """Object centre to ``xy`` in m (inf while no object pose has arrived)."""
        with self._lock:
            if self.object_position is None:
                return float("inf")
            return float(np.linalg.norm(self.object_position[:2] - np.asarray(xy)))

    def _pose(self, xyz: Any, yaw: float | None = None) -> PoseStamped:
        """A base-frame pose at ``xyz``; oriented by ``yaw`` (rad, about the vertical) when given, else the
        identity."""
        msg = PoseStamped()
        msg.header.frame_id = frames.BASE
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
        if yaw is None:
            msg.pose.orientation.w = 1.0
        else:
            msg.pose.orientation.z, msg.pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
        return msg

    def _call(self, client: Any, request: Any, timeout: float) -> Any:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        if not wait_until(future.done, timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout:.0f} s")
        return future.result()

    def wait_until_ready(self, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True) -> None:
        """Wait until the stack's interfaces are up (pose, camera, embeddings, services, action server, and the
        object pose for a task with an object); NodeExited as soon as ``alive()`` is false."""
        def ready(what: Callable[[], bool]) -> Callable[[], bool]:
            return lambda: what() or not alive()

        def check(done: bool, problem: str) -> None:
            if not alive():
                raise NodeExited("a node of the stack exited while starting")
            if not done:
                raise TimeoutError(problem)

        check(wait_until(ready(lambda: self.ee_position is not None and self.last_image is not None), timeout),
              f"no {topics.EE_POSE} or {topics.CAMERA} from the simulation")
        check(wait_until(ready(lambda: self.embeddings > 0), timeout),
              f"no {topics.EMBEDDING} from the perception node")
        for client in (self._reset, self._arm):
            check(wait_until(ready(client.service_is_ready), timeout), f"service {client.srv_name} is not available")
        check(wait_until(ready(self._reach.server_is_ready), timeout),
              f"action {topics.REACH_GOAL_ACTION} is not available")
        if self.task.sim_task != "reach":
            check(wait_until(ready(lambda: self.object_position is not None), timeout),
                  f"no {topics.OBJECT_POSE}: is the sim running with task:={self.task.sim_task}?")
        if self.franka:
            check(wait_until(ready(lambda: self.gripper is not None and self.ee_euler is not None), timeout),
                  f"no gripper finger joints on {topics.JOINT_STATES}: is the sim running with "
                  f"task:={self.task.sim_task}?")

    def arm(self, armed: bool = True, timeout: float = 10.0) -> None:
        """Arm (or disarm) the controller, retrying while it refuses (e.g. no fresh state yet)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self._call(self._arm, SetBool.Request(data=armed), 10.0)
            if response.success:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"controller refused to {'arm' if armed else 'disarm'}: {response.message}")
            time.sleep(0.2)

    def reset_sim(self) -> None:
        """Send the simulated arm to its home pose and wait for it to settle."""
        response = self._call(self._reset, Trigger.Request(), 10.0)
        if not response.success:
            raise RuntimeError(f"sim reset failed: {response.message}")
        time.sleep(0.3)

    def _place(self, publisher: Any, xyz: Any, placed: Callable[[], bool], what: str, timeout: float,
               yaw: float | None = None) -> None:
        """Publish the pose ``xyz`` (``yaw``: see ``_pose``) until ``placed()`` (the sim acted on it) or ``timeout``
        s."""
        deadline = time.monotonic() + timeout
        while not placed():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sim did not place the {what} at {[round(float(v), 4) for v in xyz]}")
            publisher.publish(self._pose(xyz, yaw))
            wait_until(placed, 0.5)

    def _place_marker(self, xy: Any, timeout: float) -> None:
        """Put the Franka scene's target marker at ``xy`` (nothing measures it: one reliable message once the
        sim's subscription is matched)."""
        if not wait_until(lambda: self._place_target.get_subscription_count() > 0, timeout):
            raise TimeoutError(f"no subscriber on {self._place_target.topic_name}")
        self._place_target.publish(self._pose([*xy, 0.0]))

    def _rendered(self, publisher: Any, xyz: Any, timeout: float, yaw: float | None = None) -> Image:
        """Publish a goal pose on ``publisher`` until the sim publishes its goal image."""
        self.goal_image_msg = None
        deadline = time.monotonic() + timeout
        while self.goal_image_msg is None and time.monotonic() < deadline:
            publisher.publish(self._pose(xyz, yaw))
            wait_until(lambda: self.goal_image_msg is not None, 0.5)
        if self.goal_image_msg is None:
            raise TimeoutError("sim_node did not publish a goal image")
        return self.goal_image_msg

    def request_goal_image(self, ee: Any, timeout: float = 10.0, yaw: float | None = None) -> Image:
        """The sim's render of the arm with its end effector at ``ee`` (m, base frame), the object where it is
        (Franka: the gripper turned to ``yaw``, pointing down)."""
        return self._rendered(self._goal_pose, ee, timeout, yaw)

    # --- the runner's Driver ---------------------------------------------------------------------------------
    def start(self, scene: StartScene, timeout: float = 10.0) -> None:
        """Disarm, reset the sim, place the target marker (Franka), the object and then the end effector (when
        given; Franka: at their yaws), arm again."""
        self.last_goal_images = []
        self.arm(False)
        self.reset_sim()
        if self.franka and scene.target_xy is not None:
            self._place_marker(scene.target_xy, timeout)
        if scene.object_xy is not None:
            xy = np.asarray(scene.object_xy)
            self._place(self._place_object, [*xy, 0.0], lambda: self.object_distance(xy) <= PLACED_M, "object",
                        timeout, yaw=scene.object_yaw if self.franka else None)
        if scene.ee is not None:
            ee = np.asarray(scene.ee)
            yaw = float(scene.ee_euler[2]) if self.franka and scene.ee_euler is not None else None
            self._place(self._place_ee, ee, lambda: self.distance_to(ee) <= PLACED_M, "end effector", timeout,
                        yaw=yaw)
        self.arm(True)

    def goal_image(self, scene: GoalScene, timeout: float = 10.0) -> Image:
        """The sim's render of ``scene``: ``~/goal_object_pose`` when the object is moved (Franka: the object's
        centre with its height, at its yaw), else ``~/goal_pose`` (Franka: the gripper at its yaw)."""
        franka_yaw = self.franka and scene.ee_euler is not None
        if scene.object_moved and self.franka and scene.object_position is not None:
            image = self._rendered(self._goal_object, scene.object_position, timeout, yaw=scene.object_yaw or 0.0)
        elif scene.object_moved:
            image = self._rendered(self._goal_object, [*scene.object_xy, 0.0], timeout)
        else:
            image = self.request_goal_image(scene.ee, timeout, float(scene.ee_euler[2]) if franka_yaw else None)
        self.last_goal_images.append(image)
        return image

    def pursue(self, goal_image: Image, budget: int, tolerance: float | None,
               on_plan: Callable[[float, float, int], None]) -> str:
        """One ReachGoal with one goal image; feedback calls ``on_plan``; returns how it ended."""
        timeout = self.goal_timeout or 30.0 + 3.0 * budget

        def on_feedback(msg: Any) -> None:
            feedback = msg.feedback
            on_plan(float(feedback.energy), float(feedback.planning_time_ms), int(feedback.predictor_evaluations))

        started = time.monotonic()
        goal = ReachGoal.Goal(goal_images=[goal_image], step_budgets=[int(budget)], tolerance=float(tolerance or 0.0))
        sent = self._reach.send_goal_async(goal, feedback_callback=on_feedback)
        if not wait_until(sent.done, 10.0) or not sent.result().accepted:
            return END_REJECTED
        handle = sent.result()
        result_future = handle.get_result_async()
        reason = ""
        while not result_future.done() and not reason:
            if not self.alive():
                reason = END_NODE_DIED
            elif time.monotonic() - started > timeout:
                reason = no_result(timeout)
            else:
                time.sleep(0.05)
        if reason:
            handle.cancel_goal_async()
            return reason
        return result_future.result().result.reason

    def state(self) -> SceneState:
        """The measured scene: end-effector position (Franka: the 7-D state) and the object's centre."""
        with self._lock:
            ee = tuple(float(v) for v in self.ee_position) if self.ee_position is not None else (np.inf,) * 3
            obj = None if self.object_position is None else tuple(float(v) for v in self.object_position)
            if self.franka:
                euler = (np.inf,) * 3 if self.ee_euler is None else tuple(float(v) for v in self.ee_euler)
                ee = (*ee, *euler, np.inf if self.gripper is None else self.gripper)
        return SceneState(ee=ee, object=obj)

    def settle(self) -> None:
        """The task's settle time."""
        time.sleep(self.task.settle_s)

    def camera_image(self) -> np.ndarray:
        """The latest camera frame."""
        return image_to_array(self.last_image)

    # --- one reach from where the arm is (the soak, tests) --------------------------------------------------
    def run_episode(self, target: Any, budget: int, tolerance: float = 0.0, timeout: float | None = None,
                    alive: Callable[[], bool] | None = None, on_step: OnStep | None = None) -> EpisodeRecord:
        """A reach episode to ``target`` (m, base frame) from the current pose (no reset), judged as `jepa eval`
        judges reach episodes; ``timeout`` bounds it, ``alive`` is polled."""
        saved = self.alive, self.goal_timeout
        self.alive, self.goal_timeout = alive or self.alive, timeout
        try:
            return run_episode(REACH, self, np.asarray(target, dtype=float), REACH.budgets(budget, 1),
                               REACH.tolerances(tolerance, 1), start=False, on_step=on_step)
        finally:
            self.alive, self.goal_timeout = saved

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._executor.shutdown()
        self.node.destroy_node()

"""Runs reach episodes against a running stack over ROS: goal image from the sim, ReachGoal, distance to goal.

Used by `jepa demo`, `jepa eval` and the closed-loop tests. The client only uses the stack's public interfaces:
sim_node's `~/reset`, `~/goal_pose` -> `~/goal_image`, the controller's `~/arm`, the planner's ReachGoal action,
and `/ee_pose` + `/camera/image_raw` to measure what happened.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from geometry_msgs.msg import PoseStamped
from jepa_msgs.action import ReachGoal
from jepa_msgs.msg import Embedding, Plan
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool, Trigger

from jepa_episodes.offline_reach import SUCCESS_RADIUS
from jepa_ros.ros_util import latched_qos, reliable_qos, sensor_qos
from jepa_ros.launch_runner.stack import wait_until


class NodeExited(RuntimeError):
    """A node of the stack exited while the client waited for it."""


@dataclass
class EpisodeResult:
    """What happened in one reach episode."""
    target: list[float]
    success: bool
    reason: str
    steps: int
    final_distance: float
    steps_to_reach: int | None = None
    distances: list[float] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def image_to_array(msg: Image) -> np.ndarray:
    """An rgb8 sim image as (H, W, 3) uint8."""
    return np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3] \
        .reshape(msg.height, msg.width, 3).copy()


class ReachClient:
    """A ROS node (spun in a background thread) that drives reach episodes on the simulated stack."""

    def __init__(self, success_radius: float = SUCCESS_RADIUS, sim: str = "/sim_node",
                 controller: str = "/controller_node"):
        self.success_radius = success_radius
        self.node = Node("jepa_reach_client")
        self._lock = threading.Lock()
        self.ee_position: np.ndarray | None = None
        self.ee_stamp = 0.0
        self.last_image: Image | None = None
        self.goal_image: Image | None = None
        self.plans: list[Plan] = []
        self.embeddings = 0
        node = self.node
        node.create_subscription(PoseStamped, "/ee_pose", self._on_pose, reliable_qos())
        node.create_subscription(Image, "/camera/image_raw", self._on_image, sensor_qos())
        node.create_subscription(Image, f"{sim}/goal_image", self._on_goal_image, latched_qos())
        node.create_subscription(Plan, "/jepa/plan", self._on_plan, reliable_qos())
        node.create_subscription(Embedding, "/jepa/embedding", self._on_embedding, reliable_qos())
        self._goal_pose = node.create_publisher(PoseStamped, f"{sim}/goal_pose", reliable_qos())
        self._reset = node.create_client(Trigger, f"{sim}/reset")
        self._arm = node.create_client(SetBool, f"{controller}/arm")
        self._reach = ActionClient(node, ReachGoal, "/jepa/reach_goal")
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    # --- subscriptions -------------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        with self._lock:
            self.ee_position = np.array([p.x, p.y, p.z])
            self.ee_stamp = time.monotonic()

    def _on_image(self, msg: Image) -> None:
        self.last_image = msg

    def _on_goal_image(self, msg: Image) -> None:
        self.goal_image = msg

    def _on_plan(self, msg: Plan) -> None:
        self.plans.append(msg)

    def _on_embedding(self, msg: Embedding) -> None:
        self.embeddings += 1

    # --- helpers -------------------------------------------------------------------------------------------
    def distance_to(self, target: np.ndarray) -> float:
        """Current end-effector distance to target (inf while no pose has arrived)."""
        with self._lock:
            return float("inf") if self.ee_position is None else float(np.linalg.norm(self.ee_position - target))

    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        if not wait_until(future.done, timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout:.0f} s")
        return future.result()

    def wait_until_ready(self, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True) -> None:
        """Wait until the stack's interfaces are up (pose, camera, embeddings, services, action server).

        `alive()` is polled throughout: NodeExited as soon as it is false (a node that cannot start ends the wait
        at once instead of after `timeout`)."""
        def ready(what: Callable[[], bool]) -> Callable[[], bool]:
            return lambda: what() or not alive()

        def check(done: bool, problem: str) -> None:
            if not alive():
                raise NodeExited("a node of the stack exited while starting")
            if not done:
                raise TimeoutError(problem)

        check(wait_until(ready(lambda: self.ee_position is not None and self.last_image is not None), timeout),
              "no /ee_pose or /camera/image_raw from the simulation")
        check(wait_until(ready(lambda: self.embeddings > 0), timeout), "no /jepa/embedding from the perception node")
        for client in (self._reset, self._arm):
            check(wait_until(ready(client.service_is_ready), timeout), f"service {client.srv_name} is not available")
        check(wait_until(ready(self._reach.server_is_ready), timeout), "action /jepa/reach_goal is not available")

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

    def request_goal_image(self, target: np.ndarray, timeout: float = 10.0) -> Image:
        """Ask the sim to render the arm at `target` (the way users make goal images) and return the image."""
        self.goal_image = None
        msg = PoseStamped()
        msg.header.frame_id = "base_link"
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in target)
        msg.pose.orientation.w = 1.0
        deadline = time.monotonic() + timeout
        while self.goal_image is None and time.monotonic() < deadline:
            self._goal_pose.publish(msg)
            wait_until(lambda: self.goal_image is not None, 0.5)
        if self.goal_image is None:
            raise TimeoutError("sim_node did not publish a goal image")
        return self.goal_image

    # --- episodes ------------------------------------------------------------------------------------------
    def run_episode(self, target: np.ndarray, budget: int, tolerance: float = 0.0, timeout: float | None = None,
                    alive=lambda: True, on_step=None) -> EpisodeResult:
        """Reach `target` (m, base frame) from the current pose within `budget` control steps.

        The episode ends the way a deployed robot's does: when the planner judges the goal reached (observed
        energy <= `tolerance`; <= 0 means the planner's `default_tolerance`) or the budget is spent. Success
        means the end effector then is within `success_radius` of the target; `steps_to_reach` records the first
        step at which the observed end effector was within the radius. `alive()` is polled so a dead
        peer ends the episode with a reason instead of a hang; `timeout` bounds the whole episode. `on_step(step,
        energy, distance, plan_ms)` is called for every control step.
        """
        target = np.asarray(target, dtype=float)
        goal_image = self.request_goal_image(target)
        timeout = timeout or 30.0 + 3.0 * budget
        distances, energies, plan_ms = [], [], []

        def on_feedback(msg) -> None:
            fb = msg.feedback
            energies.append(float(fb.energy))
            plan_ms.append(float(fb.planning_time_ms))
            distances.append(self.distance_to(target))
            if on_step is not None:
                on_step(len(energies), energies[-1], distances[-1], plan_ms[-1])

        started = time.monotonic()
        goal = ReachGoal.Goal(goal_images=[goal_image], step_budgets=[budget], tolerance=float(tolerance))
        sent = self._reach.send_goal_async(goal, feedback_callback=on_feedback)
        if not wait_until(sent.done, 10.0) or not sent.result().accepted:
            return self._ended(target, "goal rejected by the planner", distances, energies, plan_ms, started, True)
        handle = sent.result()
        result_future = handle.get_result_async()
        reason, fault = "", True
        while not result_future.done():
            if not alive():
                reason = "a node of the stack died"
                break
            if time.monotonic() - started > timeout:
                reason = f"no result within {timeout:.0f} s"
                break
            time.sleep(0.05)
        if reason:
            handle.cancel_goal_async()
        else:
            reason = result_future.result().result.reason
            fault = reason not in ("reached", "budget exhausted")
        time.sleep(0.2)  # the last commanded motion settles
        return self._ended(target, reason, distances, energies, plan_ms, started, fault)

    def _ended(self, target, reason, distances, energies, plan_ms, started, fault: bool) -> EpisodeResult:
        final = self.distance_to(target)
        within = [i + 1 for i, d in enumerate(distances) if d <= self.success_radius]
        return EpisodeResult(target=[float(v) for v in target], success=not fault and final <= self.success_radius,
                             reason=reason, steps=len(energies), final_distance=final,
                             steps_to_reach=within[0] if within else None, distances=distances,
                             energies=energies, plan_ms=plan_ms, duration_s=time.monotonic() - started)

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._executor.shutdown()
        self.node.destroy_node()

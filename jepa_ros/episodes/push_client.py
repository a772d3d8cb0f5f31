"""Runs push episodes against a running push stack (launch/sim_push.launch.xml) over ROS.

Used by `jepa eval --task push`, `jepa demo --task push` and the push node test. Besides the reach client's
interfaces it uses the sim's push interfaces: the puck and the arm are put at the episode's start with
``~/place_object`` and ``~/place_ee``, the goal images are the sim's renders of goal scenes ("behind":
``~/goal_pose`` with the puck where it is; "target": ``~/goal_object_pose``) and ``/object_pose`` measures what
happened.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from geometry_msgs.msg import PoseStamped
from jepa_msgs.action import ReachGoal
from sensor_msgs.msg import Image

from jepa_episodes.offline_push import PUSH_TOLERANCES
from jepa_ros.episodes.reach_client import ReachClient
from jepa_ros.ros_util import reliable_qos
from jepa_ros.launch_runner.stack import wait_until
from jepa_sim.push import GOAL_KINDS, PushTask, classify, goal_scene


@dataclass
class PushResult:
    """What happened in one push episode (distances in m)."""

    task: dict
    success: bool
    outcome: str  # "success" or the failure class (jepa_sim.push.FAILURES)
    reason: str  # how the last goal image's ReachGoal ended
    steps: int
    final_object_distance: float
    goal_images: int
    object_distances: list[float] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)
    goal_index: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # how each goal image's ReachGoal ended
    duration_s: float = 0.0

    # the names `summarise` and the demo use for reach results
    @property
    def final_distance(self) -> float:
        """Same as ``final_object_distance``."""
        return self.final_object_distance

    @property
    def distances(self) -> list[float]:
        """Same as ``object_distances``."""
        return self.object_distances

    @property
    def steps_to_reach(self) -> int | None:
        """First step after which the puck was within the success radius."""
        from jepa_sim.push import SUCCESS_RADIUS

        within = [i for i, d in enumerate(self.object_distances) if d <= SUCCESS_RADIUS]
        return within[0] if within else None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


class PushClient(ReachClient):
    """The reach client plus the push task's reset, goal scenes and puck tracking."""

    def __init__(self, sim: str = "/sim_node", controller: str = "/controller_node"):
        super().__init__(sim=sim, controller=controller)
        self.object_position: np.ndarray | None = None
        self.last_goal_images: list[Image] = []  # the goal images of the last episode, in order
        self.start_image: Image | None = None  # a camera frame of the last episode's start
        node = self.node
        node.create_subscription(PoseStamped, "/object_pose", self._on_object, reliable_qos())
        self._place_object = node.create_publisher(PoseStamped, f"{sim}/place_object", reliable_qos())
        self._place_ee = node.create_publisher(PoseStamped, f"{sim}/place_ee", reliable_qos())
        self._goal_object = node.create_publisher(PoseStamped, f"{sim}/goal_object_pose", reliable_qos())

    def _on_object(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        with self._lock:
            self.object_position = np.array([p.x, p.y, p.z])

    def object_distance(self, target) -> float:
        """Puck centre to ``target`` (x, y) in m (inf while no /object_pose has arrived)."""
        with self._lock:
            if self.object_position is None:
                return float("inf")
            return float(np.linalg.norm(self.object_position[:2] - np.asarray(target)))

    def _pose(self, xyz) -> PoseStamped:
        msg = PoseStamped()
        msg.header.frame_id = "base_link"
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
        msg.pose.orientation.w = 1.0
        return msg

    def wait_until_ready(self, timeout: float = 60.0, **kwargs) -> None:
        """The reach client's readiness plus /object_pose (a push stack)."""
        super().wait_until_ready(timeout, **kwargs)
        if not wait_until(lambda: self.object_position is not None, timeout):
            raise TimeoutError("no /object_pose: is the sim running with task:=push?")

    def _place(self, publisher, xyz, placed, what: str, timeout: float) -> None:
        """Publish the pose `xyz` on `publisher` until `placed()` (the sim acted on it) or `timeout` s."""
        deadline = time.monotonic() + timeout
        while not placed():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sim did not place the {what} at {[round(v, 4) for v in xyz]}")
            publisher.publish(self._pose(xyz))
            wait_until(placed, 0.5)

    def start(self, task: PushTask, timeout: float = 10.0) -> None:
        """Disarm the controller, reset the sim, put the puck at its start and the arm with its end effector at
        the start, then arm the controller: arming a disarmed controller starts its plan watchdog afresh (an
        armed one would keep counting from the last episode's final plan and could stop this episode)."""
        self.arm(False)
        self.reset_sim()
        start = np.asarray(task.object_start)
        ee = np.asarray(task.ee_start)
        self._place(self._place_object, [*start, 0.0], lambda: self.object_distance(start) <= 0.002, "puck",
                    timeout)
        self._place(self._place_ee, ee, lambda: self.distance_to(ee) <= 0.002, "end effector", timeout)
        self.arm(True)

    def goal_scene_image(self, task: PushTask, kind: str, timeout: float = 10.0) -> Image:
        """The sim's render of goal scene ``kind`` of ``task`` (the puck must be at its start)."""
        ee, object_xy = goal_scene(task, kind)
        if kind == "behind":
            return self.request_goal_image(ee, timeout)
        self.goal_image = None
        deadline = time.monotonic() + timeout
        while self.goal_image is None and time.monotonic() < deadline:
            self._goal_object.publish(self._pose([*object_xy, 0.0]))
            wait_until(lambda: self.goal_image is not None, 0.5)
        if self.goal_image is None:
            raise TimeoutError("sim_node did not publish a push goal image (is it running with task:=push?)")
        return self.goal_image

    def run_push(self, task: PushTask, budgets: tuple[int, ...], tolerances: tuple[float, ...] | None = None,
                 timeout: float | None = None, alive=lambda: True, on_step=None) -> PushResult:
        """Play ``task`` from its start (see ``start``): one ReachGoal per goal image, in order ("behind" first
        when there are two budgets, "target" last), each with its budget and tolerance (default
        ``PUSH_TOLERANCES``), as the offline push loop does. ``on_step(step, energy, object_distance, plan_ms)``
        is called every step; ``timeout`` bounds each ReachGoal."""
        kinds = GOAL_KINDS[-len(budgets):]
        tolerances = tuple(tolerances or (PUSH_TOLERANCES[kind] for kind in kinds))
        self.start(task)
        images = [self.goal_scene_image(task, kind) for kind in kinds]
        self.last_goal_images = images
        self.start_image = self.last_image  # a frame of the start (goal requests took a camera period or more)
        target = np.asarray(task.target)
        path = [self.object_position[:2].copy()]
        distances, energies, plan_ms, goal_index, reasons = [self.object_distance(target)], [], [], [], []
        started = time.monotonic()
        for index, (image, budget, tolerance) in enumerate(zip(images, budgets, tolerances)):
            def on_feedback(msg, index=index) -> None:
                fb = msg.feedback
                energies.append(float(fb.energy))
                plan_ms.append(float(fb.planning_time_ms))
                goal_index.append(index)
                path.append(self.object_position[:2].copy())
                distances.append(self.object_distance(target))
                if on_step is not None:
                    on_step(len(energies), energies[-1], distances[-1], plan_ms[-1])

            reasons.append(self._reach_goal(image, budget, tolerance, timeout or 30.0 + 3.0 * budget, alive,
                                            on_feedback))
            if reasons[-1] not in ("reached", "budget exhausted"):
                break  # a fault (dead node, rejected goal, timeout): no further goal image
        time.sleep(0.3)  # the last commanded motion and the puck settle
        path.append(self.object_position[:2].copy())
        distances.append(self.object_distance(target))
        outcome = classify(task, np.asarray(path), reasons[-1])
        return PushResult(task=task.to_dict(), success=outcome == "success", outcome=outcome, reason=reasons[-1],
                          reasons=reasons, steps=len(energies), final_object_distance=distances[-1],
                          goal_images=len(budgets), object_distances=distances, energies=energies, plan_ms=plan_ms,
                          goal_index=goal_index, duration_s=time.monotonic() - started)

    def _reach_goal(self, image: Image, budget: int, tolerance: float, timeout: float, alive, on_feedback) -> str:
        """One ReachGoal with one goal image; returns how it ended."""
        started = time.monotonic()
        goal = ReachGoal.Goal(goal_images=[image], step_budgets=[int(budget)], tolerance=float(tolerance))
        sent = self._reach.send_goal_async(goal, feedback_callback=on_feedback)
        if not wait_until(sent.done, 10.0) or not sent.result().accepted:
            return "goal rejected by the planner"
        handle = sent.result()
        result_future = handle.get_result_async()
        reason = ""
        while not result_future.done() and not reason:
            if not alive():
                reason = "a node of the stack died"
            elif time.monotonic() - started > timeout:
                reason = f"no result within {timeout:.0f} s"
            time.sleep(0.05)
        if reason:
            handle.cancel_goal_async()
            return reason
        return result_future.result().result.reason

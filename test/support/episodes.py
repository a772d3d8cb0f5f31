"""Shared helpers of the episode tests (no tests here): a scripted ``runner.Driver`` over a real ArmSim.

The scripted driver needs no model: it pursues a goal image by moving the end effector straight at the goal
scene's end-effector position, at most ``step`` m per axis and control step, and ends a goal "reached" within
``reached_m`` or "budget exhausted"; ``faults`` makes the n-th pursued goal end with a given fault reason.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jepa_common.outcomes import END_BUDGET, END_REACHED
from jepa_episodes.offline import place_start
from jepa_episodes.record import SceneState
from jepa_episodes.tasks import GoalScene, StartScene, Task


class ScriptedDriver:
    """Drives ``task``'s scene in a real sim without a planner (``close`` the sim)."""

    name = "scripted"

    def __init__(self, task: Task, step: float = 0.02, reached_m: float = 0.005,
                 faults: dict[int, str] | None = None) -> None:
        from jepa_sim.arm_sim import ArmSim

        self.task, self.step, self.reached_m = task, step, reached_m
        self.faults = dict(faults or {})
        self.sim = ArmSim(image_size=16, task=task.sim_task)
        self.pursued: list[str] = []  # the kinds of the goal scenes pursued, in order
        self.starts: list[StartScene] = []

    def start(self, scene: StartScene) -> None:
        self.starts.append(scene)
        place_start(self.sim, scene)  # the offline driver's placement

    def goal_image(self, scene: GoalScene) -> tuple[np.ndarray, GoalScene]:
        return self.sim.render_goal(scene.ee, scene.object_xy), scene

    def pursue(self, goal_image: Any, budget: int, tolerance: float | None,
               on_plan: Callable[[float, float, int], None]) -> str:
        _, scene = goal_image
        self.pursued.append(scene.kind)
        if len(self.pursued) - 1 in self.faults:
            return self.faults[len(self.pursued) - 1]
        goal = np.asarray(scene.ee)
        for _ in range(budget):
            error = goal - self.sim.ee_position()
            if np.linalg.norm(error) <= self.reached_m:
                return END_REACHED
            on_plan(float(np.linalg.norm(error)), 1.0, 1)
            self.sim.move_ee_by(np.clip(error, -self.step, self.step))
        return END_REACHED if np.linalg.norm(goal - self.sim.ee_position()) <= self.reached_m else END_BUDGET

    def state(self) -> SceneState:
        obj = tuple(self.sim.object_position().tolist()) if self.task.sim_task == "push" else None
        return SceneState(ee=tuple(self.sim.ee_position().tolist()), object=obj)

    def settle(self) -> None:
        """Every step ends at rest."""

    def close(self) -> None:
        self.sim.close()


def short_push():
    """A 5 cm push away from the base; the end effector starts 6 cm from the "behind" pose. With budgets (6, 14)
    and the shipped planner the puck ends 0.2 cm from its target after 7 steps (offline)."""
    from jepa_sim.arm_sim import PUSH_HEIGHT
    from jepa_sim.push import PushTask

    return PushTask(object_start=(0.35, -0.09), target=(0.39, -0.12), ee_start=(0.22, -0.035, PUSH_HEIGHT))

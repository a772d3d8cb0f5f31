"""The reach task: the end effector to where a goal image shows it; its constants, sampling and judgement.

Episodes: targets drawn with ``ArmSim.sample_target`` from ``np.random.default_rng(seed)`` (a fresh sim, arm at
home); every episode starts from the home pose; the goal image is the arm rendered with its end effector at the
target. Success: the episode ended normally (reached or budget exhausted) with the end effector within
``SUCCESS_RADIUS`` of the target.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jepa_common.outcomes import FAULT, MISSED, SUCCESS, is_fault
from jepa_episodes.record import SceneState
from jepa_episodes.tasks.base import GoalScene, StartScene, Task

SUCCESS_RADIUS = 0.02  # m, end effector to target
DEFAULT_BUDGET = 25  # control steps per episode
FAILURES = (MISSED, FAULT)


class ReachTask(Task):
    """End effector to the target of a goal image; an episode is a target (x, y, z) in m."""

    name = "reach"
    model = "default"
    launch = "sim.launch.xml"
    planner_config = "planner.yaml"
    sim_task = "reach"
    success_radius = SUCCESS_RADIUS
    failure_classes = FAILURES

    def sample(self, episodes: int, seed: int) -> list[np.ndarray]:
        """Reachable targets from the sim's workspace."""
        from jepa_sim.arm_sim import ArmSim

        rng = np.random.default_rng(seed)
        with ArmSim(image_size=16) as sim:
            return [sim.sample_target(rng) for _ in range(episodes)]

    def describe(self, episode: Any) -> dict:
        return {"target": [float(v) for v in episode]}

    def start(self, episode: Any) -> StartScene:
        return StartScene()

    def goals(self, episode: Any, count: int) -> list[GoalScene]:
        self.check_goal_count(count)
        return [GoalScene("target", tuple(float(v) for v in episode))]

    def goals_made(self, count: int) -> str:
        return "the arm rendered with its end effector at the target, from the home pose"

    def budgets(self, budget: int | None, count: int) -> tuple[int, ...]:
        return (budget or DEFAULT_BUDGET,)

    def tolerances(self, tolerance: float, count: int, calibrated: float | None = None) -> tuple[float | None, ...]:
        return (tolerance if tolerance > 0 else None,)

    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        from jepa_sim.arm_sim import WORKSPACE

        return np.asarray(WORKSPACE.low), np.asarray(WORKSPACE.high)

    def distance(self, episode: Any, state: SceneState) -> float:
        return float(np.linalg.norm(np.asarray(state.ee) - np.asarray(episode)))

    def judge(self, episode: Any, states: Sequence[SceneState], reasons: Sequence[str]) -> str:
        if any(is_fault(reason) for reason in reasons):
            return FAULT
        return SUCCESS if self.distance(episode, states[-1]) <= SUCCESS_RADIUS else MISSED


REACH = ReachTask()

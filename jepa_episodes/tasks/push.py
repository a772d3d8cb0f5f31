"""The push task: the puck to where the goal images show it; its constants, sampling, goal scenes and judgement.

Episodes: ``jepa_sim.push.sample_push_task`` from ``np.random.default_rng(seed)`` (a fresh push sim, arm at home).
Variant ``push_from_behind`` (``PUSH_FROM_BEHIND``): the same episodes, but the end effector starts on its "behind"
pose (behind the puck on the push line, as PushT goals lie on an expert trajectory) and one goal image, "target".
Goal images: rendered goal scenes, "behind" then "target" (two) or only "target" (one), each its own ReachGoal
with its budget (``BUDGETS``) and tolerance (``TOLERANCES``): the "target" goal follows the "behind" one however
that ended, because one energy tolerance cannot serve both. Success: the puck's centre ends within
``SUCCESS_RADIUS`` of the target; a failure is classified from the puck's path (``classify``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jepa_common.outcomes import BUDGET_SPENT, END_BUDGET, NEVER_TOUCHED, OTHER, OVERSHOOT, SUCCESS, WRONG_WAY
from jepa_episodes.record import SceneState
from jepa_episodes.tasks.base import GoalScene, StartScene, Task
from jepa_sim.push import GOAL_KINDS, PushTask, goal_scene

SUCCESS_RADIUS = 0.02  # m, puck centre to target
TOUCH_DISTANCE = 0.005  # m, the puck counts as touched once it moved this far
#: control steps per goal image: ("behind", "target") for two images, ("target",) for one
BUDGETS = {2: (30, 30), 1: (50,)}
#: energy at or below which a goal image counts as reached, for the shipped model and camera: "behind" (the end
#: effector about 0.7 cm from its pose), "target" (the end effector about 0.6 cm from its pose with the puck at the
#: target, or the puck 3 cm off with the end effector on its pose); see the model's README. Another model gets
#: these times its calibrated planning tolerance over the shipped model's (``tolerances``).
TOLERANCES = {"behind": 0.05, "target": 0.05}
FAILURES = (NEVER_TOUCHED, WRONG_WAY, OVERSHOOT, BUDGET_SPENT, OTHER)
#: how the goal images are made, by count
GOALS_MADE = {2: "rendered goal scenes: 'behind' = puck at its start, end effector behind it on the line to the "
                 "target; 'target' = puck at the target, end effector touching it from behind (where that push "
                 "leaves it)",
              1: "rendered goal scene 'target': puck at the target, end effector touching it from behind"}


def classify(task: PushTask, object_path: np.ndarray, ended: str = END_BUDGET) -> str:
    """SUCCESS or the failure class of an episode from the puck's path (T >= 2, x-y first) and how it ended."""
    path = np.asarray(object_path, dtype=float)[:, :2]
    start, final, target = path[0], path[-1], np.asarray(task.target)
    if np.linalg.norm(final - target) <= SUCCESS_RADIUS:
        return SUCCESS
    if np.max(np.linalg.norm(path - start, axis=1)) < TOUCH_DISTANCE:
        return NEVER_TOUCHED
    moved = final - start
    along = float(moved @ task.direction)
    if along <= 0.5 * float(np.linalg.norm(moved)):  # more than 60 degrees off the push direction
        return WRONG_WAY
    if along > task.distance:
        return OVERSHOOT
    if ended == END_BUDGET:
        return BUDGET_SPENT
    return OTHER


class PushTaskDefinition(Task):
    """The puck from its start to the target; an episode is a ``jepa_sim.push.PushTask``."""

    name = "push"
    model = "push_default"
    launch = "sim_push.launch.xml"
    planner_config = "planner_push.yaml"
    sim_task = "push"
    success_radius = SUCCESS_RADIUS
    failure_classes = FAILURES
    goal_counts = (2, 1)
    settle_s = 0.3  # the last commanded motion and the puck

    def sample(self, episodes: int, seed: int) -> list[PushTask]:
        from jepa_sim.arm_sim import ArmSim
        from jepa_sim.push import sample_push_task

        rng = np.random.default_rng(seed)
        with ArmSim(image_size=16, task="push") as sim:
            return [sample_push_task(sim, rng) for _ in range(episodes)]

    def describe(self, episode: PushTask) -> dict:
        return episode.to_dict()

    def start(self, episode: PushTask) -> StartScene:
        return StartScene(ee=tuple(episode.ee_start), object_xy=tuple(episode.object_start))

    def goals(self, episode: PushTask, count: int) -> list[GoalScene]:
        self.check_goal_count(count)
        scenes = []
        for kind in GOAL_KINDS[-count:]:
            ee, object_xy = goal_scene(episode, kind)
            scenes.append(GoalScene(kind, tuple(float(v) for v in ee), tuple(float(v) for v in object_xy),
                                    object_moved=kind == "target"))
        return scenes

    def goals_made(self, count: int) -> str:
        return GOALS_MADE[count]

    def budgets(self, budget: int | None, count: int) -> tuple[int, ...]:
        """``BUDGETS``, or ``budget`` split 2:3 over two images."""
        self.check_goal_count(count)
        if budget is None:
            return BUDGETS[count]
        if count == 1:
            return (budget,)
        first = max(1, round(0.4 * budget))
        return first, max(1, budget - first)

    def tolerances(self, tolerance: float, count: int, calibrated: float | None = None) -> tuple[float | None, ...]:
        """``tolerance`` when > 0, else ``TOLERANCES`` scaled by the running model's calibrated planning tolerance
        over the shipped model's (the same multiple of the reached energy for any model; unscaled without
        ``calibrated``)."""
        if tolerance > 0:
            return (tolerance,) * count
        scale = 1.0
        if calibrated is not None:
            from jepa_world_model.checkpoints.bundle import planning_tolerance

            scale = calibrated / planning_tolerance(self.model)
        return tuple(TOLERANCES[kind] * scale for kind in GOAL_KINDS[-count:])

    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        from jepa_sim.arm_sim import PUSH_WORKSPACE

        return np.asarray(PUSH_WORKSPACE.low), np.asarray(PUSH_WORKSPACE.high)

    def distance(self, episode: PushTask, state: SceneState) -> float:
        return float(np.linalg.norm(np.asarray(state.object)[:2] - np.asarray(episode.target)))

    def judge(self, episode: PushTask, states: Sequence[SceneState], reasons: Sequence[str]) -> str:
        return classify(episode, np.array([s.object[:2] for s in states]), reasons[-1])


class PushFromBehind(PushTaskDefinition):
    """The push from one goal image, starting with the end effector behind the puck on the push line."""

    name = "push_from_behind"
    goal_counts = (1,)

    def start(self, episode: PushTask) -> StartScene:
        return StartScene(ee=tuple(float(v) for v in episode.behind(episode.object_start)),
                          object_xy=tuple(episode.object_start))

    def goals_made(self, count: int) -> str:
        return GOALS_MADE[count] + "; the end effector starts behind the puck on the push line"


PUSH = PushTaskDefinition()
PUSH_FROM_BEHIND = PushFromBehind()

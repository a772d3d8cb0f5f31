"""The pick-and-place task: the Franka carries the cube onto the target and lets go; its constants, goal scenes and
judgement (episodes as the grasp task's: ``jepa_episodes.tasks.grasp.FrankaEpisode``).

Goal images: rendered sub-goal scenes, at most three, each its own ReachGoal with its budget (``BUDGETS``), as a
person would stage them: "lifted" (the cube held in the closed gripper ``GOAL_LIFT`` above its start),
"above_target" (held ``CARRY_LIFT`` above the target), "placed" (the cube resting on the target, the gripper open
and raised ``RETREAT_ABOVE`` above it); two images are the last two, one the last. Success: the cube's centre ends
within ``SUCCESS_RADIUS`` of the target, resting on the table and released (``released``). Failures
(``classify_pick_place``): ``MISSED_GRASP`` (the cube never rose), ``DROPPED`` (it came back down away from the target:
more than ``DROP_RADIUS`` from it), ``MISPLACED`` (put down near the target but not within ``SUCCESS_RADIUS``, or
not let go), ``BUDGET_SPENT`` / ``OTHER`` (still held in the air, by how the last ReachGoal ended).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from jepa_common.outcomes import BUDGET_SPENT, END_BUDGET, OTHER, SUCCESS
from jepa_episodes.record import SceneState
from jepa_episodes.tasks.base import GoalScene
from jepa_episodes.tasks.grasp import (DROPPED, GOAL_LIFT, LIFTED, MISPLACED, MISSED_GRASP, FrankaEpisode,
                                       FrankaTask, cube_path, grasped_cube, held_scene)
from jepa_sim.franka_sim import CUBE_HALF, DOWN_EULER

SUCCESS_RADIUS = 0.03  # m, cube centre to target centre (horizontal)
#: a cube that comes down further than this from the target was dropped on the way, not put down badly
DROP_RADIUS = 2 * SUCCESS_RADIUS
#: m above the table the "above_target" goal shows the held cube's centre rise
CARRY_LIFT = GOAL_LIFT
#: m from the placed cube's centre up to the end-effector point in the "placed" goal (fingertips 3.5 cm clear of
#: the cube's top)
RETREAT_ABOVE = 0.075
#: m: a released cube's centre rests within this of the table (below: on the table)
RESTING = LIFTED
#: closedness below which a measured gripper counts as open (released); without a measured gripper the end
#: effector must be at least ``CLEAR_ABOVE`` above the cube's centre
OPEN_BELOW = 0.3
CLEAR_ABOVE = 0.03
GOAL_KINDS = ("lifted", "above_target", "placed")
FAILURES = (MISSED_GRASP, DROPPED, MISPLACED, BUDGET_SPENT, OTHER)
#: control steps per goal image, by the number of goal images (GOAL_KINDS[-count:])
BUDGETS = {3: (50, 40, 40), 2: (80, 50), 1: (130,)}
GOALS_MADE = {3: "rendered sub-goal scenes: 'lifted' = the cube held in the closed gripper 10 cm above its start; "
                 "'above_target' = held 10 cm above the target; 'placed' = the cube on the target, the gripper "
                 "open and raised above it",
              2: "rendered sub-goal scenes 'above_target' (the cube held 10 cm above the target) and 'placed' (the "
                 "cube on the target, the gripper open and raised above it)",
              1: "rendered goal scene 'placed': the cube on the target, the gripper open and raised above it"}


def target_cube(episode: FrankaEpisode) -> np.ndarray:
    """The cube's centre resting on the target."""
    return np.array([*episode.target_xy, CUBE_HALF])


def goal_scene(episode: FrankaEpisode, kind: str) -> GoalScene:
    """The goal scene ``kind`` (``GOAL_KINDS``) of ``episode``."""
    if kind == "lifted":
        return held_scene(kind, episode, grasped_cube(episode))
    if kind == "above_target":
        return held_scene(kind, episode, target_cube(episode) + np.array([0.0, 0.0, CARRY_LIFT]))
    if kind == "placed":
        cube = target_cube(episode)
        ee = cube + np.array([0.0, 0.0, RETREAT_ABOVE])
        return GoalScene(kind, tuple(float(v) for v in ee), tuple(episode.target_xy), object_moved=True,
                         ee_euler=(DOWN_EULER[0], DOWN_EULER[1], episode.grasp_yaw), gripper=0.0,
                         object_position=tuple(float(v) for v in cube), object_yaw=episode.cube_yaw)
    raise ValueError(f"no goal scene {kind!r}; choose from {list(GOAL_KINDS)}")


def released(state: SceneState) -> bool:
    """The cube rests on the table and the gripper has let go of it (open when measured, else clear above it)."""
    cube, ee = np.asarray(state.object[:3], dtype=float), np.asarray(state.ee, dtype=float)
    if cube[2] - CUBE_HALF >= RESTING:
        return False
    if ee.size >= 7:
        return bool(ee[6] < OPEN_BELOW)
    return bool(ee[2] - cube[2] >= CLEAR_ABOVE)


def classify_pick_place(episode: FrankaEpisode, states: Sequence[SceneState], ended: str = END_BUDGET) -> str:
    """SUCCESS or the failure class of a pick-and-place episode from the observed states and how it ended."""
    path = cube_path(states)
    target = np.asarray(episode.target_xy, dtype=float)
    lift = path[:, 2] - CUBE_HALF
    off = np.linalg.norm(path[:, :2] - target, axis=1)
    if off[-1] <= SUCCESS_RADIUS and released(states[-1]):
        return SUCCESS
    up = np.flatnonzero(lift >= LIFTED)
    if up.size == 0:
        return MISSED_GRASP
    down = np.flatnonzero(lift[up[0]:] < LIFTED)
    if down.size:
        landed = up[0] + down[0]  # where the cube first came back down after its lift
        return DROPPED if off[landed] > DROP_RADIUS else MISPLACED
    return BUDGET_SPENT if ended == END_BUDGET else OTHER


class PickPlaceTask(FrankaTask):
    """Carry the cube onto the target and release it; an episode is a ``FrankaEpisode``."""

    name = "pick_place"
    sim_task = "pick_place"
    success_radius = SUCCESS_RADIUS
    failure_classes = FAILURES
    goal_counts = (3, 2, 1)
    budget_table = BUDGETS

    def goals(self, episode: FrankaEpisode, count: int) -> list[GoalScene]:
        self.check_goal_count(count)
        return [goal_scene(episode, kind) for kind in GOAL_KINDS[-count:]]

    def goals_made(self, count: int) -> str:
        return GOALS_MADE[count]

    def distance(self, episode: FrankaEpisode, state: SceneState) -> float:
        """The cube's centre to the target's (horizontal, m)."""
        return float(np.linalg.norm(np.asarray(state.object[:2]) - np.asarray(episode.target_xy)))

    def judge(self, episode: FrankaEpisode, states: Sequence[SceneState], reasons: Sequence[str]) -> str:
        return classify_pick_place(episode, states, reasons[-1])


PICK_PLACE = PickPlaceTask()

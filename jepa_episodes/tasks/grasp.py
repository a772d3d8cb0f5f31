"""The grasp task: the Franka picks the cube up and holds it; its constants, episodes, goal scene and judgement.

Episodes (``FrankaEpisode``, shared with the pick-and-place task): drawn from ``np.random.default_rng(seed)`` over
``jepa_sim.franka_sim``'s reset regions: the cube's xy and yaw, the target's xy (at least
``MIN_CUBE_TARGET_DISTANCE`` from the cube), the end effector's start position and yaw (gripper pointing down,
open). Goal image: one rendered scene "grasped", as a person would stage it: the cube held in the gripper, closed on
it, ``GOAL_LIFT`` above the table over where it started. Success: at the end the cube's centre is at least
``LIFT_SUCCESS`` above where it started (it is still held: nothing else keeps it up). Failures
(``classify_grasp``): ``MISSED_GRASP`` (the cube never rose ``LIFTED``), ``DROPPED`` (it rose and is back on the table),
``BUDGET_SPENT`` / ``OTHER`` (held, but not high enough, by how the last ReachGoal ended).

Scene states for these tasks: ``SceneState.object`` is the cube's centre (m); ``SceneState.ee`` is the end
effector's position, or the 7-D state [x, y, z, roll, pitch, yaw, gripper] when the driver measures the gripper
(the judgement uses the gripper only when it is there).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from jepa_common.outcomes import BUDGET_SPENT, DROPPED, END_BUDGET, MISPLACED, MISSED_GRASP, OTHER, SUCCESS
from jepa_episodes.record import SceneState
from jepa_episodes.tasks.base import GoalScene, StartScene, Task
from jepa_sim.franka_sim import (CUBE_HALF, CUBE_REGION, CUBE_YAW, DOWN_EULER, FINGER_MAX, MIN_CUBE_TARGET_DISTANCE,
                                 START_REGION, START_YAW, TARGET_REGION)
from jepa_sim.franka_script import GRASP_HEIGHT, LIFT_SUCCESS

#: m the cube's centre must rise (and stay up at the end) for a successful grasp (the scripted policy's measure)
SUCCESS_LIFT = LIFT_SUCCESS
#: m the cube counts as lifted off the table (below: it never left it, or it is back on it)
LIFTED = 0.01
#: m above the table the goal image shows the held cube (its centre's rise)
GOAL_LIFT = 0.10
#: closedness the fingers measure when closed on the 4 cm cube (each finger stops at the cube's side)
HOLDING_GRIPPER = 1.0 - CUBE_HALF / FINGER_MAX
#: m from the end-effector point (between the finger pads) down to the held cube's centre
HELD_BELOW_EE = GRASP_HEIGHT - CUBE_HALF
FAILURES = (MISSED_GRASP, DROPPED, BUDGET_SPENT, OTHER)
BUDGETS = {1: (60,)}
#: the end-effector box of the Franka deployments (config/controller_franka.yaml's workspace_min / workspace_max)
WORKSPACE = ((0.25, -0.35, 0.022), (0.75, 0.35, 0.45))
#: the model deployed with the Franka tasks: none is shipped yet (a 7-D V-JEPA 2-AC model must be named)
MODEL = ""
GOALS_MADE = "rendered goal scene 'grasped': the cube held in the gripper, closed on it, 10 cm above the table over " \
             "its start"


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class FrankaEpisode:
    """One grasp / pick-and-place episode (m, rad, base frame): the cube's start, the target, the arm's start."""

    cube_xy: tuple[float, float]
    cube_yaw: float
    target_xy: tuple[float, float]
    ee_start: tuple[float, float, float]
    ee_yaw: float

    @property
    def cube_start(self) -> np.ndarray:
        """The cube's centre at the start (resting on the table)."""
        return np.array([*self.cube_xy, CUBE_HALF])

    @property
    def grasp_yaw(self) -> float:
        """The gripper yaw that faces the cube's sides, the one closest to the start yaw (as the scripted policy
        turns: the gripper repeats every half turn, the cube every quarter turn)."""
        return self.ee_yaw + _wrap(4.0 * (self.cube_yaw - self.ee_yaw)) / 4.0

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def sample_franka_episode(rng: np.random.Generator) -> FrankaEpisode:
    """One episode from ``rng``, over the regions ``FrankaSim.reset`` draws from."""
    cube = CUBE_REGION.sample(rng)
    cube_yaw = float(rng.uniform(-CUBE_YAW, CUBE_YAW))
    target = TARGET_REGION.sample(rng)
    while np.linalg.norm(target - cube) < MIN_CUBE_TARGET_DISTANCE:
        target = TARGET_REGION.sample(rng)
    ee = START_REGION.sample(rng)
    ee_yaw = DOWN_EULER[2] + float(rng.uniform(-START_YAW, START_YAW))
    return FrankaEpisode(tuple(float(v) for v in cube), cube_yaw, tuple(float(v) for v in target),
                         tuple(float(v) for v in ee), ee_yaw)


def franka_start(episode: FrankaEpisode) -> StartScene:
    """The arm at its start pose (gripper pointing down, open), the cube at rest, the target marker."""
    return StartScene(ee=episode.ee_start, object_xy=episode.cube_xy,
                      ee_euler=(DOWN_EULER[0], DOWN_EULER[1], episode.ee_yaw), object_yaw=episode.cube_yaw,
                      target_xy=episode.target_xy)


def held_scene(kind: str, episode: FrankaEpisode, cube_position: Sequence[float]) -> GoalScene:
    """Goal scene: the cube's centre at ``cube_position``, held by the gripper closed on it, facing its sides."""
    cube = np.asarray(cube_position, dtype=float)
    ee = cube + np.array([0.0, 0.0, HELD_BELOW_EE])
    return GoalScene(kind, tuple(float(v) for v in ee), tuple(float(v) for v in cube[:2]), object_moved=True,
                     ee_euler=(DOWN_EULER[0], DOWN_EULER[1], episode.grasp_yaw), gripper=HOLDING_GRIPPER,
                     object_position=tuple(float(v) for v in cube), object_yaw=episode.cube_yaw)


def grasped_cube(episode: FrankaEpisode) -> np.ndarray:
    """Where the grasp goal shows the cube's centre: ``GOAL_LIFT`` above its start."""
    return episode.cube_start + np.array([0.0, 0.0, GOAL_LIFT])


def cube_path(states: Sequence[SceneState]) -> np.ndarray:
    """(T, 3) cube centres of the observed states."""
    return np.array([s.object[:3] for s in states], dtype=float)


def classify_grasp(episode: FrankaEpisode, path: np.ndarray, ended: str = END_BUDGET) -> str:
    """SUCCESS or the failure class of a grasp episode from the cube's path (T, 3) and how it ended."""
    lift = np.asarray(path, dtype=float)[:, 2] - CUBE_HALF
    if lift[-1] >= SUCCESS_LIFT:
        return SUCCESS
    if lift.max() < LIFTED:
        return MISSED_GRASP
    if lift[-1] < LIFTED:
        return DROPPED
    return BUDGET_SPENT if ended == END_BUDGET else OTHER


class FrankaTask(Task):
    """What the grasp and pick-and-place tasks share: episodes, start scenes, budgets, tolerances, workspace."""

    model = MODEL
    launch = "sim_grasp.launch.xml"
    planner_config = "planner_franka.yaml"
    budget_table: dict[int, tuple[int, ...]] = BUDGETS
    settle_s = 0.5  # the fingers (a full open or close takes 0.5 s) and a released cube

    def sample(self, episodes: int, seed: int) -> list[FrankaEpisode]:
        rng = np.random.default_rng(seed)
        return [sample_franka_episode(rng) for _ in range(episodes)]

    def describe(self, episode: FrankaEpisode) -> dict:
        return episode.to_dict()

    def start(self, episode: FrankaEpisode) -> StartScene:
        return franka_start(episode)

    def budgets(self, budget: int | None, count: int) -> tuple[int, ...]:
        """The task's, or ``budget`` split in the proportions of the task's."""
        self.check_goal_count(count)
        table = self.budget_table[count]
        if budget is None:
            return table
        shares = [max(1, round(budget * b / sum(table))) for b in table[:-1]]
        return (*shares, max(1, budget - sum(shares)))

    def tolerances(self, tolerance: float, count: int, calibrated: float | None = None) -> tuple[float | None, ...]:
        """``tolerance`` when > 0, else the planner's default (no Franka model is calibrated yet)."""
        return (tolerance if tolerance > 0 else None,) * count

    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(WORKSPACE[0]), np.asarray(WORKSPACE[1])


class GraspTask(FrankaTask):
    """Pick the cube up and hold it; an episode is a ``FrankaEpisode``."""

    name = "grasp"
    sim_task = "grasp"
    success_radius = GOAL_LIFT - SUCCESS_LIFT
    failure_classes = FAILURES

    def goals(self, episode: FrankaEpisode, count: int) -> list[GoalScene]:
        self.check_goal_count(count)
        return [held_scene("grasped", episode, grasped_cube(episode))]

    def goals_made(self, count: int) -> str:
        return GOALS_MADE

    def distance(self, episode: FrankaEpisode, state: SceneState) -> float:
        """The cube's centre to where the goal image shows it (m)."""
        return float(np.linalg.norm(np.asarray(state.object[:3]) - grasped_cube(episode)))

    def judge(self, episode: FrankaEpisode, states: Sequence[SceneState], reasons: Sequence[str]) -> str:
        return classify_grasp(episode, cube_path(states), reasons[-1])


GRASP = GraspTask()

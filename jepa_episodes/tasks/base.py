"""What a task is to the episode runner: the one interface tasks plug into (reach, push, grasp, pick-and-place).

Rules: a task is data and pure judgement, ROS-free and driver-free: it samples its episodes deterministically from
a seed, says what the scene looks like at an episode's start and in each goal image (drivers make the scene and
the pictures), gives the budgets and tolerances, measures its distance from what a driver observes and judges the
finished episode. Its constants live in its own module, each defined once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import yaml

from jepa_common.package_data import config_file, launch_file
from jepa_common.settings import make_settings
from jepa_planner.mpc import PlannerSettings

from jepa_episodes.record import SceneState

#: planner settings a deployment file may not set for an in-process run (the models are chosen separately)
_MODEL_KEYS = ("encoder", "predictor")


@dataclass(frozen=True)
class StartScene:
    """An episode's start: the arm at home, then (when given) the object at ``object_xy`` and the end effector at
    ``ee`` (m, base frame), both at rest.

    Franka scenes (grasp, pick_place) also give the gripper's orientation ``ee_euler`` (extrinsic x-y-z Euler
    angles, rad), the object's yaw ``object_yaw`` (rad, about the vertical) and the target marker's ``target_xy``
    (m); None: not part of the scene (the arm sims) or the sim's default. The gripper starts open."""

    ee: tuple[float, ...] | None = None
    object_xy: tuple[float, ...] | None = None
    ee_euler: tuple[float, ...] | None = None
    object_yaw: float | None = None
    target_xy: tuple[float, ...] | None = None


@dataclass(frozen=True)
class GoalScene:
    """A goal image's scene: the end effector at ``ee`` and the object at ``object_xy`` (None: no object, or where
    it is). ``object_moved``: the object is elsewhere than now, and the end effector touches it from behind on
    the line from where it is (what the sim's ``~/goal_object_pose`` renders)."""

    kind: str
    ee: tuple[float, ...]
    object_xy: tuple[float, ...] | None = None
    object_moved: bool = False
    #: Franka scenes: the gripper's orientation (extrinsic x-y-z Euler angles, rad), its closedness (0 open .. 1
    #: closed; what the fingers measure, e.g. closed on the cube) and the object's centre (m, 3-D: a lifted
    #: object) and yaw (rad); None: not part of the scene (the arm sims)
    ee_euler: tuple[float, ...] | None = None
    gripper: float | None = None
    object_position: tuple[float, ...] | None = None
    object_yaw: float | None = None


class Task(ABC):
    """A task definition; subclasses set the class attributes and the methods."""

    name: str
    #: the shipped model deployed with the task (encoder and predictor)
    model: str
    #: the launch file of its stack and the planner settings file it deploys with (config/)
    launch: str
    planner_config: str
    #: the sim task of its scene: "reach" or "push" (ArmSim), "grasp" or "pick_place" (FrankaSim)
    sim_task: str
    success_radius: float
    failure_classes: tuple[str, ...]
    goal_counts: tuple[int, ...] = (1,)
    #: seconds a robot's scene is given to settle after an episode's last ReachGoal, before it is judged
    settle_s: float = 0.2

    @property
    def launch_file(self):
        """The launch file of the task's stack."""
        return launch_file(self.launch)

    def planner_settings(self, **overrides: Any) -> PlannerSettings:
        """The deployment's planner settings (``planner_config`` over the defaults, models left out) with
        ``overrides``, in continuous mode (an in-process loop executes each action before the next frame)."""
        values = yaml.safe_load(config_file(self.planner_config).read_text())["planner_node"]["ros__parameters"]
        values = {k: v for k, v in (values or {}).items() if k not in _MODEL_KEYS}
        return make_settings(PlannerSettings, {**values, "mode": "continuous", **overrides})

    def goal_count(self, requested: int) -> int:
        """``requested`` goal images per episode when the task makes that many, else its first choice."""
        return requested if requested in self.goal_counts else self.goal_counts[0]

    def check_goal_count(self, count: int) -> None:
        """ValueError unless the task makes ``count`` goal images per episode."""
        if count not in self.goal_counts:
            raise ValueError(f"the {self.name} task makes {' or '.join(map(str, self.goal_counts))} goal images, "
                             f"not {count}")

    @abstractmethod
    def sample(self, episodes: int, seed: int) -> list[Any]:
        """``episodes`` episodes drawn from ``np.random.default_rng(seed)``, the same for the same seed."""

    @abstractmethod
    def describe(self, episode: Any) -> dict:
        """JSON-ready description of an episode."""

    @abstractmethod
    def start(self, episode: Any) -> StartScene:
        """The scene an episode starts from."""

    @abstractmethod
    def goals(self, episode: Any, count: int) -> list[GoalScene]:
        """The goal images' scenes, in order."""

    @abstractmethod
    def goals_made(self, count: int) -> str:
        """How the goal images are made, in words (the JSON says it)."""

    @abstractmethod
    def budgets(self, budget: int | None, count: int) -> tuple[int, ...]:
        """Control steps per goal image: the task's, or ``budget`` in total."""

    @abstractmethod
    def tolerances(self, tolerance: float, count: int, calibrated: float | None = None) -> tuple[float | None, ...]:
        """Energy that counts each goal image reached: ``tolerance`` when > 0, else the task's (None: the
        planner's default, the model's calibrated planning tolerance). ``calibrated`` is the planning tolerance of
        the model that runs (None: the task's shipped model's), for tasks whose tolerances follow it."""

    @abstractmethod
    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) the end effector is kept in (m, base frame): the deployed controller's box."""

    @abstractmethod
    def distance(self, episode: Any, state: SceneState) -> float:
        """The distance the task is judged on (m)."""

    @abstractmethod
    def judge(self, episode: Any, states: Sequence[SceneState], reasons: Sequence[str]) -> str:
        """SUCCESS or a failure class, from the observed states (start ... end) and how each ReachGoal ended."""

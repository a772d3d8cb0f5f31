"""The episode runner: episodes of any task through any driver, the one episode protocol of `jepa eval`
(through the nodes or ``--offline``), `jepa demo` and the tests.

Protocol of one episode: the driver puts the scene at the task's start, makes the task's goal images, then pursues
them in order, one ReachGoal each with its budget and tolerance (a fault ends the episode: no further goal image),
lets the scene settle, and the task judges the observed states (start, one per plan, end) and the ends. Drivers
implement ``Driver``: the offline one (`jepa_episodes.offline`) and the node one (`jepa_ros.episodes.node_driver`).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from jepa_common.outcomes import SUCCESS, is_fault
from jepa_episodes.record import EpisodeRecord, EpisodeSummary, SceneState
from jepa_episodes.tasks.base import GoalScene, StartScene, Task

#: (record so far) after each plan
OnStep = Callable[[EpisodeRecord], None]
#: (index, episode, driver) once the scene is at the episode's start
BeforeEpisode = Callable[[int, Any, "Driver"], None]
#: (record, driver) after an episode ended
OnEpisode = Callable[[EpisodeRecord, "Driver"], None]


class Driver(Protocol):
    """What the runner needs of a robot (simulated in-process, or a running stack)."""

    name: str

    def start(self, scene: StartScene) -> None:
        """Put the scene at an episode's start (arm at home, then object and end effector placed)."""

    def goal_image(self, scene: GoalScene) -> Any:
        """The goal image of ``scene``, in whatever form ``pursue`` takes."""

    def pursue(self, goal_image: Any, budget: int, tolerance: float | None,
               on_plan: Callable[[float, float, int], None]) -> str:
        """One ReachGoal to its end; ``on_plan(observed energy, plan ms, predictor evaluations)`` at each plan, while the scene is as
        planned from; returns how it ended (`jepa_common.outcomes`)."""

    def state(self) -> SceneState:
        """What the evaluation sees of the scene now."""

    def settle(self) -> None:
        """Wait until the last commanded motion has settled."""


def run_episode(task: Task, driver: Driver, episode: Any, budgets: Sequence[int],
                tolerances: Sequence[float | None], *, index: int = 0, goal_count: int | None = None,
                start: bool = True, before: BeforeEpisode | None = None, on_step: OnStep | None = None
                ) -> EpisodeRecord:
    """Play one episode of ``task`` (from its start unless ``start`` is False) and judge it."""
    count = len(budgets) if goal_count is None else goal_count
    if len(budgets) != count or len(tolerances) != count:
        raise ValueError(f"{count} goal images need as many budgets and tolerances, got {list(budgets)} and "
                         f"{list(tolerances)}")
    started = time.monotonic()
    if start:
        driver.start(task.start(episode))
    if before is not None:
        before(index, episode, driver)
    images = [driver.goal_image(scene) for scene in task.goals(episode, count)]
    record = EpisodeRecord(index=index, task=task.name, episode=task.describe(episode), budgets=list(budgets),
                           tolerances=list(tolerances))
    states: list[SceneState] = []

    def observe() -> None:
        state = driver.state()
        states.append(state)
        record.observe(state, task.distance(episode, state))

    observe()
    for goal, (image, budget, tolerance) in enumerate(zip(images, budgets, tolerances)):
        def on_plan(energy: float, plan_ms: float, evaluations: int, goal: int = goal) -> None:
            record.energies.append(float(energy))
            record.plan_ms.append(float(plan_ms))
            record.plan_evaluations.append(int(evaluations))
            record.goal_index.append(goal)
            observe()
            if on_step is not None:
                on_step(record)

        record.reasons.append(driver.pursue(image, int(budget), tolerance, on_plan))
        if is_fault(record.reasons[-1]):
            break
    driver.settle()
    observe()
    record.reason = record.reasons[-1]
    record.outcome = task.judge(episode, states, record.reasons)
    record.success = record.outcome == SUCCESS
    within = [i for i, d in enumerate(record.distances) if d <= task.success_radius]
    record.steps_to_reach = within[0] if within else None
    record.duration_s = time.monotonic() - started
    return record


def run_episodes(task: Task, driver: Driver, episodes: Sequence[Any], budgets: Sequence[int],
                 tolerances: Sequence[float | None], *, before: BeforeEpisode | None = None,
                 on_step: OnStep | None = None, on_episode: OnEpisode | None = None,
                 stop: Callable[[], bool] = lambda: False) -> list[EpisodeRecord]:
    """Play ``episodes`` in order; ``stop()`` is asked after each (True: no further episode)."""
    records = []
    for index, episode in enumerate(episodes):
        records.append(run_episode(task, driver, episode, budgets, tolerances, index=index, before=before,
                                   on_step=on_step))
        if on_episode is not None:
            on_episode(records[-1], driver)
        if stop():
            break
    return records


def summarise(task: Task, driver: str, seed: int, requested: int, goal_count: int,
              records: list[EpisodeRecord], **extra: Any) -> EpisodeSummary:
    """The summary of a run (``to_dict`` is its JSON)."""
    return EpisodeSummary(task=task.name, driver=driver, seed=seed, requested_episodes=requested,
                          success_radius_m=task.success_radius, goal_images=goal_count,
                          goal_images_made=task.goals_made(goal_count), failure_classes=list(task.failure_classes),
                          records=records, extra=extra)


def clipped(position: np.ndarray, action: np.ndarray, box: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``action`` shortened per axis so that ``position + action`` stays in ``box`` (as the controller does)."""
    if box is None:
        return action
    low, high = box
    return np.clip(position + action, np.minimum(low, position), np.maximum(high, position)) - position

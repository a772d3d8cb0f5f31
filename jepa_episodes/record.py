"""The result of episodes, for every task and driver: one record per episode, one summary, one JSON schema.

Rules: `jepa eval` (through the nodes or ``--offline``), `jepa demo` and the tests write and read only these types;
each number has one key (lengths in m, times in ms or s as the key says); ``EpisodeSummary.from_dict`` reads what
``to_dict`` wrote (``SCHEMA`` names the version).
"""
from __future__ import annotations

import dataclasses
import platform
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jepa_common.outcomes import SUCCESS

SCHEMA = "jepa_ros/episodes/1"


@dataclass(frozen=True)
class SceneState:
    """What the evaluation sees of the scene (never a planner input): end-effector and object positions (m)."""

    ee: tuple[float, ...]
    object: tuple[float, ...] | None = None


@dataclass
class EpisodeRecord:
    """One episode. Per observation (the start, each plan, the end) the task's distance (m) and the positions;
    per plan the observed energy to its goal image, the planning time, the predictor evaluations (frames rolled
    out) and the goal image's index."""

    index: int
    task: str
    episode: dict                 # the task's description of the episode (e.g. target, push task)
    budgets: list[int]            # control steps per goal image
    tolerances: list[float | None]  # energy that counts each goal image reached (None: the planner's default)
    outcome: str = ""             # SUCCESS or one failure class of the task
    success: bool = False
    reason: str = ""              # how the last ReachGoal ended
    reasons: list[str] = field(default_factory=list)  # how each goal image's ReachGoal ended
    distances: list[float] = field(default_factory=list)
    ee_positions: list[list[float]] = field(default_factory=list)
    object_positions: list[list[float]] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)
    plan_evaluations: list[int] = field(default_factory=list)
    goal_index: list[int] = field(default_factory=list)
    steps_to_reach: int | None = None  # first observation index within the success radius (0: the start)
    duration_s: float = 0.0

    @property
    def steps(self) -> int:
        """Plans executed."""
        return len(self.plan_ms)

    @property
    def final_distance(self) -> float:
        """The task's distance at the end (m); inf before any observation."""
        return self.distances[-1] if self.distances else float("inf")

    @property
    def start_distance(self) -> float:
        """The task's distance at the start (m); inf before any observation."""
        return self.distances[0] if self.distances else float("inf")

    def observe(self, state: SceneState, distance: float) -> None:
        """Append one observation."""
        self.distances.append(float(distance))
        self.ee_positions.append([float(v) for v in state.ee])
        if state.object is not None:
            self.object_positions.append([float(v) for v in state.object])

    def to_dict(self) -> dict:
        """JSON-ready form (with ``steps`` and ``final_distance_m``)."""
        return {**dataclasses.asdict(self), "steps": self.steps, "final_distance_m": self.final_distance}

    @classmethod
    def from_dict(cls, data: dict) -> EpisodeRecord:
        """The record ``to_dict`` wrote."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass
class EpisodeSummary:
    """Every episode of a run and what they add up to; ``to_dict`` is the JSON of `jepa eval` and `jepa demo`."""

    task: str
    driver: str                   # "nodes" or "offline"
    seed: int
    requested_episodes: int
    success_radius_m: float
    goal_images: int
    goal_images_made: str         # how the goal images were made
    failure_classes: list[str]
    records: list[EpisodeRecord]
    extra: dict = field(default_factory=dict)  # run facts: tolerance option, settings, wall time, ...

    def to_dict(self) -> dict:
        """The JSON form (schema ``SCHEMA``)."""
        records = self.records
        successes = sum(r.success for r in records)
        plan_ms = [ms for r in records for ms in r.plan_ms]
        reached = [r.steps_to_reach for r in records if r.success and r.steps_to_reach is not None]
        return {
            "schema": SCHEMA, "task": self.task, "driver": self.driver, "seed": self.seed,
            "requested_episodes": self.requested_episodes, "episodes": len(records), "successes": successes,
            "success_rate": successes / len(records) if records else 0.0,
            "success_radius_m": self.success_radius_m, "goal_images": self.goal_images,
            "goal_images_made": self.goal_images_made,
            "budgets": records[0].budgets if records else None,
            "tolerances": records[0].tolerances if records else None,
            "outcomes": {name: sum(r.outcome == name for r in records)
                         for name in (SUCCESS, *self.failure_classes)},
            "median_steps": _median([r.steps for r in records]),
            "median_steps_to_reach": _median(reached),
            "median_start_distance_m": _median([r.start_distance for r in records]),
            "median_final_distance_m": _median([r.final_distance for r in records]),
            "median_plan_ms": _median(plan_ms),
            "p90_plan_ms": float(np.percentile(plan_ms, 90)) if plan_ms else None,
            "median_evaluations_per_plan": _median([n for r in records for n in r.plan_evaluations]),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version()},
            "extra": self.extra,
            "results": [r.to_dict() for r in records],
        }

    @classmethod
    def from_dict(cls, data: dict) -> EpisodeSummary:
        """The summary ``to_dict`` wrote (ValueError for another schema)."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not an episode summary of schema {SCHEMA}: {data.get('schema')!r}")
        failures = [name for name in data["outcomes"] if name != SUCCESS]
        return cls(task=data["task"], driver=data["driver"], seed=data["seed"],
                   requested_episodes=data["requested_episodes"], success_radius_m=data["success_radius_m"],
                   goal_images=data["goal_images"], goal_images_made=data["goal_images_made"],
                   failure_classes=failures, records=[EpisodeRecord.from_dict(r) for r in data["results"]],
                   extra=dict(data.get("extra", {})))


def rounded(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A number for people: ``digits`` decimals (trailing zeros dropped), "n/a" for None."""
    if value is None:
        return "n/a"
    return f"{round(float(value), digits):g}{unit}"


def summary_line(summary: dict) -> str:
    """The one-line result of a run (a ``to_dict`` summary), numbers rounded."""
    distance = summary["median_final_distance_m"]
    failures = {k: v for k, v in summary["outcomes"].items() if v and k != SUCCESS}
    return (f"{summary['task']} ({summary['driver']}): success rate {summary['success_rate']:.2f} "
            f"({summary['successes']}/{summary['episodes']}), median steps to within "
            f"{100 * summary['success_radius_m']:g} cm {rounded(summary['median_steps_to_reach'])}, median planning "
            f"{rounded(summary['median_plan_ms'], 0, ' ms')} ({rounded(summary.get('median_evaluations_per_plan'))} "
            f"predicted frames), median final distance "
            f"{rounded(None if distance is None else 100 * distance, 2, ' cm')}, failures {failures}")


def episode_line(record: EpisodeRecord, total: int) -> str:
    """One line per finished episode."""
    mark = "ok  " if record.success else "FAIL"
    return (f"[{mark}] episode {record.index + 1}/{total}: {record.steps} steps, final distance "
            f"{100 * record.final_distance:.1f} cm (start {100 * record.start_distance:.1f} cm), {record.outcome} "
            f"({record.reason})")

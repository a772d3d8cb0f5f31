"""The push task's geometry, ROS-free: episodes, the goal scenes a person would set up, scripted pushes.

An episode moves the puck from ``object_start`` to ``target`` (5-15 cm away, any direction, both inside
``OBJECT_AREA``); the end effector starts at ``ee_start`` at push height, clear of the puck. Goal images are made
the way a person makes them, by putting the scene into the goal state and taking a picture (``goal_images``):

1. "behind": the puck where it starts, the end effector ``BEHIND`` m behind it on the line from the target
   through the puck (where a push towards the target begins, clear of the puck);
2. "target": the puck at the target, the end effector touching it from behind on the same line (where that push
   leaves it).

Rules: geometry only, importing nothing of ours but jepa_sim; the episode protocol (success radius, budgets,
tolerances, failure classes) is the push task definition's (`jepa_episodes.tasks.push`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jepa_sim.arm_sim import EE_RADIUS, OBJECT_AREA, PUCK_RADIUS, PUSH_HEIGHT, PUSH_WORKSPACE, ArmSim

MIN_PUSH, MAX_PUSH = 0.05, 0.15  # m, distance of the target from the puck's start
APPROACH_GAP = 0.025  # m between the EE sphere and the puck at the "behind" pose
BEHIND = PUCK_RADIUS + EE_RADIUS + APPROACH_GAP  # m, EE centre to puck centre at the "behind" pose
CONTACT = PUCK_RADIUS + EE_RADIUS  # m, EE centre to puck centre when they touch
GOAL_KINDS = ("behind", "target")


@dataclass(frozen=True)
class PushTask:
    """One push episode (base frame, m): puck start and target (x, y), EE start (x, y, z)."""

    object_start: tuple[float, float]
    target: tuple[float, float]
    ee_start: tuple[float, float, float]

    @property
    def direction(self) -> np.ndarray:
        """Unit vector (x, y) from the puck's start to the target."""
        d = np.subtract(self.target, self.object_start)
        return d / np.linalg.norm(d)

    @property
    def distance(self) -> float:
        """Distance (m) from the puck's start to the target."""
        return float(np.linalg.norm(np.subtract(self.target, self.object_start)))

    def behind(self, object_xy, distance: float = BEHIND) -> np.ndarray:
        """EE position (x, y, z) ``distance`` m behind ``object_xy`` on the push line, at push height."""
        xy = np.asarray(object_xy, dtype=float)[:2] - distance * self.direction
        return np.array([xy[0], xy[1], PUSH_HEIGHT])

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"object_start": list(self.object_start), "target": list(self.target),
                "ee_start": list(self.ee_start)}


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from ``point`` to the segment a-b (2-D)."""
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip((point - a) @ ab / (ab @ ab), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))


def sample_push_task(sim: ArmSim, rng: np.random.Generator, min_push: float = MIN_PUSH,
                     max_push: float = MAX_PUSH) -> PushTask:
    """A reachable push episode drawn from ``rng``.

    The puck's start and the target lie in ``OBJECT_AREA``; both "behind" poses are reachable inside the push
    workspace; the EE starts at push height at least ``BEHIND`` + 1 cm from the puck, with a straight path to
    the first "behind" pose that does not touch the puck.
    """
    area_low, area_high = np.asarray(OBJECT_AREA.low[:2]), np.asarray(OBJECT_AREA.high[:2])
    ws_low, ws_high = np.asarray(PUSH_WORKSPACE.low), np.asarray(PUSH_WORKSPACE.high)
    for _ in range(1000):
        start = rng.uniform(area_low, area_high)
        angle = rng.uniform(-np.pi, np.pi)
        target = start + rng.uniform(min_push, max_push) * np.array([np.cos(angle), np.sin(angle)])
        ee = np.append(rng.uniform(ws_low[:2], ws_high[:2]), PUSH_HEIGHT)
        task = PushTask(tuple(start.tolist()), tuple(target.tolist()), tuple(ee.tolist()))
        if not OBJECT_AREA.contains([*target, OBJECT_AREA.low[2]]):
            continue
        first, last = task.behind(start), task.behind(target, CONTACT)
        if np.linalg.norm(ee[:2] - start) < BEHIND + 0.01 or \
                _segment_distance(start, ee[:2], first[:2]) < CONTACT + 0.005:
            continue
        if all(PUSH_WORKSPACE.contains(p) and sim.ik(p) is not None for p in (ee, first, last)):
            return task
    raise RuntimeError("could not sample a reachable push task in 1000 tries")


def start_episode(sim: ArmSim, task: PushTask) -> None:
    """Reset the sim to the task's start: arm at rest with the EE at ``ee_start``, puck at ``object_start``.

    The start depends on the task only (the inverse kinematics starts from the home pose), so the same task and
    actions give the same episode.
    """
    sim.reset(object_xy=task.object_start)
    q = sim.ik(task.ee_start)
    if q is None:
        raise ValueError(f"ee_start {list(task.ee_start)} is not reachable")
    sim.reset(q, object_xy=task.object_start)


def goal_scene(task: PushTask, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(EE position, puck x-y) of goal ``kind`` ("behind" or "target")."""
    if kind == "behind":
        return task.behind(task.object_start), np.asarray(task.object_start)
    if kind == "target":
        return task.behind(task.target, CONTACT), np.asarray(task.target)
    raise ValueError(f"goal kind must be one of {list(GOAL_KINDS)}, got {kind!r}")


def goal_images(sim: ArmSim, task: PushTask, count: int = 2) -> list[np.ndarray]:
    """The goal images of ``task``: ["behind", "target"] (count 2) or ["target"] (count 1)."""
    if count not in (1, 2):
        raise ValueError(f"count must be 1 or 2, got {count}")
    kinds = GOAL_KINDS[-count:]
    return [sim.render_goal(*goal_scene(task, kind)) for kind in kinds]


class ScriptedPusher:
    """A noisy scripted push for recording data: approach the "behind" pose of the current puck position (going
    around the puck), then push towards the target, steering at the puck's centre; random moves now and then.

    Args:
        task: the episode.
        rng: noise source.
        max_step: largest displacement per axis and step (m).
        noise: standard deviation of the x-y noise added to every step (m).
        random_prob: probability of a purely random step.
    """

    def __init__(self, task: PushTask, rng: np.random.Generator, max_step: float = 0.02, noise: float = 0.003,
                 random_prob: float = 0.15) -> None:
        self.task, self.rng = task, rng
        self.max_step, self.noise, self.random_prob = max_step, noise, random_prob
        self.pushing = False

    def action(self, ee: np.ndarray, object_xy: np.ndarray) -> np.ndarray:
        """The next displacement (dx, dy, dz) from the EE position and the puck's x-y."""
        rng, step = self.rng, self.max_step
        aim = np.asarray(self.task.target) - object_xy
        remaining = float(np.linalg.norm(aim))
        aim = aim / remaining if remaining > 1e-6 else self.task.direction
        away = ee[:2] - object_xy
        gap = float(np.linalg.norm(away))
        if rng.random() < self.random_prob:
            xy = rng.uniform(-step, step, size=2)
        elif remaining < 0.01:  # done: small moves, but never back into the puck
            xy = rng.uniform(-0.3 * step, 0.3 * step, size=2)
            if (ee[:2] + xy - object_xy) @ aim > -CONTACT - 0.01:
                xy = -aim * 0.3 * step
        else:
            behind = object_xy - BEHIND * aim
            if not self.pushing and np.linalg.norm(ee[:2] - behind) < 0.01:
                self.pushing = True
            if self.pushing and np.linalg.norm(ee[:2] - (object_xy - CONTACT * aim)) > 0.03:
                self.pushing = False  # lost the puck: approach again
            if self.pushing:
                # into the puck through its centre, towards the target, no further than the target
                goal = object_xy - (CONTACT - min(remaining, rng.uniform(0.5, 1.0) * step)) * aim
                xy = np.clip(goal - ee[:2], -step, step)
            elif gap < CONTACT + 0.01:
                xy = away / max(gap, 1e-6) * step  # back off the puck first
            elif _segment_distance(object_xy, ee[:2], behind) < CONTACT + 0.005:
                side = np.array([-away[1], away[0]]) / gap
                if side @ (behind - ee[:2]) < 0:
                    side = -side
                xy = side * step  # go around the puck
            else:
                xy = np.clip(behind - ee[:2], -step, step)
        xy = xy + rng.normal(0.0, self.noise, size=2)
        dz = rng.uniform(-0.002, 0.002)
        if ee[2] + dz < PUSH_HEIGHT - 0.003 or ee[2] + dz > PUSH_HEIGHT + 0.008:
            dz = -dz
        delta = np.append(np.clip(xy, -step, step), dz)
        target = np.clip(ee + delta, PUSH_WORKSPACE.low, PUSH_WORKSPACE.high)
        return target - ee

"""Closed loop (offline, seed 0, 10 episodes): a Franka model brings the open hand to the "pregrasp" goal image from
RADIUS m away, inside the reach of the energy (see oracle_descent.py); how close does it get, and where does it end?

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/pregrasp_near.py MODEL RADIUS [BUDGET]``
(MODEL: a trained 7-D model directory; RADIUS 0: the grasp task's start positions; BUDGET: planning steps, default 25; the
ReachGoal runs its whole budget; environment SETTINGS: planner settings over the task's, as JSON, for example
``'{"lookahead_steps": 6, "energy_mode": "closest"}'``).
Prints the median closest and final distance to the pose and how many episodes end within 2 cm.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np

from jepa_episodes.offline import run_offline
from jepa_episodes.tasks.base import GoalScene
from jepa_episodes.tasks.grasp import FrankaEpisode, GraspTask, held_scene


def pregrasp(episode: FrankaEpisode) -> GoalScene:
    """The open hand around the cube on the table, facing its sides."""
    closed = held_scene("closed", episode, np.asarray(episode.cube_start, dtype=float))
    return dataclasses.replace(closed, kind="pregrasp", gripper=0.0, object_moved=False)


class PregraspFromNear(GraspTask):
    """The grasp task's episodes, started RADIUS m from the pregrasp pose (above it; 0: where the task starts them),
    the gripper turned to the grasp yaw, with that one goal image."""

    def __init__(self, radius: float, budget: int) -> None:
        self.radius = radius
        self.budget_table = {1: (budget,)}

    def sample(self, episodes: int, seed: int) -> list[FrankaEpisode]:
        rng = np.random.default_rng(1)
        out = []
        for episode in super().sample(episodes, seed):
            if not self.radius:
                out.append(dataclasses.replace(episode, ee_yaw=episode.grasp_yaw))
                continue
            v = rng.normal(size=3)
            v[2] = abs(v[2]) + 0.5
            start = np.asarray(pregrasp(episode).ee) + self.radius * v / np.linalg.norm(v)
            out.append(dataclasses.replace(episode, ee_start=tuple(float(x) for x in start), ee_yaw=episode.grasp_yaw))
        return out

    def goals(self, episode: FrankaEpisode, count: int) -> list[GoalScene]:
        return [pregrasp(episode)]


def main(model: str, radius: float, budget: int) -> None:
    task = PregraspFromNear(radius, budget)
    episodes = task.sample(10, 0)
    settings = json.loads(os.environ.get("SETTINGS", "{}"))
    records, _ = run_offline(task, episodes, (budget,), (None,), encoder=model, predictor=model, settings=settings)
    final, closest = [], []
    for episode, record in zip(episodes, records):
        d = np.linalg.norm(np.array(record.ee_positions)[:, :3] - np.asarray(pregrasp(episode).ee), axis=1)
        final.append(d[-1])
        closest.append(d.min())
    where = f"start {radius:.2f} m away" if radius else "from the task's start positions"
    print(f"{model}, {where}: closest median {np.median(closest):.3f} m, final median "
          f"{np.median(final):.3f} m {np.round(np.sort(final), 3).tolist()}, final within 2 cm "
          f"{int((np.array(final) <= 0.02).sum())}/10")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25)

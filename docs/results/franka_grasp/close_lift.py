"""Closed loop (offline, seed 0): the open hand starts around the cube (the pregrasp pose); two sub-goal images follow,
"closed on the cube" (10 steps, run to the end of its budget so that the fingers can close) and "the cube held
10 cm up" (25 steps). Can a Franka model close the hand and lift the cube once the reach is done?

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/close_lift.py MODEL [EPISODES]``
(environment SETTINGS: planner settings over the task's, as JSON, for example ``'{"include_neutral": true}'``).
Prints one line per episode (outcome, the gripper's closedness every 4 steps, the cube's highest rise) and the count.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np

from jepa_episodes.offline import run_offline
from jepa_episodes.tasks.base import GoalScene
from jepa_episodes.tasks.grasp import FrankaEpisode, GraspTask, grasped_cube, held_scene

BUDGETS = (10, 25)
TOLERANCES = (1e-9, None)  # the first goal never counts as reached; the second: the model's calibrated tolerance


class CloseAndLift(GraspTask):
    """The grasp task's episodes, started with the open hand around the cube, with two sub-goal images."""

    goal_counts = (2,)
    budget_table = {2: BUDGETS}

    def sample(self, episodes: int, seed: int) -> list[FrankaEpisode]:
        out = []
        for episode in super().sample(episodes, seed):
            pregrasp = held_scene("closed", episode, episode.cube_start).ee  # the hand around the cube
            out.append(dataclasses.replace(episode, ee_start=pregrasp, ee_yaw=episode.grasp_yaw))
        return out

    def goals(self, episode: FrankaEpisode, count: int) -> list[GoalScene]:
        return [held_scene("closed", episode, np.asarray(episode.cube_start, dtype=float)),
                held_scene("grasped", episode, grasped_cube(episode))]


def main(model: str, episodes: int) -> None:
    task = CloseAndLift()
    settings = json.loads(os.environ.get("SETTINGS", "{}"))
    records, _ = run_offline(task, task.sample(episodes, 0), BUDGETS, TOLERANCES, encoder=model, predictor=model,
                             settings=settings)
    for record in records:
        states, cube = np.array(record.ee_positions), np.array(record.object_positions)
        print(record.outcome, "gripper", np.round(states[::4, 6], 2).tolist(),
              f"cube rose at most {cube[:, 2].max() - cube[0, 2]:.3f} m")
    print(f"{sum(r.success for r in records)}/{len(records)} grasped")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)

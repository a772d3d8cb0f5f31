"""Does a Franka model read the gripper action? On the steps of recorded grasps where the gripper's closedness
changes (|dgripper| >= 0.08), one rollout step from the recorded frame and state with three actions: the recorded one,
the same with dgripper 0, and with dgripper negated; the L1 error of each prediction to the next recorded frame.
A model that reads dgripper predicts the recorded action's frame best. Also printed: how far the prediction moves
when dgripper is set to 0 (L1 between the two predictions), against how far the real frame moves (L1 to the frame
before).

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/gripper_read.py MODEL DATA [EPISODES]``
(DATA: a folder of `jepa record --sim --task grasp` episodes the model was not trained on; EPISODES: how many of
them, default 30). Prints the median errors and how often the recorded action's error is the lowest.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from jepa_episodes.offline import load_models
from jepa_world_model.data.dataset import ReadOptions, load_episodes
from jepa_world_model.networks.state_update import context_actions

GRIPPER_STEP = 0.08  # closedness change per step that counts as the gripper moving


def main(model: str, data: str, count: int) -> None:
    encoder, predictor = load_models(model, model)
    episodes, _ = load_episodes(sorted(Path(data).glob("episode_*.mcap"))[:count],
                                ReadOptions(state_kind="ee_pose_gripper"))
    rows = []
    for episode in episodes:
        states = torch.tensor(episode.states, dtype=torch.float32)
        actions = context_actions(predictor.config, states[None])[0]
        with torch.inference_mode():
            features = encoder(torch.from_numpy(np.ascontiguousarray(episode.frames))).float()
        for t in np.flatnonzero(actions[:, 6].abs().numpy() >= GRIPPER_STEP):
            variants = actions[t].repeat(3, 1)
            variants[1, 6] = 0.0
            variants[2, 6] = -actions[t, 6]
            with torch.inference_mode():
                predicted = predictor.rollout(features[t][None, None], states[t][None, None], variants[:, None])
            errors = (predicted[:, 0] - features[t + 1]).abs().mean(dim=(1, 2)).numpy()
            moved = float((predicted[0, 0] - predicted[1, 0]).abs().mean())
            rows.append((*errors, float((features[t] - features[t + 1]).abs().mean()), moved))
    r = np.array(rows)
    print(f"{len(r)} gripper steps of {len(episodes)} episodes; median error: recorded action "
          f"{np.median(r[:, 0]):.4f}, dgripper 0 {np.median(r[:, 1]):.4f}, negated {np.median(r[:, 2]):.4f}, "
          f"no motion {np.median(r[:, 3]):.4f}; the recorded action beats dgripper 0 in {(r[:, 0] < r[:, 1]).mean():.2f}, the negated one in "
          f"{(r[:, 0] < r[:, 2]).mean():.2f} of the steps; the prediction moves by {np.median(r[:, 4]):.4f} (median) "
          f"when dgripper is set to 0")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 30)

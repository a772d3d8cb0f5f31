"""Does a Franka model see the gripper close? With the open hand around the cube (the pregrasp pose, 5 grasp episodes
of seed 0) and the goal image "closed on the cube", the energy of closing by dgripper in GRIPS: real (the scene
rendered with the fingers there) and predicted (one rollout step of the model, the arm held).

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/gripper_rank.py MODEL`` (a trained 7-D
model directory). Prints, per episode, the real and the predicted energy for each closing step.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from jepa_episodes.offline import load_models, place_franka_start
from jepa_episodes.tasks.grasp import GRASP, HOLDING_GRIPPER, franka_start, held_scene
from jepa_sim.franka_sim import FrankaSim

GRIPS = (0.0, 0.1, 0.2, 0.4, HOLDING_GRIPPER)  # closedness after the step (the hand starts open: 0)


def main(model: str) -> None:
    encoder, predictor = load_models(model, model)

    def features(image: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return encoder(torch.from_numpy(np.ascontiguousarray(image))[None]).float()[0]

    sim = FrankaSim(image_size=encoder.config.crop_size, control_period=0.1)
    print("closing to", np.round(GRIPS, 2).tolist())
    for episode in GRASP.sample(5, 0):
        place_franka_start(sim, franka_start(episode))
        scene = held_scene("closed", episode, episode.cube_start)
        ee, euler = np.asarray(scene.ee), scene.ee_euler
        goal = features(sim.render_goal(ee, euler, HOLDING_GRIPPER))
        q = sim.ik(ee, euler)
        now = features(sim.render_state(q, 0.0))
        actions = np.zeros((len(GRIPS), 7))
        actions[:, 6] = GRIPS
        with torch.inference_mode():
            state = torch.tensor(np.r_[ee, euler, 0.0], dtype=torch.float32)[None, None]
            steps = torch.tensor(actions, dtype=torch.float32)[:, None]
            predicted = predictor.rollout(now[None, None], state, steps)[:, 0]
        real = [float((features(sim.render_state(q, g)) - goal).abs().mean()) for g in GRIPS]
        print("  real     ", np.round(real, 4).tolist())
        print("  predicted", np.round((predicted - goal).abs().mean(dim=(1, 2)).double().numpy(), 4).tolist())


if __name__ == "__main__":
    main(sys.argv[1])

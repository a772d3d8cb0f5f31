"""Does a Franka model move the hand to where the goal image shows it, and keep it there? With the open hand OFFSET m
from the pregrasp pose (10 grasp episodes of seed 0; 0: at the pose) and that pose's goal image, the energy of the 27
moves of STEP m (26 grid directions and none): real (the arm rendered there) and predicted (one rollout step of the
model). The right move is the one that ends closest to the pose (at the pose: staying put).

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/hold_rank.py MODEL`` (a trained 7-D model
directory; environment OFFSET, default 0, and STEP, default 0.015). Prints, per episode, the rank of the right move
among the 27 (0 = best) under the real and the predicted energy and how much closer to the pose the model's first
choice brings the hand, then the medians.
"""
from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import torch

from jepa_episodes.offline import load_models, place_franka_start
from jepa_episodes.tasks.grasp import GRASP, franka_start, held_scene
from jepa_sim.franka_sim import FrankaSim

STEP = float(os.environ.get("STEP", "0.015"))  # m per move
OFFSET = float(os.environ.get("OFFSET", "0"))  # m from the pose at the start


def main(model: str) -> None:
    encoder, predictor = load_models(model, model)

    def features(image: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return encoder(torch.from_numpy(np.ascontiguousarray(image))[None]).float()[0]

    moves = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)
    moves *= STEP / np.maximum(np.linalg.norm(moves, axis=1, keepdims=True), 1.0)
    sim = FrankaSim(image_size=encoder.config.crop_size, control_period=0.1)
    rng = np.random.default_rng(1)
    real_ranks, predicted_ranks, gains = [], [], []
    for episode in GRASP.sample(10, 0):
        place_franka_start(sim, franka_start(episode))
        scene = held_scene("pregrasp", episode, episode.cube_start)
        pose, euler = np.asarray(scene.ee), scene.ee_euler
        v = rng.normal(size=3)
        v[2] = abs(v[2]) + 0.5
        ee = pose + OFFSET * v / np.linalg.norm(v)
        goal = features(sim.render_goal(pose, euler, 0.0))
        now = features(sim.render_state(sim.ik(ee, euler), 0.0))
        right = int(np.argmin(np.linalg.norm(ee + moves - pose, axis=1)))
        actions = np.zeros((len(moves), 7))
        actions[:, :3] = moves
        with torch.inference_mode():
            state = torch.tensor(np.r_[ee, euler, 0.0], dtype=torch.float32)[None, None]
            predicted = predictor.rollout(now[None, None], state, torch.tensor(actions, dtype=torch.float32)[:, None])
        predicted_energy = (predicted[:, 0] - goal).abs().mean(dim=(1, 2)).double().numpy()
        real_energy = []
        for move in moves:
            q = sim.ik(ee + move, euler)
            real_energy.append(np.inf if q is None else float((features(sim.render_state(q, 0.0)) - goal).abs().mean()))
        real_rank = int((np.asarray(real_energy) < real_energy[right]).sum())
        predicted_rank = int((predicted_energy < predicted_energy[right]).sum())
        first = moves[int(np.argmin(predicted_energy))]
        gain = float(np.linalg.norm(ee - pose) - np.linalg.norm(ee + first - pose))
        real_ranks.append(real_rank)
        predicted_ranks.append(predicted_rank)
        gains.append(gain)
        print(f"right move ranks {real_rank} (real), {predicted_rank} (predicted); the model's first choice "
              f"{np.round(first * 100, 1).tolist()} cm brings the hand {gain * 100:.1f} cm closer")
    print(f"OFFSET {OFFSET:g} m: median rank of the right move: real {np.median(real_ranks):g}, predicted "
          f"{np.median(predicted_ranks):g} of 26; the model's choice {np.median(gains) * 100:.1f} cm closer (median)")


if __name__ == "__main__":
    main(sys.argv[1])

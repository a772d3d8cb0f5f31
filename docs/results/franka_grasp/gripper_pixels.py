"""How much does one gripper step show in the camera, against a 1 cm move of the hand? At the pregrasp pose of 5 grasp
episodes (seed 0): the pixels that change (summed RGB difference above 30) when the fingers close from 0 to 0.2 (one
control step of the recorded play) and when the open hand moves 1 cm along x, at 128 and 256 px, and at the encoder's
size the L1 feature change of each (the planner's energy between the two pictures).

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/gripper_pixels.py MODEL`` (a trained 7-D
model directory; its encoder gives the features). Prints one line per image size.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from jepa_episodes.offline import load_models, place_franka_start
from jepa_episodes.tasks.grasp import GRASP, franka_start, held_scene
from jepa_sim.franka_sim import FrankaSim

CLOSED = 0.2  # closedness after one recorded gripper step from open
MOVE = np.array([0.01, 0.0, 0.0])  # m


def changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels whose summed RGB difference exceeds 30."""
    return int((np.abs(a.astype(int) - b).sum(axis=-1) > 30).sum())


def main(model: str) -> None:
    encoder, _ = load_models(model, model)

    def features(image: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return encoder(torch.from_numpy(np.ascontiguousarray(image))[None]).float()[0]

    for size in (encoder.config.crop_size, 2 * encoder.config.crop_size):
        rows = []
        with FrankaSim(image_size=size, control_period=0.1) as sim:
            for episode in GRASP.sample(5, 0):
                place_franka_start(sim, franka_start(episode))
                scene = held_scene("pregrasp", episode, episode.cube_start)
                pose, euler = np.asarray(scene.ee), scene.ee_euler
                q = sim.ik(pose, euler)
                open_hand, closing = sim.render_state(q, 0.0), sim.render_state(q, CLOSED)
                moved = sim.render_state(sim.ik(pose + MOVE, euler), 0.0)
                energy = (np.nan, np.nan)
                if size == encoder.config.crop_size:
                    f = features(open_hand)
                    energy = (float((features(closing) - f).abs().mean()), float((features(moved) - f).abs().mean()))
                rows.append((changed_pixels(open_hand, closing), changed_pixels(open_hand, moved), *energy))
        r = np.array(rows)
        line = f"{size} px: pixels changed by closing 0 -> {CLOSED}: {r[:, 0].astype(int).tolist()}, by 1 cm: " \
               f"{r[:, 1].astype(int).tolist()}"
        if size == encoder.config.crop_size:
            line += f"; feature L1 closing {np.round(r[:, 2], 4).tolist()}, 1 cm {np.round(r[:, 3], 4).tolist()}"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])

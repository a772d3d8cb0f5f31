"""Greedy descent on the real planning energy to the Franka "pregrasp" goal image (the open hand around the cube), no
predictor: how far from the pose does the energy still lead the hand there?

Each step renders the 27 outcomes of moving the hand by STEP m along one of the 26 grid directions or not at all
(the arm placed by ``FrankaSim.ik``, gripper open, cube where it started; rendered at the encoder's crop size) and
takes the one of lowest energy (mean absolute difference of the layer-normed features, as the planner scores):
what a planner with a perfect predictor and a one-step horizon does, on this grid of moves. Environment POOL (for
example "1,2,4"; default "1", the planner's energy) scores a multi-scale variant instead: the features averaged over
every k x k window of the patch grid (stride 1) for each k listed, the energies of the scales summed. Environment
ENCODER (a file that ``metric_encoder.py`` saved) scores with that encoder instead (MODEL is then not read).

Run from the repository root: ``.venv/bin/python docs/results/franka_grasp/oracle_descent.py MODEL [RADIUS ...]``
(MODEL: a model directory or shipped name whose encoder is used; no RADIUS: the grasp task's starts, seed 0; each
RADIUS in m: starts that far from the pose, above it, 5 episodes; environment STEP: the move in m, default 0.015).
Prints one line per episode.
"""
from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from jepa_episodes.offline import load_models, place_franka_start
from jepa_episodes.tasks.grasp import GRASP, franka_start, held_scene
from jepa_sim.franka_sim import FrankaSim

STEP = float(os.environ.get("STEP", "0.015"))  # m per step
POOL = [int(k) for k in os.environ.get("POOL", "1").split(",")]  # window sizes on the patch grid
ENCODER = os.environ.get("ENCODER")  # a saved encoder module to score with instead of MODEL's


def main(model: str, radii: list[float]) -> None:
    encoder = torch.load(ENCODER, weights_only=False).eval() if ENCODER else load_models(model, model)[0]
    side = encoder.config.crop_size // encoder.config.patch_size

    def features(image: np.ndarray) -> list[torch.Tensor]:
        with torch.inference_mode():
            tokens = encoder(torch.from_numpy(np.ascontiguousarray(image))[None]).float()[0]
        if POOL == [1]:  # the planner's energy (also for encoders whose output is not a patch grid)
            return [tokens]
        grid = tokens.T.reshape(1, -1, side, side)
        return [F.avg_pool2d(grid, k, stride=1) for k in POOL]

    def energy(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return sum(float((x - y).abs().mean()) for x, y in zip(a, b))

    moves = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)
    moves *= STEP / np.maximum(np.linalg.norm(moves, axis=1, keepdims=True), 1.0)
    sim = FrankaSim(image_size=encoder.config.crop_size, control_period=0.1)  # the encoder's input size
    for radius in radii or [0.0]:
        rng = np.random.default_rng(1)
        for episode in GRASP.sample(5 if radius else 4, 0):
            place_franka_start(sim, franka_start(episode))
            scene = held_scene("pregrasp", episode, episode.cube_start)
            goal, euler = np.asarray(scene.ee), scene.ee_euler
            goal_features = features(sim.render_goal(goal, euler, 0.0))
            position = np.asarray(episode.ee_start, float)
            if radius:
                v = rng.normal(size=3)
                v[2] = abs(v[2]) + 0.5
                position = goal + radius * v / np.linalg.norm(v)
            start = float(np.linalg.norm(position - goal))
            distances = []
            for _ in range(int(2.5 * radius / STEP) if radius else 40):
                energies = []
                for move in moves:
                    q = sim.ik(position + move, euler)
                    energies.append(np.inf if q is None else energy(features(sim.render_state(q, 0.0)), goal_features))
                position = position + moves[int(np.argmin(energies))]
                distances.append(float(np.linalg.norm(position - goal)))
            print(f"start {start:.3f} m from the pose: closest {min(distances):.3f} m, final {distances[-1]:.3f} m")


if __name__ == "__main__":
    main(sys.argv[1], [float(r) for r in sys.argv[2:]])

"""Random shooting on the real planning energy to the Franka "pregrasp" goal image, no predictor: does a search that
reaches far find the pose where the local descent of ``oracle_descent.py`` stalls?

Each step draws K end points uniformly in a ball of radius R m around the hand (clipped to the Franka workspace)
plus the best end point of the step before, renders the arm there (``FrankaSim.ik``, gripper open, cube where it
started, 128 px), scores each with the frozen random encoder's energy (mean absolute difference of the layer-normed
features, as the planner scores) and moves the hand MOVE m towards the lowest one: what a receding-horizon planner
with a perfect predictor does whose plans end anywhere within R, executing one step of each plan.

Run from the repository root: ``R=0.4 .venv/bin/python docs/results/franka_grasp/oracle_shoot.py``
(environment R (default 0.4), K (48), MOVE (0.03); the grasp task's starts, seed 0, 4 episodes, 30 steps).
Prints one line per episode.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from jepa_episodes.offline import place_franka_start
from jepa_episodes.tasks.grasp import GRASP, WORKSPACE, franka_start, held_scene
from jepa_sim.franka_sim import FrankaSim
from jepa_world_model import load_encoder

R = float(os.environ.get("R", "0.4"))         # m: the reach of a plan
K = int(os.environ.get("K", "48"))            # end points drawn per step
MOVE = float(os.environ.get("MOVE", "0.03"))  # m executed per step


def main() -> None:
    torch.set_num_threads(1)
    encoder = load_encoder("tiny", crop_size=128, output_layer_norm=True)
    sim = FrankaSim(image_size=128, control_period=0.1)

    def features(image: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return encoder(torch.from_numpy(np.ascontiguousarray(image))[None]).float()[0]

    low, high = np.array(WORKSPACE[0]), np.array(WORKSPACE[1])
    rng = np.random.default_rng(0)
    for episode in GRASP.sample(4, 0):
        place_franka_start(sim, franka_start(episode))
        scene = held_scene("pregrasp", episode, episode.cube_start)
        goal, euler = np.asarray(scene.ee), scene.ee_euler
        goal_features = features(sim.render_goal(goal, euler, 0.0))
        position = np.asarray(episode.ee_start, float)
        start, best, distances = float(np.linalg.norm(position - goal)), None, []
        for _ in range(30):
            directions = rng.normal(size=(K, 3))
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
            ends = np.clip(position + directions * R * rng.random((K, 1)) ** (1 / 3), low, high)
            if best is not None:
                ends = np.vstack([ends, best])
            energies = []
            for end in ends:
                q = sim.ik(end, euler)
                energies.append(np.inf if q is None else float((features(sim.render_state(q, 0.0)) - goal_features)
                                                                .abs().mean()))
            best = ends[int(np.argmin(energies))]
            step = best - position
            position = position + step * min(1.0, MOVE / max(float(np.linalg.norm(step)), 1e-12))
            distances.append(float(np.linalg.norm(position - goal)))
        print(f"R={R} start {start:.3f} m from the pose: closest {min(distances):.3f} m, final {distances[-1]:.3f} m",
              flush=True)


if __name__ == "__main__":
    main()

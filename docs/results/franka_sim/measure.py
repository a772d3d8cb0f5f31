"""Render timing of FrankaSim's camera at 64, 96 and 128 px, and one frame each (PNG) with the fingers around the cube.

Run from the repository root: ``.venv/bin/python docs/results/franka_sim/measure.py``. Writes the PNGs next to this
file and prints one line per size (median of 30 renders after 3 warm-up renders, and the first render, which also
creates the GL context).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from jepa_sim.franka_script import PickPlaceScript
from jepa_sim.franka_sim import FrankaSim

HERE = Path(__file__).resolve().parent


def main() -> None:
    sim = FrankaSim(image_size=64)
    rng = np.random.default_rng(0)
    sim.reset(rng=rng)
    script = PickPlaceScript("pick_place", rng=rng)
    script.reset(sim)
    while script.phase != "lift":  # stop with the fingers closed on the cube
        sim.apply_action(script.act(sim))
    sim.apply_action(script.act(sim))  # a little way up
    qpos, gripper = sim.joint_positions(), sim.gripper_state()
    cube_pos, cube_quat = sim.cube_pose()
    sim.close()
    for size in (64, 96, 128):
        with FrankaSim(image_size=size) as s:
            t0 = time.perf_counter()
            s.render()
            first = time.perf_counter() - t0
            s.set_target(sim.target_position()[:2])
            for _ in range(3):
                s.render_state(qpos, gripper, cube_pos, cube_quat)
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                image = s.render_state(qpos, gripper, cube_pos, cube_quat)
                times.append(time.perf_counter() - t0)
            Image.fromarray(image).save(HERE / f"frame_{size}px.png")
            print(f"{size:4d} px: median {1e3 * float(np.median(times)):.1f} ms, min {1e3 * min(times):.1f} ms, "
                  f"first (with context) {1e3 * first:.0f} ms; gripper {gripper:.2f}, cube z {cube_pos[2]:.3f} m, "
                  f"arm q {np.round(qpos, 2).tolist()}, cube quat {np.round(cube_quat, 3).tolist()}")


if __name__ == "__main__":
    main()

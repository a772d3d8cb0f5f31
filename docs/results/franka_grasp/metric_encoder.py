"""Train the tiny encoder so that the planning energy between two frames follows a distance, and save it: does a
trained encoder widen the energy's reach (``oracle_descent.py`` with ``ENCODER=`` the saved file)?

The energy is the planner's (mean absolute difference of the layer-normed patch features, 128 px, 8 x 8 patches);
each step regresses it (smooth L1) on a target distance for 32 pairs of recorded frames, half from one episode,
half from two: ``MODE=state``: SCALE x the distance of the recorded end-effector positions (m) + GRIP x the
difference of the gripper closedness; ``MODE=time``: SCALE x min(|dt|, TMAX) / TMAX steps within one episode,
SCALE across two. Starts from the frozen random encoder (``tiny``, seed 0); AdamW, lr 3e-4, one thread.

Run from the repository root:
``MODE=state .venv/bin/python docs/results/franka_grasp/metric_encoder.py DATA [DATA ...] OUT.pt``
(DATA: Franka recordings, ``jepa record --sim --task grasp``; environment STEPS (default 1500), SCALE (0.5),
GRIP (0.05), TMAX (40)). Prints the running loss and the correlation of energy and target every 100 steps.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from jepa_world_model import load_encoder
from jepa_world_model.data.dataset import ReadOptions, load_episodes
from jepa_world_model.networks.features import layer_norm_features

MODE = os.environ.get("MODE", "state")
STEPS = int(os.environ.get("STEPS", "1500"))
SCALE = float(os.environ.get("SCALE", "0.5"))
GRIP = float(os.environ.get("GRIP", "0.05"))
TMAX = float(os.environ.get("TMAX", "40"))
PAIRS = 32


def target_distance(a, ta: int, b, tb: int, same: bool) -> float:
    """The distance the energy of frames (a, ta) and (b, tb) should have (`same`: a pair from one episode)."""
    if MODE == "state":
        sa, sb = a.states[ta], b.states[tb]
        return SCALE * float(np.linalg.norm(sa[:3] - sb[:3])) + GRIP * abs(float(sa[6] - sb[6]))
    return SCALE * min(abs(ta - tb), TMAX) / TMAX if same else SCALE


def main(data: list[str], out: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    episodes, _ = load_episodes(data, ReadOptions(state_kind="ee_pose_gripper"))
    encoder = load_encoder("tiny", crop_size=128, output_layer_norm=True).requires_grad_(True).train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=3e-4, weight_decay=0.04)
    rng = np.random.default_rng(0)
    average = None
    for step in range(STEPS):
        first, second, targets = [], [], []
        for i in range(PAIRS):
            same = i % 2 == 0
            a = episodes[rng.integers(len(episodes))]
            ta = int(rng.integers(len(a)))
            b = a if same else episodes[rng.integers(len(episodes))]
            tb = int(rng.integers(len(b)))
            first.append(a.frames[ta])
            second.append(b.frames[tb])
            targets.append(target_distance(a, ta, b, tb, same))
        fa = layer_norm_features(encoder(torch.from_numpy(np.stack(first))))
        fb = layer_norm_features(encoder(torch.from_numpy(np.stack(second))))
        energy = (fa - fb).abs().mean(dim=(1, 2))
        loss = F.smooth_l1_loss(energy, torch.tensor(targets, dtype=torch.float32), beta=0.02)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        average = loss.item() if average is None else 0.98 * average + 0.02 * loss.item()
        if step % 100 == 0 or step == STEPS - 1:
            correlation = np.corrcoef(energy.detach().numpy(), targets)[0, 1]
            print(f"step {step}: loss {average:.5f}, correlation of energy and target {correlation:.3f}", flush=True)
    torch.save(encoder.eval(), out)


if __name__ == "__main__":
    main(sys.argv[1:-1], sys.argv[-1])

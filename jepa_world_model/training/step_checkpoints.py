"""Periodic checkpoints of a run: ``checkpoints/step_NNNNNNN/`` holding the models (our checkpoint format) and
``training_state.pt`` (optimizer, step, options and whatever else the recipe needs to continue exactly).

Rules: a checkpoint is written into a ``.tmp`` directory and renamed, so a kill never leaves a half-written one
that looks complete; only the newest ``keep`` are kept; the RNG states are the process's global ones.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

STATE_FILE = "training_state.pt"
CHECKPOINTS = "checkpoints"


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete periodic checkpoint under ``out``, if any."""
    root = out / CHECKPOINTS
    done = sorted(p for p in root.glob("step_*")
                  if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE_FILE).is_file())
    return done[-1] if done else None


def write_step_checkpoint(root: Path, step: int, keep: int, fill: Callable[[Path], None]) -> Path:
    """Write ``root/step_NNNNNNN`` atomically (``fill`` writes into a .tmp directory, then it is renamed) and keep
    only the newest ``keep`` complete ones."""
    final, tmp = root / f"step_{step:07d}", root / f"step_{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    fill(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    done = sorted(p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(checkpoint: Path) -> dict:
    """The ``training_state.pt`` of a periodic checkpoint."""
    return torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)


def rng_state() -> dict:
    """The global RNG states (torch, numpy, python and, when present, CUDA)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

"""Torch device names as users give them: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``."""
from __future__ import annotations

import os

import torch

from jepa_world_model.errors import ConfigError

AUTO = "auto"


def resolve_device(name: str) -> torch.device:
    """The torch device for `name`; ``auto`` picks CUDA when available, else CPU.

    Raises ConfigError (not torch's AssertionError) when CUDA is asked for on a machine without it.
    """
    name = (name or AUTO).strip().lower()
    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine (use device:=auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def training_device(name: str) -> torch.device:
    """:func:`resolve_device` for a training process: a bare ``cuda`` means ``cuda:LOCAL_RANK`` under torchrun."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device

"""What a run's checkpoint metadata records of its options (``metadata.training`` / ``metadata.pretraining``):
names that mean the same on every machine, never the paths of the machine that trained.

Rules: a shipped model's directory is recorded by its shipped name ("default", "push_default", "pretrained_sim");
an absolute path under the working directory is recorded relative to it; relative paths, names, presets and hub
ids are recorded as given; ``progress`` (a display switch) is left out. The ``training_state.pt`` of the periodic
checkpoints keeps the options exactly as given: a resume compares those. The build scripts run from their work
directory with relative paths, so a shipped model's metadata names its data by the script's folders.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jepa_world_model.checkpoints.bundle import shipped_name

#: Options that hold paths (or names that may be paths).
PATH_OPTIONS = ("data", "out", "encoder", "predictor", "init", "cache_dir")
#: Options that only change what the run displays.
LEFT_OUT = ("progress",)


def recorded_path(value: str) -> str:
    """``value`` as metadata records it: a shipped model's name, a path relative to the working directory when
    it lies under it, else as given."""
    shipped = shipped_name(value)
    if shipped is not None:
        return shipped
    path = Path(value)
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return value
    return value


def options_record(cfg: Any) -> dict:
    """A run config (a dataclass) as its checkpoint metadata records it."""
    record = {}
    for key, value in asdict(cfg).items():
        if key in LEFT_OUT:
            continue
        if key in PATH_OPTIONS and value is not None:
            value = [recorded_path(os.fspath(v)) for v in value] if isinstance(value, list) else \
                recorded_path(os.fspath(value))
        record[key] = value
    return record

"""World models shipped with the package, and the one resolver of model names used by every loader and command.

``default`` names the model trained on the built-in simulation (``sim_reach/``, see its README); it is what
the launch files use. Any other source (preset name, checkpoint directory, official ``.pt`` file, Hugging
Face id or directory) passes through unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelNotAvailableError

#: Directory of the shipped models.
MODELS_DIR = Path(__file__).resolve().parent
#: Source name of the model shipped with the package and its directory.
DEFAULT_SOURCE = "default"
DEFAULT_MODEL_DIR = MODELS_DIR / "sim_reach"
#: Model names and the shipped directories they stand for.
SHIPPED_MODELS = {DEFAULT_SOURCE: DEFAULT_MODEL_DIR}


def resolve_model_source(source: str | os.PathLike) -> str | os.PathLike:
    """A shipped model's name (``default``) -> its directory; any other source unchanged.

    Raises :class:`ModelNotAvailableError` when a shipped model's files are missing.
    """
    directory = SHIPPED_MODELS.get(os.fspath(source))
    if directory is None:
        return source
    if not (directory / "config.json").is_file():
        raise ModelNotAvailableError(f"the {source!r} model is missing from {directory}; "
                                     f"create it with scripts/make_default_model.sh")
    return directory

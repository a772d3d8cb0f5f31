"""World models shipped with the package, and the one resolver of model names used by every loader and command.

``default`` names the model trained on the built-in simulation (``sim_reach/``, see its README); it is what
the launch files use. ``push_default`` names the push model (``sim_push/``: the sim's push task and table camera,
made by ``scripts/make_push_model.sh``), ``pretrained_sim`` the encoder pretrained by ``jepa pretrain`` on the push
task's recordings (``sim_encoder/``, made by ``scripts/make_sim_encoder.sh``). Any other source (preset name, checkpoint directory, official ``.pt`` file, Hugging
Face id or directory) passes through unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

from jepa_world_model.errors import ModelNotAvailableError

#: Directory of the shipped models.
MODELS_DIR = Path(__file__).resolve().parents[1] / "shipped_models"
#: Source name of the model shipped with the package and its directory.
DEFAULT_SOURCE = "default"
DEFAULT_MODEL_DIR = MODELS_DIR / "sim_reach"
#: Source name of the shipped push model and its directory.
PUSH_SOURCE = "push_default"
PUSH_MODEL_DIR = MODELS_DIR / "sim_push"
#: Source name of the shipped pretrained encoder and its directory.
PRETRAINED_ENCODER_SOURCE = "pretrained_sim"
PRETRAINED_ENCODER_DIR = MODELS_DIR / "sim_encoder"
#: Model names and the shipped directories they stand for.
SHIPPED_MODELS = {DEFAULT_SOURCE: DEFAULT_MODEL_DIR, PUSH_SOURCE: PUSH_MODEL_DIR,
                  PRETRAINED_ENCODER_SOURCE: PRETRAINED_ENCODER_DIR}
#: The script that makes each shipped model.
MAKE_SCRIPTS = {DEFAULT_SOURCE: "scripts/make_default_model.sh", PUSH_SOURCE: "scripts/make_push_model.sh",
                PRETRAINED_ENCODER_SOURCE: "scripts/make_sim_encoder.sh"}


def resolve_model_source(source: str | os.PathLike) -> str | os.PathLike:
    """A shipped model's name (``default``, ``push_default``, ``pretrained_sim``) -> its directory; any other source unchanged.

    Raises :class:`ModelNotAvailableError` when a shipped model's files are missing.
    """
    directory = SHIPPED_MODELS.get(os.fspath(source))
    if directory is None:
        return source
    if not (directory / "config.json").is_file():
        raise ModelNotAvailableError(f"the {source!r} model is missing from {directory}; "
                                     f"create it with {MAKE_SCRIPTS[os.fspath(source)]}")
    return directory

"""ROS-free V-JEPA 2 style world model: video ViT encoder, action-conditioned predictor, checkpoints.

Public API (imported lazily, so ``import jepa_world_model.<submodule>`` does not pull in torch)::

    load_encoder(source, **overrides) -> Encoder        # (B,3,H,W)/(B,H,W,3)/(B,T,3,H,W) -> (B,N,D)
    load_predictor(source, **overrides) -> ACPredictor  # forward(features, actions, states), rollout(...)
    save_checkpoint(directory, encoder=None, predictor=None, metadata=None)

``source``: a preset ("tiny", "vit_l", "vit_h", "vit_g", "vit_g_384"; predictors "tiny", "ac_vit_g"), a
jepa_ros checkpoint directory, an official ``.pt`` file, or (encoders) a Hugging Face hub id / local directory.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_encoder": "encoder", "Encoder": "encoder",
    "load_predictor": "predictor", "ACPredictor": "predictor",
    "save_checkpoint": "checkpoint", "read_checkpoint_config": "checkpoint",
    "EncoderConfig": "config", "PredictorConfig": "config", "ActionSpace": "config", "StateSpace": "config",
    "WorldModelError": "errors", "ConfigError": "errors", "InputError": "errors", "CheckpointError": "errors",
    "ModelNotAvailableError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

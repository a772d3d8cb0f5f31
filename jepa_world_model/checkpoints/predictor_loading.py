"""``load_predictor``: an :class:`ACPredictor` from a preset, a shipped model name, our checkpoint directory or an
official V-JEPA 2-AC ``.pt`` file.

Official files carry weights only: sizes come from tensor shapes; what shapes cannot tell comes from a preset
(``preset=``, default ``ac_vit_g``): grid, time steps, action/state spaces and their ``state_update`` (the
reference's ``ee_pose`` rule for ``ac_vit_g``), and the head count when the file's width is the preset's (or
another preset's). A width that matches no preset needs ``num_heads=``: there is no guess. LayerNorm eps is
the reference's (:data:`~jepa_world_model.checkpoints.files.OFFICIAL_LAYER_NORM_EPS`).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from jepa_world_model.checkpoints.files import (OFFICIAL_KEYS, OFFICIAL_LAYER_NORM_EPS, build_module, checkpoint_part, classify_source,
                         load_strictly, official_part, read_checkpoint_config)
from jepa_world_model.config import PredictorConfig
from jepa_world_model.errors import CheckpointError, ConfigError
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.networks.predictor import ACPredictor
from jepa_world_model.presets import PREDICTOR_PRESETS, predictor_preset


def heads_for_width(width: int, base: PredictorConfig, what: str) -> int:
    """Head count of a predictor of ``width``: ``base``'s when the widths agree, else that of the first preset of
    this width; :class:`ConfigError` saying how to give it when no preset has this width."""
    if width == base.width:
        return base.num_heads
    for preset in PREDICTOR_PRESETS.values():
        if preset.width == width:
            return preset.num_heads
    known = ", ".join(f"{name} {p.width}" for name, p in PREDICTOR_PRESETS.items())
    raise ConfigError(
        f"{what}: predictor width {width} matches no preset ({known}), so its number of attention heads is "
        f"unknown; give it: load_predictor(path, num_heads=N) (jepa model-info: --predictor-heads N)")


def infer_predictor_config(state_dict: dict[str, torch.Tensor], base: PredictorConfig,
                           overrides: dict[str, Any], what: str = "predictor") -> PredictorConfig:
    """Sizes from official weights (widths, depth, MLP, action/state/extrinsics dims) and the reference's
    LayerNorm eps; heads as :func:`heads_for_width` says; grid, max_steps and spaces of matching dims (with
    their state update) from ``base``; ``overrides`` win."""
    for key in ("predictor_embed.weight", "action_encoder.weight", "state_encoder.weight"):
        if key not in state_dict:
            raise CheckpointError(f"predictor weights lack {key!r}; keys start with {sorted(state_dict)[:5]}")
    width, embed_dim = state_dict["predictor_embed.weight"].shape
    fc1 = state_dict.get("predictor_blocks.0.mlp.fc1.weight")
    extrinsics = state_dict.get("extrinsics_encoder.weight")
    inferred: dict[str, Any] = {
        "width": width, "embed_dim": embed_dim,
        "depth": len({k.split(".")[1] for k in state_dict if k.startswith("predictor_blocks.")}),
        "mlp_hidden": fc1.shape[0] if fc1 is not None else 4 * width,
        "extrinsics_dim": extrinsics.shape[1] if extrinsics is not None else None,
        "qkv_bias": "predictor_blocks.0.attn.qkv.bias" in state_dict,
        "action_dim": state_dict["action_encoder.weight"].shape[1],
        "state_dim": state_dict["state_encoder.weight"].shape[1],
        "layer_norm_eps": OFFICIAL_LAYER_NORM_EPS,
    }
    if "num_heads" not in overrides:
        inferred["num_heads"] = heads_for_width(width, base, what)
    sizes = ("width", "depth", "embed_dim", "mlp_hidden")
    inferred["name"] = base.name if all(inferred[k] == getattr(base, k) for k in sizes) else "custom"
    return base.replace(**{**inferred, **overrides})


def load_predictor(source: str | os.PathLike, **overrides: Any) -> ACPredictor:
    """Build an :class:`ACPredictor` from ``source`` and put it in eval mode.

    ``source``: a preset name ("tiny", "ac_vit_g"; random weights seeded by ``seed=``, default 0), "default" (the
    shipped sim model), our checkpoint directory, or an official ``.pt`` file (entry ``predictor``, or
    ``checkpoint_key=``; see the module docstring for ``preset=`` and ``num_heads=``). ``overrides`` are
    :class:`PredictorConfig` fields plus ``action_dim`` / ``state_dim``.
    """
    seed = overrides.pop("seed", 0)
    checkpoint_key = overrides.pop("checkpoint_key", None)
    preset = overrides.pop("preset", "ac_vit_g")
    source = resolve_model_source(source)
    kind = classify_source(source, PREDICTOR_PRESETS)
    encoder_id = None
    if kind == "preset":
        config = predictor_preset(os.fspath(source)).replace(**overrides)
        return build_module(lambda: ACPredictor(config), seed).eval()
    if kind == "ours":
        config_dict, state_dict = checkpoint_part(source, "predictor")
        config = PredictorConfig.from_dict(config_dict).replace(**overrides)
        encoder_id = read_checkpoint_config(source).get("encoder_id")
    elif kind == "official":
        keys = (checkpoint_key,) if checkpoint_key else OFFICIAL_KEYS["predictor"]
        state_dict = official_part(source, keys)
        config = infer_predictor_config(state_dict, predictor_preset(preset), overrides, os.fspath(source))
    else:
        raise ConfigError(f"{source}: Hugging Face models hold no action-conditioned predictor; load it from an "
                          f"official .pt file (e.g. vjepa2-ac-vitg.pt) or a jepa_ros checkpoint directory")
    with torch.device("meta"):
        predictor = ACPredictor(config)
    load_strictly(predictor, state_dict, "predictor")
    predictor.encoder_id = encoder_id
    return predictor.eval()

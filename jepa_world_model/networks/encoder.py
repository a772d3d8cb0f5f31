"""V-JEPA 2 style video ViT encoder with built-in preprocessing, and ``load_encoder``.

Architecture: Conv3d tubelet patch embedding (kernel = stride = tubelet x patch x patch), pre-norm transformer
blocks with 3D rotary positions (:mod:`jepa_world_model.networks.rope`), final LayerNorm, optionally a pooled head
(``EncoderConfig.pooled_dim``: the patch features of each tubelet averaged, then a two-layer MLP, so one token per
tubelet), optionally a further layer-norm without affine on the output. Parameter names follow the official code (``patch_embed.proj``,
``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``).
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jepa_world_model.checkpoints.files import (OFFICIAL_KEYS, OFFICIAL_LAYER_NORM_EPS, FingerprintCache, build_module, checkpoint_part,
                         classify_source, load_strictly, official_part)
from jepa_world_model.config import EncoderConfig
from jepa_world_model.errors import CheckpointError, ConfigError, InputError
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.networks.preprocessing import preprocess
from jepa_world_model.presets import ENCODER_PRESETS, encoder_preset, encoder_preset_for_width
from jepa_world_model.networks.rope import grid_positions, rope_tables
from jepa_world_model.networks.vit import Block

#: Entries of official encoder files that a RoPE encoder does not use (dropped before strict loading).
UNUSED_OFFICIAL_KEYS = ("pos_embed",)


class PatchEmbed3D(nn.Module):
    """Tubelet patch embedding: (B, 3, T, H, W) -> (B, width, T/tubelet, H/patch, W/patch)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.proj = nn.Conv3d(3, config.width, kernel_size=kernel, stride=kernel)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Apply the Conv3d."""
        return self.proj(pixels)


class Encoder(nn.Module):
    """Maps images (B,3,H,W)/(B,H,W,3) or clips (B,T,3,H,W)/(B,T,H,W,3), uint8 or float in [0,1], to patch
    features (B, N, D); see :mod:`jepa_world_model.networks.preprocessing` for the preprocessing applied first."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed3D(config)
        self.blocks = nn.ModuleList(
            Block(config.width, config.num_heads, config.mlp_hidden, config.qkv_bias, config.layer_norm_eps)
            for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        if config.pooled_dim:
            self.head = nn.Sequential(nn.Linear(config.width, config.mlp_hidden), nn.GELU(),
                                      nn.Linear(config.mlp_hidden, config.pooled_dim))
        self._fingerprint = FingerprintCache()

    @property
    def embed_dim(self) -> int:
        """D, the feature width."""
        return self.config.feature_dim

    @property
    def model_id(self) -> str:
        """Identifies weights and preprocessing (16 hex chars); equal for fp32/bf16 copies of the same model."""
        return self._fingerprint.get(self, self.config.to_dict())

    def num_tokens(self, image_size: int | tuple[int, int] | None = None, num_frames: int = 1) -> int:
        """N for inputs of ``image_size`` (int or (H, W); default: the crop size) and ``num_frames`` frames."""
        cfg = self.config
        if image_size is not None:
            height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
            if cfg.resize_mode == "none" and (height, width) != (cfg.crop_size, cfg.crop_size):
                raise InputError(f"image size {height}x{width} != crop size {cfg.crop_size} with resize_mode='none'")
        if num_frames != 1 and num_frames % cfg.tubelet_size:
            raise InputError(f"num_frames={num_frames} is not 1 or a multiple of the tubelet size {cfg.tubelet_size}")
        return max(1, num_frames // cfg.tubelet_size) * cfg.token_grid**2

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images/clips -> normalised pixels (B, 3, T', crop, crop) on the model's device and dtype."""
        weight = self.patch_embed.proj.weight
        return preprocess(x, self.config, device=weight.device, dtype=weight.dtype)

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (B, 3, T, H, W) (T a multiple of the tubelet, H and W of the patch) -> (B, N, D)."""
        cfg = self.config
        if pixels.ndim != 5 or pixels.shape[1] != 3:
            raise InputError(f"pixels must be (B, 3, T, H, W), got shape {tuple(pixels.shape)}")
        frames, height, width = pixels.shape[2:]
        if frames % cfg.tubelet_size or height % cfg.patch_size or width % cfg.patch_size:
            raise InputError(f"pixels (T, H, W)=({frames}, {height}, {width}) must be multiples of "
                             f"({cfg.tubelet_size}, {cfg.patch_size}, {cfg.patch_size})")
        tokens = self.patch_embed(pixels)
        x = tokens.flatten(2).transpose(1, 2)
        cos, sin = rope_tables(cfg.head_dim, *grid_positions(*tokens.shape[2:], device=x.device))
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.norm(x)
        if cfg.pooled_dim:  # tokens are time-major: (T', grid, grid) flattened
            x = self.head(x.reshape(x.shape[0], tokens.shape[2], -1, x.shape[-1]).mean(dim=2))
        if cfg.output_layer_norm:
            x = layer_norm_features(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images or clips -> features (B, N, D) in the model's dtype."""
        return self.encode_pixels(self.preprocess(x))


def infer_encoder_config(state_dict: dict[str, torch.Tensor], overrides: dict[str, Any],
                         what: str = "encoder") -> EncoderConfig:
    """Architecture from official weights: sizes from tensor shapes, the reference's LayerNorm eps, heads/crop
    from the released preset of that width (``overrides`` win, e.g. ``num_heads=`` for other widths or
    ``crop_size=384``). A width no preset has needs ``num_heads``: :class:`ConfigError` says so."""
    if "patch_embed.proj.weight" not in state_dict:
        raise CheckpointError(f"encoder weights lack 'patch_embed.proj.weight'; keys start with "
                              f"{sorted(state_dict)[:5]}")
    width, _, tubelet, patch, _ = state_dict["patch_embed.proj.weight"].shape
    fc1 = state_dict.get("blocks.0.mlp.fc1.weight")
    inferred = {"width": width, "patch_size": patch, "tubelet_size": tubelet,
                "depth": len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")}),
                "mlp_hidden": fc1.shape[0] if fc1 is not None else 4 * width,
                "qkv_bias": "blocks.0.attn.qkv.bias" in state_dict, "layer_norm_eps": OFFICIAL_LAYER_NORM_EPS}
    try:
        base = encoder_preset_for_width(width)
    except ConfigError as exc:
        if "num_heads" not in overrides:
            raise ConfigError(f"{what}: {exc}, so its number of attention heads is unknown; give it: "
                              f"load_encoder(path, num_heads=N) (jepa model-info: --encoder-heads N)") from exc
        base = EncoderConfig(name="custom", width=width, num_heads=overrides["num_heads"])
    if (inferred["depth"], inferred["mlp_hidden"]) != (base.depth, base.mlp_hidden):
        inferred["name"] = "custom"
    return base.replace(**{**inferred, **overrides})


def load_encoder(source: str | os.PathLike, **overrides: Any) -> Encoder:
    """Build an :class:`Encoder` from ``source`` and put it in eval mode.

    ``source``: a preset name (random weights, seeded by ``seed=`` (default 0)), "default" (the shipped sim model),
    our checkpoint directory, an official ``.pt`` file (entry ``encoder``, else ``target_encoder``; pick another
    with ``checkpoint_key=``; an unused ``pos_embed`` is dropped), a local Hugging Face directory or hub id.
    ``overrides`` are :class:`EncoderConfig` fields (e.g. ``output_layer_norm=True``, ``resize_mode="if_needed"``,
    ``num_heads`` / ``crop_size`` for official files).
    """
    seed = overrides.pop("seed", 0)
    checkpoint_key = overrides.pop("checkpoint_key", None)
    source = resolve_model_source(source)
    kind = classify_source(source, ENCODER_PRESETS)
    if kind == "preset":
        config = encoder_preset(os.fspath(source)).replace(**overrides)
        return build_module(lambda: Encoder(config), seed).eval()
    if kind == "ours":
        config_dict, state_dict = checkpoint_part(source, "encoder")
        config = EncoderConfig.from_dict(config_dict).replace(**overrides)
    elif kind == "official":
        keys = (checkpoint_key,) if checkpoint_key else OFFICIAL_KEYS["encoder"]
        state_dict = official_part(source, keys)
        for key in UNUSED_OFFICIAL_KEYS:
            state_dict.pop(key, None)
        config = infer_encoder_config(state_dict, overrides, os.fspath(source))
    else:
        from jepa_world_model.checkpoints.hf import load_hf_encoder

        config, state_dict = load_hf_encoder(os.fspath(source), local_dir=kind == "hf_dir")
        config = config.replace(**overrides)
    with torch.device("meta"):
        encoder = Encoder(config)
    load_strictly(encoder, state_dict, "encoder")
    return encoder.eval()

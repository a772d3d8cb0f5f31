"""Image/clip preprocessing of the encoder: layout, value range, resize + centre crop, normalisation, tubelets.

Input: images (B,3,H,W) or (B,H,W,3), clips (B,T,3,H,W) or (B,T,H,W,3); uint8 in [0,255] or float in [0,1].
Output: (B, 3, T', crop, crop) float pixels normalised with the config's mean/std, where a single image is
repeated to fill one tubelet (T' = tubelet_size) and clips need T divisible by the tubelet size.

Resize (``EncoderConfig.resize_mode``): the short side goes to ``int(crop_size * resize_ratio)`` (bilinear,
antialiased; 256/224 is the V-JEPA 2 evaluation ratio), then the centre ``crop_size`` square is cut out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from jepa_world_model.config import EncoderConfig
from jepa_world_model.errors import InputError


def to_channels_first_clip(x: torch.Tensor) -> torch.Tensor:
    """Any accepted layout -> (B, T, 3, H, W), same dtype; raises :class:`InputError` on bad shapes."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"encoder input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (4, 5):
        raise InputError(
            f"encoder input must be images (B,3,H,W)/(B,H,W,3) or clips (B,T,3,H,W)/(B,T,H,W,3); got shape "
            f"{tuple(x.shape)} (add a batch dim with x[None] for a single image)")
    clip = x if x.ndim == 5 else x.unsqueeze(1)
    if clip.shape[2] == 3:
        pass
    elif clip.shape[-1] == 3:
        clip = clip.permute(0, 1, 4, 2, 3)
    else:
        raise InputError(
            f"encoder input needs 3 colour channels (RGB) in dim {x.ndim - 3} or last; got shape {tuple(x.shape)}")
    if 0 in clip.shape:
        raise InputError(f"encoder input has an empty dimension: shape {tuple(x.shape)}")
    return clip


def to_unit_float(clip: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 / 255; float -> float32, checked finite and within [0, 1]."""
    if clip.dtype == torch.uint8:
        return clip.to(torch.float32) / 255.0
    if not clip.is_floating_point():
        raise InputError(f"encoder input must be uint8 or floating point, got dtype {clip.dtype}")
    clip = clip.to(torch.float32)
    if not torch.isfinite(clip).all():
        raise InputError("encoder input contains NaN or Inf")
    lo, hi = clip.aminmax()
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise InputError(
            f"float encoder input must be in [0, 1] (got [{lo.item():.4g}, {hi.item():.4g}]); pass uint8 for [0, 255]")
    return clip


def resize_and_crop(frames: torch.Tensor, config: EncoderConfig) -> torch.Tensor:
    """(M, 3, H, W) float -> (M, 3, crop, crop) following ``config.resize_mode``."""
    crop = config.crop_size
    height, width = frames.shape[-2:]
    mode = config.resize_mode
    if mode == "none" or (mode == "if_needed" and height == crop and width == crop):
        if height != crop or width != crop:
            raise InputError(
                f"image size {height}x{width} != crop size {crop}x{crop} and resize_mode='none'; resize the "
                f"images or load the encoder with resize_mode='if_needed'")
        return frames
    short = int(crop * config.resize_ratio)
    scale = short / min(height, width)
    new_h, new_w = max(short, round(height * scale)), max(short, round(width * scale))
    if (new_h, new_w) != (height, width):
        frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    return frames[..., top:top + crop, left:left + crop]


def preprocess(x: torch.Tensor, config: EncoderConfig, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images or clips (any accepted layout/dtype) -> normalised pixels (B, 3, T', crop, crop) in ``dtype``."""
    clip = to_channels_first_clip(x)
    if device is not None:
        clip = clip.to(device)
    clip = to_unit_float(clip)
    batch, frames = clip.shape[:2]
    tubelet = config.tubelet_size
    if frames == 1:
        pass
    elif frames % tubelet:
        raise InputError(f"clip length T={frames} is not a multiple of the tubelet size {tubelet}")
    flat = resize_and_crop(clip.flatten(0, 1), config)
    mean = torch.tensor(config.mean, dtype=torch.float32, device=flat.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32, device=flat.device).view(1, 3, 1, 1)
    flat = (flat - mean) / std
    pixels = flat.unflatten(0, (batch, frames)).transpose(1, 2)
    if frames == 1:
        pixels = pixels.expand(-1, -1, tubelet, -1, -1)
    return pixels.to(dtype).contiguous()

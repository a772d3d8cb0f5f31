"""A small decoder from frozen patch features back to RGB pictures, for looking at what the model expects.

Visualisation only: it never enters planning or predictor training. It turns the encoder's layer-normed features
(B, N, D) of one image (N = frames x h x w tokens; our sim encoders see one image repeated to a tubelet, so
frames = 1) into the encoder's input crop (B, 3, H, W) in [0, 1]:

1. tokens -> a (frames x D, h, w) grid; a 3x3 convolution over the token grid and a GELU give each token its
   neighbours' context;
2. a per-token linear head makes ``channels`` values for every pixel of its patch (pixel shuffle to H x W);
3. ``depth`` 3x3 convolutions at full resolution smooth the patch seams; their output is added to the head's
   first three channels (coarse colour) and a sigmoid maps it to [0, 1].

Rules: the features are layer-normed again on the way in (affine-free, as the planner's are), so raw predictions
and encoder outputs decode alike; :attr:`DecoderConfig.encoder_id` names the encoder it was trained on
(`jepa_world_model.checkpoints.decoder_loading.check_decoder` refuses another).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jepa_world_model.config import EncoderConfig
from jepa_world_model.errors import ConfigError, InputError
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.networks.preprocessing import resize_and_crop, to_channels_first_clip, to_unit_float


@dataclass(frozen=True)
class DecoderConfig:
    """Shape and size of a :class:`FeatureDecoder`, and the encoder whose features it reads."""

    embed_dim: int                     # D, the encoder's feature width
    grid: tuple[int, int]              # (h, w) tokens per frame
    image_size: int                    # the encoder's crop size H = W (px)
    patch_size: int                    # px per token side
    frames: int = 1                    # token frames per image (1: one image repeated to a tubelet)
    hidden: int = 128                  # width of the token stage
    channels: int = 8                  # values per pixel made by the head
    conv_width: int = 16               # width of the full-resolution convolutions
    depth: int = 2                     # full-resolution 3x3 convolutions (the last one makes RGB)
    encoder_id: str = ""               # model_id of the encoder it was trained on

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(v) for v in self.grid))
        for name in ("embed_dim", "image_size", "patch_size", "frames", "hidden", "channels", "conv_width",
                     "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"DecoderConfig.{name} must be a positive int, got {value!r}")
        if len(self.grid) != 2 or min(self.grid) <= 0:
            raise ConfigError(f"DecoderConfig.grid must be two positive ints (h, w), got {self.grid!r}")
        if self.grid[0] * self.patch_size != self.image_size or self.grid[1] * self.patch_size != self.image_size:
            raise ConfigError(f"DecoderConfig: grid {self.grid} x patch {self.patch_size} px does not cover the "
                              f"{self.image_size} px image")
        if self.channels < 3:
            raise ConfigError(f"DecoderConfig.channels must be at least 3 (RGB), got {self.channels}")

    @property
    def num_tokens(self) -> int:
        """N, the tokens of one image's features."""
        return self.frames * self.grid[0] * self.grid[1]

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        data = dataclasses.asdict(self)
        data["grid"] = list(self.grid)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DecoderConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown DecoderConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    @classmethod
    def for_encoder(cls, encoder: Any, **sizes: Any) -> "DecoderConfig":
        """The config that decodes ``encoder``'s features of one image (``sizes``: hidden, channels, ...)."""
        cfg = encoder.config
        grid = cfg.grid_size
        frames = encoder.num_tokens() // (grid * grid)
        return cls(embed_dim=encoder.embed_dim, grid=(grid, grid), image_size=cfg.crop_size,
                   patch_size=cfg.patch_size, frames=frames, encoder_id=encoder.model_id, **sizes)


class FeatureDecoder(nn.Module):
    """Features (B, N, D) -> pictures (B, 3, H, W) in [0, 1]; see the module docstring for the layers."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.metadata: dict = {}  # what its checkpoint records of its training (set by the loader)
        c = config
        self.context = nn.Conv2d(c.frames * c.embed_dim, c.hidden, kernel_size=3, padding=1)
        self.head = nn.Conv2d(c.hidden, c.channels * c.patch_size ** 2, kernel_size=1)
        widths = [c.channels] + [c.conv_width] * (c.depth - 1) + [3]
        self.smooth = nn.ModuleList(nn.Conv2d(a, b, kernel_size=3, padding=1) for a, b in zip(widths, widths[1:]))

    @property
    def encoder_id(self) -> str:
        """model_id of the encoder whose features it decodes."""
        return self.config.encoder_id

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, D) features -> (B, 3, H, W) float in [0, 1]."""
        c = self.config
        if features.ndim != 3 or features.shape[1:] != (c.num_tokens, c.embed_dim):
            raise InputError(f"decoder input must be (B, {c.num_tokens}, {c.embed_dim}) features, got shape "
                             f"{tuple(features.shape)}")
        h, w = c.grid
        x = layer_norm_features(features.float())
        x = x.reshape(-1, c.frames, h, w, c.embed_dim).permute(0, 1, 4, 2, 3).reshape(-1, c.frames * c.embed_dim, h, w)
        x = self.head(F.gelu(self.context(x)))
        x = F.pixel_shuffle(x, c.patch_size)
        y = x
        for i, conv in enumerate(self.smooth):
            y = conv(y if i == 0 else F.gelu(y))
        return torch.sigmoid(x[:, :3] + y)

    @torch.inference_mode()
    def decode_images(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """Features (B, N, D) or (N, D) on any device -> pictures (B, H, W, 3) uint8 (a single (N, D): B = 1)."""
        x = torch.as_tensor(features)
        if x.ndim == 2:
            x = x[None]
        weight = self.head.weight
        pixels = self(x.to(device=weight.device, dtype=weight.dtype))
        return (pixels.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def encoder_crop(frames: np.ndarray, config: EncoderConfig, batch_size: int = 256) -> np.ndarray:
    """Frames (M, H, W, 3) uint8 -> what the encoder sees of them before normalisation: its crop (M, crop, crop,
    3) uint8 (the decoder's training target)."""
    out = []
    for start in range(0, len(frames), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch_size]))
        clip = to_unit_float(to_channels_first_clip(batch))
        crop = resize_and_crop(clip.flatten(0, 1), config)
        out.append((crop.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy())
    return np.concatenate(out) if out else np.zeros((0, config.crop_size, config.crop_size, 3), np.uint8)


def psnr(pictures: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio (dB, peak 255) of each picture (B, H, W, 3) uint8 against its target."""
    error = (pictures.astype(np.float64) - targets.astype(np.float64)) ** 2
    mse = np.maximum(error.reshape(len(error), -1).mean(axis=1), 1e-10)
    return 10.0 * np.log10(255.0 ** 2 / mse)

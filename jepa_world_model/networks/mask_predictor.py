"""The networks of V-JEPA pretraining: the encoder run on the visible tokens only, and the narrow predictor that
fills in the masked tokens' features from them.

Both work on index sets of a clip's token grid (see :mod:`jepa_world_model.training.masks`): each token keeps the 3-D
rotary position of its place in the full grid, so an encoder that saw only the context during pretraining sees
the same positions when it encodes whole clips later.
"""
from __future__ import annotations

import torch
from torch import nn

from jepa_world_model.checkpoints.files import init_weights
from jepa_world_model.networks.encoder import Encoder
from jepa_world_model.errors import ConfigError
from jepa_world_model.networks.rope import grid_positions, rope_tables
from jepa_world_model.networks.vit import Block


def token_rope(head_dim: int, grid: tuple[int, int, int], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables (B, 1, L, head_dim) for the tokens ``index`` (B, L) of a ``grid`` (T', H', W') in raster
    order; they broadcast over the heads of (B, heads, L, head_dim) queries and keys."""
    t, h, w = (p[index.reshape(-1)] for p in grid_positions(*grid, device=index.device))
    cos, sin = rope_tables(head_dim, t, h, w)
    shape = (index.shape[0], 1, index.shape[1], head_dim)
    return cos.view(shape), sin.view(shape)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B, L) of tokens ``x`` (B, N, D) -> (B, L, D)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def encode_visible(encoder: Encoder, pixels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Encoder features (B, L, D) of the tokens ``index`` (B, L) of normalised pixels (B, 3, T, H, W), computed
    from those tokens alone (the others are dropped after the patch embedding). Final LayerNorm included, the
    optional affine-free output layer-norm not."""
    tokens = encoder.patch_embed(pixels)
    grid = tuple(tokens.shape[2:])
    x = gather_tokens(tokens.flatten(2).transpose(1, 2), index)
    cos, sin = token_rope(encoder.config.head_dim, grid, index)
    for block in encoder.blocks:
        x = block(x, cos, sin)
    return encoder.norm(x)


class MaskPredictor(nn.Module):
    """Predicts the features of target tokens from context features (V-JEPA's predictor, parameter names as in
    the reference): context features are embedded to the narrow ``width``, each target token starts as the
    learned mask token of its mask kind (initialised at zero), all carry their grid positions as RoPE, and the
    target outputs are projected back to the encoder width."""

    def __init__(self, embed_dim: int, width: int, depth: int, num_heads: int, num_mask_kinds: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        if width % num_heads:
            raise ConfigError(f"predictor width {width} is not divisible by its {num_heads} heads")
        self.num_heads = num_heads
        self.predictor_embed = nn.Linear(embed_dim, width)
        self.mask_tokens = nn.Parameter(torch.zeros(num_mask_kinds, width))
        self.predictor_blocks = nn.ModuleList(Block(width, num_heads, 4 * width) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(width, eps=1e-6)
        self.predictor_proj = nn.Linear(width, embed_dim)
        for offset, part in enumerate((self.predictor_embed, self.predictor_blocks, self.predictor_norm,
                                       self.predictor_proj)):
            init_weights(part, seed + offset)

    def forward(self, context: torch.Tensor, context_index: torch.Tensor, target_index: torch.Tensor,
                grid: tuple[int, int, int], kind: int = 0) -> torch.Tensor:
        """Context features (B, Nc, D) at ``context_index`` (B, Nc) -> predicted features (B, Nt, D) at
        ``target_index`` (B, Nt) of the token grid ``grid``; ``kind`` picks the mask token."""
        batch, n_target = target_index.shape
        x = self.predictor_embed(context)
        masks = self.mask_tokens[kind].to(x.dtype).expand(batch, n_target, -1)
        x = torch.cat([x, masks], dim=1)
        cos, sin = token_rope(x.shape[-1] // self.num_heads, grid, torch.cat([context_index, target_index], dim=1))
        for block in self.predictor_blocks:
            x = block(x, cos, sin)
        return self.predictor_proj(self.predictor_norm(x[:, -n_target:]))

"""Transformer building blocks shared by the encoder and the predictor (official V-JEPA 2 parameter names)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rope


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection and rotary positions."""

    def __init__(self, width: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)

    def qkv_heads(self, x: torch.Tensor, cos: torch.Tensor,
                  sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, W) -> rotated q, k and v, each (B, heads, L, head_dim)."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled dot-product attention of (B, heads, Lq, hd) queries; returns the projected (B, Lq, W)."""
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over (B, L, W); ``mask`` (L, L) bool, True = may attend."""
        return self.attend(*self.qkv_heads(x, cos, sin), mask)


class MLP(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., W) -> (..., W)."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, width: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, mlp_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, W) -> (B, L, W)."""
        x = x + self.attn(self.norm1(x), cos, sin, mask)
        return x + self.mlp(self.norm2(x))

    def forward_cached(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                       past: tuple[torch.Tensor, torch.Tensor] | None,
                       mask: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Like :meth:`forward` for new tokens ``x`` that also attend to cached keys/values ``past``.

        ``past`` tensors may have batch 1 against a larger batch of ``x`` (they are broadcast). Returns the
        output and the keys/values of past + new tokens (for the next call).
        """
        q, k, v = self.attn.qkv_heads(self.norm1(x), cos, sin)
        if past is not None:
            pk, pv = past
            if pk.shape[0] != k.shape[0]:
                pk, pv = pk.expand(k.shape[0], -1, -1, -1), pv.expand(k.shape[0], -1, -1, -1)
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        x = x + self.attn.attend(q, k, v, mask)
        return x + self.mlp(self.norm2(x)), (k, v)

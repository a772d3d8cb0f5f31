"""Transformer building blocks shared by the encoder and the predictor (official V-JEPA 2 parameter names)."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from jepa_world_model.networks.rope import apply_rope


def block_causal_mask(steps: int, tokens_per_step: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(L, L) bool, True where query token may attend to key token: key step <= query step."""
    step = torch.arange(steps * tokens_per_step, device=device) // tokens_per_step
    return step.unsqueeze(1) >= step.unsqueeze(0)


def _block_diagonal(x: torch.Tensor) -> torch.Tensor:
    """(heads, L, hd) -> (heads*hd, L*heads) with ``x[h, i]`` in rows ``h*hd:(h+1)*hd`` of column ``i*heads + h``,
    so that ``y (B, heads*hd) @ result`` gives per-head dot products ``y_h . x[h, i]`` laid out (B, L, heads)."""
    heads, length, hd = x.shape
    out = x.new_zeros(heads, hd, length, heads)
    for h in range(heads):
        out[h, :, :, h] = x[h].T
    return out.reshape(heads * hd, length * heads)


class SharedTokens(NamedTuple):
    """A block's view of tokens that every sample of a batch shares (see :meth:`Block.share`)."""

    x: torch.Tensor        # (Ls, W) block input (residual stream) of the shared tokens
    q_cols: torch.Tensor   # (W, Ls*heads) scaled rotated queries of the shared tokens, block-diagonal
    out: torch.Tensor      # (Ls, heads, hd) their attention output over the shared keys only
    lse: torch.Tensor      # (Ls, heads) log-sum-exp of their scaled scores over the shared keys
    k: torch.Tensor        # (heads, Lk, hd) shared keys: cached past keys, then the shared tokens' keys
    v: torch.Tensor        # (heads, Lk, hd) shared values, same order
    k_cols: torch.Tensor   # (W, Lk*heads) scaled shared keys, block-diagonal


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

    # -- one per-sample token against many shared tokens ------------------------------------------------------
    # Softmax attention over a key set split into shared keys S and one extra key e is exact as
    #   out = out_S + sigmoid(s_e - lse_S) * (v_e - out_S),
    # with out_S the attention output over S alone, lse_S the log-sum-exp of the scores over S and s_e the
    # score of e. So when a batch differs only in one token, the shared tokens' queries, keys, values, their
    # attention among themselves and lse_S are computed once (`share`), and per sample only the own token's
    # projections and a few (B, L, heads) scores remain (`forward_split`).

    def share(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              past: tuple[torch.Tensor, torch.Tensor] | None = None) -> SharedTokens:
        """Precompute what the shared tokens ``x`` (Ls, W) (tables (Ls, hd)) contribute to
        :meth:`forward_split`; ``past`` (batch-1 keys/values (1, heads, Lp, hd)) are attended to as well."""
        q, k, v = (t[0] for t in self.attn.qkv_heads(self.norm1(x)[None], cos, sin))
        if past is not None:
            k, v = torch.cat([past[0][0], k], dim=1), torch.cat([past[1][0], v], dim=1)
        scale = 1.0 / math.sqrt(q.shape[-1])
        scores = (q @ k.transpose(1, 2)) * scale
        lse = scores.logsumexp(dim=-1)
        out = ((scores - lse.unsqueeze(-1)).exp() @ v).to(v.dtype)
        return SharedTokens(x=x, q_cols=_block_diagonal(q * scale), out=out.transpose(0, 1).contiguous(),
                            lse=lse.T.contiguous(), k=k, v=v, k_cols=_block_diagonal(k * scale))

    def forward_split(self, shared: SharedTokens, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The block on a batch of sequences [own token ``x`` (B, W) (tables (1, hd)), shared tokens], all
        attending to each other and to the shared past. Same result as :meth:`forward_cached` on the
        materialised batch: returns (B, 1+Ls, W) and the own token's keys/values (B, heads, 1, hd).
        Inference only (it writes into preallocated buffers)."""
        batch, width = x.shape
        heads = self.attn.num_heads
        q, k, v = self.attn.qkv_heads(self.norm1(x)[:, None], cos, sin)
        k_flat, v_heads = k.reshape(batch, width), v.reshape(batch, 1, heads, -1)
        length = shared.x.shape[0]
        dtype = v.dtype  # explicit casts keep lerp's operands alike under autocast
        out = v.new_empty(batch, 1 + length, heads, width // heads)
        # shared queries: their own softmax plus the sample's key
        weight = torch.sigmoid((k_flat @ shared.q_cols).view(batch, length, heads) - shared.lse)
        torch.lerp(shared.out, v_heads, weight.unsqueeze(-1).to(dtype), out=out[:, 1:])
        # the sample's query over the shared keys plus itself
        scale = 1.0 / math.sqrt(q.shape[-1])
        scores = (q.reshape(batch, width) @ shared.k_cols).view(batch, -1, heads).transpose(1, 2)
        lse = scores.logsumexp(dim=-1, keepdim=True)
        own_out = ((scores - lse).exp_().transpose(0, 1) @ shared.v).transpose(0, 1)  # (B, heads, hd)
        own_score = (q * k).sum(dim=-1) * scale  # (B, heads, 1)
        torch.lerp(own_out.to(dtype), v_heads[:, 0], torch.sigmoid(own_score - lse).to(dtype), out=out[:, 0])
        y = self.attn.proj(out.flatten(2))
        y[:, 0] += x
        y[:, 1:] += shared.x
        return y + self.mlp(self.norm2(y)), (k, v)

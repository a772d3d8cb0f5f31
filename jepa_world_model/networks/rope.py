"""3D rotary position embeddings the way V-JEPA 2 applies them.

Each head's channels are split into three equal even-sized parts (time, height, width); leftover channels are
not rotated. Within a part of size ``d`` the frequencies are ``10000 ** (-j / (d/2))`` for ``j < d/2`` and the
angle table is that vector written twice, ``[f_0..f_{d/2-1}, f_0..f_{d/2-1}]``, while the rotation acts on
interleaved channel pairs ``(2i, 2i+1)``. So the two members of a pair turn by different angles: this is the
"frequency quirk" of the reference code, kept here because released weights depend on it.

Tables are computed once per sequence layout as ``cos``/``sin`` of shape (L, head_dim) and shared by all
layers and heads; unrotated channels get angle 0 (cos 1, sin 0).
"""
from __future__ import annotations

import torch


def axis_dim(head_dim: int) -> int:
    """Channels per axis (time, height, width) for a head of ``head_dim`` channels."""
    return 2 * ((head_dim // 3) // 2)


def _axis_angles(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(L,) positions -> (L, dim) angles in the reference layout (frequency vector repeated twice)."""
    omega = torch.arange(dim // 2, dtype=torch.float32, device=pos.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    freq = pos.to(torch.float32).unsqueeze(-1) * omega
    return torch.cat([freq, freq], dim=-1)


def rope_tables(head_dim: int, t: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                spatial: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (L, head_dim), float32, for tokens at time ``t``, row ``h``, column ``w`` (each (L,)).

    ``spatial`` (bool (L,)) marks tokens that get the height/width rotation; the others (action/state tokens)
    only get the temporal part. Default: all tokens are spatial.
    """
    d = axis_dim(head_dim)
    angles = torch.zeros(t.shape[0], head_dim, dtype=torch.float32, device=t.device)
    if d > 0:
        angles[:, :d] = _axis_angles(t, d)
        hw = torch.cat([_axis_angles(h, d), _axis_angles(w, d)], dim=-1)
        if spatial is not None:
            hw = hw * spatial.to(hw.dtype).unsqueeze(-1)
        angles[:, d:3 * d] = hw
    return angles.cos(), angles.sin()


def grid_positions(frames: int, rows: int, cols: int,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Time, row and column index of every token of a (frames, rows, cols) grid in raster order."""
    t, h, w = torch.meshgrid(torch.arange(frames, device=device), torch.arange(rows, device=device),
                             torch.arange(cols, device=device), indexing="ij")
    return t.reshape(-1), h.reshape(-1), w.reshape(-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., L, head_dim) with tables (L, head_dim) broadcast over the leading dims.

    Pair (x0, x1) becomes (x0 cos0 - x1 sin0, x1 cos1 + x0 sin1): ``x * cos`` plus the pair-swapped ``x`` times
    ``sin`` with its even channels negated. The table-sized sign flip is cheap; ``x`` is made contiguous first
    because elementwise kernels on head-split views of a fused projection are about twice as slow.
    """
    x = x.contiguous()
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    sin_pairs = sin.unflatten(-1, (-1, 2))
    signed = torch.stack((-sin_pairs[..., 0], sin_pairs[..., 1]), dim=-1).flatten(-2)
    return torch.addcmul(x * cos.to(x.dtype), swapped, signed.to(x.dtype))

"""3-D multi-block masks over a clip's token grid (T', H', W'), the way V-JEPA samples them for pretraining.

One :class:`MultiBlockMask` masks the union of ``num_blocks`` boxes; the box size (temporal extent, spatial area
as a fraction of H' x W', aspect ratio h/w) is drawn once per batch from the configured ranges, every sample
gets its own box positions. The masked tokens are the prediction targets, the rest is the context the encoder
sees. V-JEPA 2 uses two such masks per clip: "short-range" (8 boxes of 15 % of the frame each) and "long-range"
(2 boxes of 70 %), both spanning the whole clip in time.

Every sample of a batch gets the same number of context and of target tokens (the smallest in the batch; the
others drop randomly chosen extra tokens), so a batch is a dense tensor. Token indices are raster order
``t * H' * W' + h * W' + w``, as in :func:`jepa_world_model.networks.rope.grid_positions`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Attempts to draw a mask that leaves at least one context token before giving up.
MAX_TRIES = 100


class MaskError(ValueError):
    """The mask configuration cannot produce a usable mask (for example, one that leaves no context)."""


def _range(name: str, value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not low <= lo <= hi <= high:
        raise MaskError(f"{name} must be a range (min, max) with {low:g} <= min <= max <= {high:g}, got {value}")
    return lo, hi


@dataclass(frozen=True)
class BlockSpec:
    """How one mask's boxes are drawn.

    Args:
        num_blocks: boxes per sample (their union is masked).
        spatial_scale: (min, max) area of a box as a fraction of the H' x W' frame.
        temporal_scale: (min, max) duration of a box as a fraction of T' (1.0: the whole clip).
        aspect_ratio: (min, max) of the box's height / width.
    """

    num_blocks: int
    spatial_scale: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)

    def __post_init__(self) -> None:
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, int) or self.num_blocks < 1:
            raise MaskError(f"num_blocks must be a positive integer, got {self.num_blocks!r}")
        object.__setattr__(self, "spatial_scale", _range("spatial_scale", self.spatial_scale, 0.0, 1.0))
        object.__setattr__(self, "temporal_scale", _range("temporal_scale", self.temporal_scale, 0.0, 1.0))
        object.__setattr__(self, "aspect_ratio", _range("aspect_ratio", self.aspect_ratio, 1e-3, 1e3))


@dataclass(frozen=True)
class MaskBatch:
    """Token indices (raster order) per sample: ``context`` (B, Nc) seen by the encoder, ``target`` (B, Nt)
    predicted; both sorted within a row and disjoint."""

    context: np.ndarray
    target: np.ndarray


class MultiBlockMask:
    """Draws :class:`MaskBatch` es for a token grid ``(frames, rows, cols)`` from a :class:`BlockSpec`.

    Raises :class:`MaskError` at construction when the boxes cannot leave any context token on this grid.
    """

    def __init__(self, grid: tuple[int, int, int], spec: BlockSpec) -> None:
        if len(grid) != 3 or any(int(n) < 1 for n in grid):
            raise MaskError(f"token grid must be 3 positive sizes (T', H', W'), got {grid}")
        self.grid = tuple(int(n) for n in grid)
        self.spec = spec
        self.sample(np.random.default_rng(0), 1)  # fails here, with the reason, if no context can remain

    @property
    def num_tokens(self) -> int:
        """T' * H' * W'."""
        return math.prod(self.grid)

    def block_size(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(t, h, w) of this batch's boxes: duration, area and aspect ratio drawn from the spec's ranges."""
        frames, rows, cols = self.grid
        spec = self.spec
        t_lo, t_hi = spec.temporal_scale
        s_lo, s_hi = spec.spatial_scale
        a_lo, a_hi = spec.aspect_ratio
        t = max(1, int(frames * rng.uniform(t_lo, t_hi)))
        area = rows * cols * rng.uniform(s_lo, s_hi)
        aspect = rng.uniform(a_lo, a_hi)
        h = min(rows, max(1, int(round(math.sqrt(area * aspect)))))
        w = min(cols, max(1, int(round(math.sqrt(area / aspect)))))
        return min(t, frames), h, w

    def _visible(self, rng: np.random.Generator, size: tuple[int, int, int]) -> np.ndarray:
        """Flat bool (N,): True where no box of one sample covers the token."""
        frames, rows, cols = self.grid
        t, h, w = size
        visible = np.ones(self.grid, dtype=bool)
        for _ in range(self.spec.num_blocks):
            start = rng.integers(0, frames - t + 1)
            top = rng.integers(0, rows - h + 1)
            left = rng.integers(0, cols - w + 1)
            visible[start:start + t, top:top + h, left:left + w] = False
        return visible.reshape(-1)

    def sample(self, rng: np.random.Generator, batch: int) -> MaskBatch:
        """Masks for ``batch`` samples; raises :class:`MaskError` when the boxes keep covering every token."""
        size = self.block_size(rng)
        visible = []
        for _ in range(batch):
            for _ in range(MAX_TRIES):
                mask = self._visible(rng, size)
                if mask.any():
                    break
            else:
                raise MaskError(
                    f"masks leave no context: {self.spec.num_blocks} block(s) of {size[0]}x{size[1]}x{size[2]} "
                    f"tokens (spatial scale {self.spec.spatial_scale}, temporal scale {self.spec.temporal_scale}) "
                    f"cover the whole {self.grid[0]}x{self.grid[1]}x{self.grid[2]} token grid in {MAX_TRIES} "
                    f"draws; use fewer or smaller blocks")
            visible.append(mask)
        n_context = min(int(v.sum()) for v in visible)
        n_target = min(int((~v).sum()) for v in visible)
        pick = lambda idx, n: np.sort(rng.choice(idx, n, replace=False)) if len(idx) > n else idx  # noqa: E731
        context = np.stack([pick(np.flatnonzero(v), n_context) for v in visible])
        target = np.stack([pick(np.flatnonzero(~v), n_target) for v in visible])
        return MaskBatch(context=context.astype(np.int64), target=target.astype(np.int64))


def vjepa_masks(grid: tuple[int, int, int], short_blocks: int = 8, short_scale: float = 0.15,
                long_blocks: int = 2, long_scale: float = 0.7, aspect_ratio: tuple[float, float] = (0.75, 1.5),
                temporal_scale: float = 1.0) -> tuple[MultiBlockMask, ...]:
    """V-JEPA 2's pair of masks: short-range (many small boxes) and long-range (few large ones); a count of 0
    leaves that mask out."""
    masks = []
    for blocks, scale in ((short_blocks, short_scale), (long_blocks, long_scale)):
        if blocks:
            spec = BlockSpec(blocks, (scale, scale), (temporal_scale, temporal_scale), aspect_ratio)
            masks.append(MultiBlockMask(grid, spec))
    if not masks:
        raise MaskError("at least one of short_blocks and long_blocks must be positive")
    return tuple(masks)

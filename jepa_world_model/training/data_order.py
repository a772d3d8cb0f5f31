"""The order in which a run visits its clips: a pure function of (seed, step), so a resumed run sees the batches
the uninterrupted one would have.

Rules: epoch e is one permutation of all clips drawn from a generator seeded with (seed, e); the stream of epochs
is cut into global batches; nothing here depends on the rank or on earlier steps.
"""
from __future__ import annotations

import numpy as np


def batch_indices(step: int, batch_size: int, num_clips: int, seed: int) -> np.ndarray:
    """Clip indices of global batch ``step``: positions step*B .. step*B+B-1 of the stream of per-epoch
    permutations (epoch e shuffled by a generator seeded with (seed, e))."""
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(positions // num_clips):
        perm = np.random.default_rng([seed, int(epoch)]).permutation(num_clips)
        mask = positions // num_clips == epoch
        out[mask] = perm[positions[mask] % num_clips]
    return out

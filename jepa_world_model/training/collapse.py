"""Representation-collapse watch for self-supervised pretraining.

A JEPA can reach a low loss by mapping every input to the same features. Two numbers on the target encoder's
(layer-normed) features show it: the spread of each token's features across the clips of a batch (0 when the
encoder ignores its input), and the effective rank of the token features (exp of the entropy of the normalised
singular values, Roy & Vetterli 2007; 1 when all tokens lie on one line, 0 when they are all (nearly) equal).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

LOG = logging.getLogger(__name__)
#: Tokens used for the effective rank (an SVD of more is slow and tells little more).
RANK_TOKENS = 4096
#: Singular values below this fraction of the features' norm are ignored by the effective rank.
RANK_TOLERANCE = 1e-3


class CollapseError(RuntimeError):
    """The features collapsed; training stops."""


def batch_moments(features: torch.Tensor) -> torch.Tensor:
    """(B, N, D) -> (2, N, D): the sum over the batch of the features and of their squares (float64, so ranks
    can add them up before :func:`spread_from_moments`)."""
    x = features.detach().double()
    return torch.stack([x.sum(dim=0), (x * x).sum(dim=0)])


def spread_from_moments(moments: torch.Tensor, count: int) -> float:
    """Mean over tokens and features of the (population) std across ``count`` samples."""
    mean = moments[0] / count
    var = (moments[1] / count - mean * mean).clamp_min(0.0)
    return float(var.sqrt().mean())


def effective_rank(features: torch.Tensor, max_tokens: int = RANK_TOKENS, rel_tol: float = RANK_TOLERANCE) -> float:
    """exp(entropy) of the normalised singular values of the centred token features (..., D) (at most
    ``max_tokens`` of them, evenly spaced). Singular values below ``rel_tol`` times the norm of the uncentred
    features do not count (variations that small are rounding noise, whatever their shape); 0.0 when none is
    left, i.e. every token is (nearly) the same."""
    x = features.detach().float().reshape(-1, features.shape[-1])
    x = x[::max(1, math.ceil(len(x) / max_tokens))]
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    s = s[s > rel_tol * torch.linalg.norm(x)]
    if len(s) == 0:
        return 0.0
    p = s / s.sum()
    return float(torch.exp(-(p * p.log()).sum()))


@dataclass
class CollapseGuard:
    """Warns when the spread or the effective rank falls below its threshold and raises :class:`CollapseError`
    when it stays below for ``patience`` consecutive steps. ``below`` is the current run of such steps."""

    min_std: float
    min_rank: float
    patience: int
    below: int = 0

    def update(self, step: int, std: float, rank: float) -> None:
        """Record one step's numbers; warn on the first low step of a run, raise after ``patience`` of them."""
        low = [f"feature std across the batch {std:.3g} < {self.min_std:g}"] if std < self.min_std else []
        if rank < self.min_rank:
            low.append(f"effective rank {rank:.3g} < {self.min_rank:g}")
        if not low:
            self.below = 0
            return
        self.below += 1
        what = " and ".join(low)
        if self.below == 1:
            LOG.warning("step %d: %s: the target features are collapsing (stopping after %d such steps)", step,
                        what, self.patience)
        if self.below >= self.patience:
            raise CollapseError(
                f"representation collapse at step {step}: {what} for {self.below} consecutive steps; the target "
                f"encoder gives nearly the same features for every input. Try a lower --lr, a higher --ema-start, "
                f"larger masks, or another --init; thresholds: --collapse-std, --collapse-rank, "
                f"--collapse-patience")

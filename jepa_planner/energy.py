"""Goal energies: how far predicted features are from goal features (lower is better)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# pred (B, N, D), goal (N, D) -> energy per candidate (B,)
EnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class EnergyShapeError(ValueError):
    """Prediction and goal tensors do not have compatible shapes."""


def layer_norm_features(x: torch.Tensor) -> torch.Tensor:
    """Layer-norm over the last (feature) dimension, no affine parameters."""
    return F.layer_norm(x, x.shape[-1:])


def l1_energy(pred: torch.Tensor, goal: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean absolute difference over tokens and features between `pred` (B,N,D) and `goal` (N,D).

    With `normalize` both are layer-normed over features first (the V-JEPA 2-AC planning energy).
    Computed in float32 whatever the input dtype, so bf16 models still rank candidates finely.
    """
    if pred.dim() != 3:
        raise EnergyShapeError(f"pred must be (B, N, D), got shape {tuple(pred.shape)}")
    if goal.shape != pred.shape[1:]:
        raise EnergyShapeError(
            f"goal must be (N, D) = {tuple(pred.shape[1:])} to match pred, got {tuple(goal.shape)}")
    pred = pred.float()
    goal = goal.to(device=pred.device, dtype=torch.float32)
    if normalize:
        pred = layer_norm_features(pred)
        goal = layer_norm_features(goal)
    return (pred - goal).abs_().mean(dim=(1, 2))


def raw_l1_energy(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """`l1_energy` without layer-norm (for feature spaces where raw distances are meaningful)."""
    return l1_energy(pred, goal, normalize=False)

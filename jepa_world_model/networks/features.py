"""Feature-space helpers shared by the encoder, the predictor, training and planning energies."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from jepa_world_model.config import FEATURE_NORM_EPS


class FeatureShapeError(ValueError):
    """Prediction and goal tensors do not have compatible shapes."""


def layer_norm_features(x: torch.Tensor) -> torch.Tensor:
    """Layer-norm over the last (feature) dimension without affine parameters (V-JEPA 2's feature norm)."""
    return F.layer_norm(x, x.shape[-1:], eps=FEATURE_NORM_EPS)


def l1_energy(pred: torch.Tensor, goal: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean absolute difference over tokens and features between `pred` (B,N,D) and `goal` (N,D).

    With `normalize` both are layer-normed over features first (the V-JEPA 2-AC planning energy).
    Computed in float32 whatever the input dtype, so bf16 models still rank candidates finely.
    """
    if pred.dim() != 3:
        raise FeatureShapeError(f"pred must be (B, N, D), got shape {tuple(pred.shape)}")
    if goal.shape != pred.shape[1:]:
        raise FeatureShapeError(
            f"goal must be (N, D) = {tuple(pred.shape[1:])} to match pred, got {tuple(goal.shape)}")
    pred = pred.float()
    goal = goal.to(device=pred.device, dtype=torch.float32)
    if normalize:
        pred = layer_norm_features(pred)
        goal = layer_norm_features(goal)
    return (pred - goal).abs_().mean(dim=(1, 2))

"""Goal energies: how far predicted features are from goal features (lower is better).

The L1 energy itself lives in ``jepa_world_model.networks.features`` (offline evaluation and training use it too).
"""
from __future__ import annotations

from typing import Callable

import torch

from jepa_world_model.networks.features import FeatureShapeError as EnergyShapeError
from jepa_world_model.networks.features import l1_energy, layer_norm_features

# pred (B, N, D), goal (N, D) -> energy per candidate (B,)
EnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["EnergyFn", "EnergyShapeError", "l1_energy", "layer_norm_features", "raw_l1_energy"]


def raw_l1_energy(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """`l1_energy` without layer-norm (for feature spaces where raw distances are meaningful)."""
    return l1_energy(pred, goal, normalize=False)

"""`jepa train`'s loss (PredictorLoss) with a real tiny predictor: the plain L1 of V-JEPA 2-AC, and the
change-weighted L1 (`--change-weight`) that makes the few patches that move count more."""
from __future__ import annotations

import pytest
import torch

from jepa_world_model import load_predictor
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.training.predictor_steps import PredictorLoss

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]

N, D = 64, 64


def _clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two frames in which only patch 5 changes, one action, two states."""
    g = torch.Generator().manual_seed(0)
    first = torch.randn(1, 1, N, D, generator=g)
    second = first.clone()
    second[0, 0, 5] += 2.0 * torch.randn(D, generator=g)
    features = layer_norm_features(torch.cat([first, second], dim=1))
    return features, torch.randn(1, 1, 3, generator=g) * 0.01, torch.zeros(1, 2, 3)


def test_change_weight_zero_is_the_plain_l1_and_weights_favour_the_patch_that_moves():
    predictor = load_predictor("tiny")
    features, actions, states = _clip()
    plain = PredictorLoss(predictor, rollout_steps=0)
    with torch.no_grad():
        loss, tf, _ = plain(features, actions, states)
        predicted = layer_norm_features(predictor(features[:, :1], actions, states[:, :1]))
        assert loss.item() == pytest.approx((predicted - features[:, 1:]).abs().mean().item(), rel=1e-6)

        weighted = PredictorLoss(predictor, rollout_steps=0, change_weight=1.0)
        weights = weighted._patch_weights(features)[0, 0, :, 0]
        assert weights[5] > 30.0 and torch.allclose(weights[torch.arange(N) != 5], torch.ones(N - 1))
        per_patch = (predicted - features[:, 1:]).abs().mean(dim=-1)[0, 0]
        expected = (per_patch * weights).sum() / weights.sum()
        assert weighted(features, actions, states)[0].item() == pytest.approx(expected.item(), rel=1e-5)
        # the rollout term is weighted alike, and the weights carry no gradient into the features
        both = PredictorLoss(predictor, rollout_steps=1, change_weight=1.0)
        total, tf_part, rollout_part = both(features, actions, states)
        assert rollout_part.item() == pytest.approx(tf_part.item(), rel=1e-5)
    leaf = features.clone().requires_grad_(True)
    assert not PredictorLoss(predictor, 0, change_weight=1.0)._patch_weights(leaf).requires_grad

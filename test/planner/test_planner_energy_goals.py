"""L1 energy and sub-goal sequences."""
import math

import pytest
import torch

from jepa_planner.energy import EnergyShapeError, l1_energy, raw_l1_energy
from jepa_planner.goals import GoalSequence, GoalSequenceError


def test_l1_energy_is_mean_abs_difference_of_layer_normed_features():
    g = torch.Generator().manual_seed(0)
    pred, goal = torch.randn(5, 16, 32, generator=g), torch.randn(16, 32, generator=g)

    def ln(x):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)

    expected = (ln(pred) - ln(goal)).abs().mean(dim=(1, 2))
    assert torch.allclose(l1_energy(pred, goal), expected, atol=1e-5)
    assert torch.allclose(raw_l1_energy(pred, goal), (pred - goal).abs().mean(dim=(1, 2)))
    # Layer-norm makes the energy blind to per-token scale and offset; the raw energy is not.
    assert torch.allclose(l1_energy(3 * pred + 1, goal), l1_energy(pred, goal), atol=1e-4)
    assert not torch.allclose(raw_l1_energy(3 * pred + 1, goal), raw_l1_energy(pred, goal))
    assert l1_energy(goal[None], goal).item() == pytest.approx(0.0, abs=1e-6)
    # bf16 predictions are scored in float32.
    assert l1_energy(pred.bfloat16(), goal).dtype == torch.float32


def test_l1_energy_shape_errors():
    with pytest.raises(EnergyShapeError, match=r"pred must be \(B, N, D\)"):
        l1_energy(torch.zeros(4, 5), torch.zeros(4, 5))
    with pytest.raises(EnergyShapeError, match=r"goal must be \(N, D\) = \(4, 5\)"):
        l1_energy(torch.zeros(2, 4, 5), torch.zeros(4, 6))


def test_goal_sequence_advances_and_finishes():
    goals = [torch.full((2, 3), float(i)) for i in range(3)]
    seq = GoalSequence(goals, budgets=[3, 2, 2], tolerances=0.1)
    assert torch.equal(seq.current, goals[0]) and seq.index == 0
    assert seq.update(0.5) == "running" and seq.steps_used == 1
    assert seq.update(0.05) == "advanced" and seq.index == 1 and seq.steps_used == 0
    assert torch.equal(seq.current, goals[1])
    assert seq.update(0.1) == "advanced"  # energy equal to the tolerance counts as reached
    assert seq.update(0.0) == "done" and seq.done and not seq.failed and seq.current is None
    assert seq.total_steps == 4
    with pytest.raises(GoalSequenceError, match="after the sequence finished"):
        seq.update(0.0)


def test_goal_sequence_budget_exhaustion_fails_with_reason():
    seq = GoalSequence([torch.zeros(1, 1), torch.ones(1, 1)], budgets=2, tolerances=[0.2, 0.2])
    assert seq.update(0.1) == "advanced"
    assert seq.update(math.nan) == "running"  # a non-finite energy never reaches a goal
    assert seq.update(0.7) == "failed"
    assert seq.failed and not seq.done and seq.current is None
    assert "sub-goal 1 not reached within its budget of 2 steps" in seq.failure_reason
    assert "0.7" in seq.failure_reason


@pytest.mark.parametrize("kwargs, match", [
    (dict(goals=[], budgets=1, tolerances=0.1), "at least one goal"),
    (dict(goals=[torch.zeros(1)] * 2, budgets=[1], tolerances=0.1), "2 goals need 2 budgets"),
    (dict(goals=[torch.zeros(1)], budgets=0, tolerances=0.1), r"budgets\[0\] must be an int >= 1"),
    (dict(goals=[torch.zeros(1)], budgets=1, tolerances=-1.0), r"tolerances\[0\] must be finite"),
])
def test_goal_sequence_rejects_bad_settings(kwargs, match):
    with pytest.raises(GoalSequenceError, match=match):
        GoalSequence(**kwargs)

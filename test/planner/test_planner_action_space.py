"""Feasible-set helpers: bounds validation, L1-ball projection, fixed dims, gripper snapping."""
import pytest
import torch

from jepa_planner.action_space import ActionConstraints, ActionSpaceError, project_l1_ball_, validate_bounds


def _bisection_projection(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Independent L1-ball projection: find the soft threshold by bisection (float64)."""
    v = v.double()
    if v.abs().sum() <= radius:
        return v
    lo, hi = 0.0, float(v.abs().max())
    for _ in range(200):
        mid = (lo + hi) / 2
        if (v.abs() - mid).clamp(min=0).sum() > radius:
            lo = mid
        else:
            hi = mid
    return torch.sign(v) * (v.abs() - hi).clamp(min=0)


def test_l1_projection_matches_bisection_and_keeps_inside_points():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 5, generator=g) * 0.1
    expected = torch.stack([_bisection_projection(row, 0.075) for row in x]).float()
    got = project_l1_ball_(x.clone(), 0.075)
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got.abs().sum(-1) <= 0.075 + 1e-6).all()
    inside = torch.tensor([[0.01, -0.02, 0.0, 0.03, 0.0]])
    assert torch.equal(project_l1_ball_(inside.clone(), 0.075), inside)


def test_validate_bounds_errors_name_the_problem():
    with pytest.raises(ActionSpaceError, match=r"low > high on dims 1 \(0.5 > 0.1\)"):
        validate_bounds([0.0, 0.5], [1.0, 0.1])
    with pytest.raises(ActionSpaceError, match="low contains NaN"):
        validate_bounds([float("nan"), 0.0], [1.0, 1.0])
    with pytest.raises(ActionSpaceError, match="low has 2 dims but high has 3"):
        validate_bounds([0.0, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ActionSpaceError, match="at least one"):
        validate_bounds([], [])
    lo, hi = validate_bounds([-1, -2], [1, 2])
    assert lo.dtype == torch.float32 and hi.tolist() == [1.0, 2.0]


def test_constraints_build_rejects_inconsistent_settings():
    with pytest.raises(ActionSpaceError, match=r"fixed_dims\[3\]"):
        ActionConstraints.build([-1] * 4, [1] * 4, fixed_dims={3: 2.0})
    with pytest.raises(ActionSpaceError, match="gripper_dim 5"):
        ActionConstraints.build([-1] * 4, [1] * 4, gripper_dim=5)
    with pytest.raises(ActionSpaceError, match="gripper_dim 2 is also in fixed_dims"):
        ActionConstraints.build([-1] * 4, [1] * 4, fixed_dims={2: 0.0}, gripper_dim=2)
    with pytest.raises(ActionSpaceError, match="l1_radius must be finite and > 0"):
        ActionConstraints.build([-1] * 4, [1] * 4, l1_radius=-0.1)
    with pytest.raises(ActionSpaceError, match="exclude it"):
        ActionConstraints.build([0.1, -1], [1, 1], l1_radius=0.5)


def test_apply_makes_every_step_feasible():
    # 7-D pose delta: xyz in an L1 ball, rotations fixed at 0, gripper snapped.
    c = ActionConstraints.build([-0.05] * 3 + [-0.1] * 3 + [-1.0], [0.05] * 3 + [0.1] * 3 + [1.0],
                                l1_radius=0.075, fixed_dims={3: 0.0, 4: 0.0, 5: 0.0}, gripper_dim=6,
                                gripper_threshold=0.2)
    assert c.l1_index.tolist() == [0, 1, 2]
    g = torch.Generator().manual_seed(3)
    a = torch.randn(64, 4, 7, generator=g)
    assert c.violation(a) > 0.1
    c.apply_(a)
    assert c.violation(a) <= 1e-6
    assert (a[..., 3:6] == 0).all()
    grip = a[..., 6]
    assert ((grip == 0) | (grip.abs() >= 0.2)).all() and (grip == 0).any() and (grip != 0).any()
    assert (a[..., :3].abs().sum(-1) <= 0.075 + 1e-6).all()
    assert torch.equal(c.neutral(), torch.zeros(7))


def test_neutral_is_the_feasible_point_nearest_zero():
    c = ActionConstraints.build([0.1, -1.0], [0.3, 1.0], fixed_dims={1: 0.5})
    assert torch.allclose(c.neutral(), torch.tensor([0.1, 0.5]))

"""Feasible action sets for planning: per-axis box, per-step L1 ball, fixed dims and a snapped gripper.

All operations are batched over any leading dimensions of an (..., A) action tensor and work in place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch


class ActionSpaceError(ValueError):
    """Invalid bounds or constraint settings (the message names the offending field)."""


def validate_bounds(low: Sequence[float] | torch.Tensor,
                    high: Sequence[float] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check per-axis bounds and return them as float32 CPU tensors of shape (A,)."""
    lo = torch.as_tensor(low, dtype=torch.float32).detach().cpu().reshape(-1).clone()
    hi = torch.as_tensor(high, dtype=torch.float32).detach().cpu().reshape(-1).clone()
    if lo.numel() == 0:
        raise ActionSpaceError("low/high must name at least one action dimension, got none")
    if lo.shape != hi.shape:
        raise ActionSpaceError(f"low has {lo.numel()} dims but high has {hi.numel()}")
    for name, t in (("low", lo), ("high", hi)):
        if torch.isnan(t).any():
            raise ActionSpaceError(f"{name} contains NaN: {t.tolist()}")
    bad = (lo > hi).nonzero().flatten().tolist()
    if bad:
        raise ActionSpaceError(
            "low > high on dims " + ", ".join(f"{i} ({lo[i].item():g} > {hi[i].item():g})" for i in bad))
    return lo, hi


def project_l1_ball_(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of each row of `x` (..., k) onto {v : ||v||_1 <= radius}, in place.

    Sort-based soft-thresholding: rows already inside the ball are left unchanged.
    """
    k = x.shape[-1]
    mag = x.abs()
    u, _ = torch.sort(mag, dim=-1, descending=True)
    css = u.cumsum(dim=-1).sub_(radius)
    j = torch.arange(1, k + 1, device=x.device, dtype=x.dtype)
    # rho = number of leading sorted entries that stay positive after thresholding (always >= 1).
    rho = (u * j > css).sum(dim=-1, keepdim=True).clamp_(min=1)
    theta = css.gather(-1, rho - 1).div_(rho.to(x.dtype)).clamp_(min=0.0)
    return x.copy_(torch.sign(x) * (mag - theta).clamp_(min=0.0))


@dataclass(frozen=True)
class ActionConstraints:
    """The feasible set of one action step; build with `ActionConstraints.build`."""

    low: torch.Tensor            # (A,)
    high: torch.Tensor           # (A,)
    l1_radius: float | None
    l1_index: torch.Tensor       # long (k,), dims inside the L1 ball
    fixed_index: torch.Tensor    # long (f,)
    fixed_values: torch.Tensor   # (f,)
    gripper_dim: int | None
    gripper_threshold: float

    @classmethod
    def build(cls, low: Sequence[float] | torch.Tensor, high: Sequence[float] | torch.Tensor,
              l1_radius: float | None = None, fixed_dims: Mapping[int, float] | None = None,
              gripper_dim: int | None = None, gripper_threshold: float = 0.0,
              l1_dims: Sequence[int] | None = None) -> "ActionConstraints":
        """Validate and assemble constraints.

        `fixed_dims` maps dim -> held value (inside the box). `gripper_dim` is clipped to the box and snapped to 0
        when |v| < `gripper_threshold`. The L1 ball of `l1_radius` covers `l1_dims` (default: every dim that is
        neither fixed nor the gripper) and needs 0 inside the box on those dims.
        """
        lo, hi = validate_bounds(low, high)
        a = lo.numel()
        fixed = dict(fixed_dims or {})
        for d, v in fixed.items():
            _check_dim("fixed_dims", d, a)
            if not math.isfinite(float(v)) or not lo[d] <= float(v) <= hi[d]:
                raise ActionSpaceError(
                    f"fixed_dims[{d}] = {v} must be finite and inside [{lo[d].item():g}, {hi[d].item():g}]")
        if gripper_dim is not None:
            _check_dim("gripper_dim", gripper_dim, a)
            if gripper_dim in fixed:
                raise ActionSpaceError(f"gripper_dim {gripper_dim} is also in fixed_dims")
        if not math.isfinite(gripper_threshold) or gripper_threshold < 0:
            raise ActionSpaceError(f"gripper_threshold must be finite and >= 0, got {gripper_threshold}")
        if l1_dims is None:
            l1_dims = [d for d in range(a) if d not in fixed and d != gripper_dim]
        else:
            l1_dims = list(l1_dims)
            for d in l1_dims:
                _check_dim("l1_dims", d, a)
                if d in fixed:
                    raise ActionSpaceError(f"l1_dims includes fixed dim {d}")
        if l1_radius is not None:
            if not math.isfinite(l1_radius) or l1_radius <= 0:
                raise ActionSpaceError(f"l1_radius must be finite and > 0, got {l1_radius}")
            if not l1_dims:
                raise ActionSpaceError("l1_radius is set but no action dim is free to lie in the L1 ball")
            off = [d for d in l1_dims if not lo[d] <= 0.0 <= hi[d]]
            if off:
                raise ActionSpaceError(f"l1_radius needs 0 inside [low, high] on L1 dims; dims {off} exclude it")
        return cls(low=lo, high=hi, l1_radius=None if l1_radius is None else float(l1_radius),
                   l1_index=torch.tensor(sorted(set(l1_dims)), dtype=torch.long),
                   fixed_index=torch.tensor(sorted(fixed), dtype=torch.long),
                   fixed_values=torch.tensor([float(fixed[d]) for d in sorted(fixed)], dtype=torch.float32),
                   gripper_dim=gripper_dim, gripper_threshold=float(gripper_threshold))

    @property
    def action_dim(self) -> int:
        """Number of action dimensions A."""
        return self.low.numel()

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "ActionConstraints":
        """A copy whose tensors live on `device` with floating dtype `dtype`."""
        return ActionConstraints(
            low=self.low.to(device, dtype), high=self.high.to(device, dtype), l1_radius=self.l1_radius,
            l1_index=self.l1_index.to(device), fixed_index=self.fixed_index.to(device),
            fixed_values=self.fixed_values.to(device, dtype), gripper_dim=self.gripper_dim,
            gripper_threshold=self.gripper_threshold)

    def apply_(self, actions: torch.Tensor) -> torch.Tensor:
        """Make every step of `actions` (..., A) feasible, in place: box, L1 ball, fixed dims, gripper snap."""
        if actions.shape[-1] != self.action_dim:
            raise ActionSpaceError(f"actions have {actions.shape[-1]} dims, constraints expect {self.action_dim}")
        torch.clamp(actions, min=self.low, max=self.high, out=actions)
        if self.l1_radius is not None:
            if self.l1_index.numel() == self.action_dim:
                project_l1_ball_(actions, self.l1_radius)
            else:
                sub = actions.index_select(-1, self.l1_index)
                actions.index_copy_(-1, self.l1_index, project_l1_ball_(sub, self.l1_radius))
        if self.fixed_index.numel():
            actions[..., self.fixed_index] = self.fixed_values
        if self.gripper_dim is not None and self.gripper_threshold > 0:
            g = actions[..., self.gripper_dim]
            g.masked_fill_(g.abs() < self.gripper_threshold, 0.0)
        return actions

    def neutral(self) -> torch.Tensor:
        """The feasible action closest to 'do nothing' (zero), shape (A,)."""
        return self.apply_(torch.zeros_like(self.low))

    def violation(self, actions: torch.Tensor) -> float:
        """Largest constraint violation over all steps of `actions` (..., A); 0.0 when feasible."""
        a = actions.to(self.low.device, self.low.dtype)
        worst = [(self.low - a).clamp(min=0).amax(), (a - self.high).clamp(min=0).amax()]
        if self.l1_radius is not None:
            worst.append((a.index_select(-1, self.l1_index).abs().sum(-1) - self.l1_radius).clamp(min=0).amax())
        if self.fixed_index.numel():
            worst.append((a[..., self.fixed_index] - self.fixed_values).abs().amax())
        if self.gripper_dim is not None and self.gripper_threshold > 0:
            g = a[..., self.gripper_dim].abs()
            worst.append(torch.where(g < self.gripper_threshold, g, torch.zeros_like(g)).amax())
        return float(torch.stack(worst).amax())


def _check_dim(field: str, d: int, action_dim: int) -> None:
    if not isinstance(d, int) or not 0 <= d < action_dim:
        raise ActionSpaceError(f"{field} {d!r} is not an action dim index in [0, {action_dim})")

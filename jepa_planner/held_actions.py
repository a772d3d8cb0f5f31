"""Straight-line lookahead: score each planned action as if it were held for several control steps.

A pushing arm that plans one 2 cm step at a time through an energy landscape that the arm's image dominates takes
curved paths, and a curved approach pushes the object off-centre. Scored by where holding it for ``steps`` control
steps leads, a candidate action is a straight line of up to ``steps`` times the action box, so the planner picks
the straight move towards the goal; the receding horizon still executes only the first control step and replans.
"""
from __future__ import annotations

from typing import Any

import torch


class HeldActions:
    """A dynamics model (``jepa_planner.cem.DynamicsModel``) over ``model`` whose every action lasts ``steps``
    control steps: actions (B, H, A) are rolled out as (B, H * steps, A) and the prediction at the end of each
    hold is returned, (B, H, N, D). ``max_horizon`` is the model's divided by ``steps``."""

    def __init__(self, model: Any, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if model.max_horizon < steps:
            raise ValueError(f"holding each action {steps} steps needs a model that predicts {steps} steps ahead; "
                             f"this one predicts {model.max_horizon}")
        self.model, self.steps = model, steps
        self.max_horizon = model.max_horizon // steps

    @property
    def config(self) -> Any:
        """The wrapped model's configuration (token, feature and action sizes do not change)."""
        return self.model.config

    def _held(self, actions: torch.Tensor) -> torch.Tensor:
        return actions.repeat_interleave(self.steps, dim=1)

    def _ends(self, predictions: torch.Tensor) -> torch.Tensor:
        return predictions[:, self.steps - 1::self.steps]

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """context (1,C,N,D), state (1,C,S), actions (B,H,A) -> predictions at the end of each hold (B,H,N,D)."""
        return self._ends(self.model.rollout(context, state, self._held(actions)))

    def prepare_context(self, context: torch.Tensor, state: torch.Tensor) -> "_PreparedHeld":
        """The model's prepared context (work shared by all samples done once), rolled out with held actions."""
        return _PreparedHeld(self, self.model.prepare_context(context, state))


class _PreparedHeld:
    def __init__(self, held: HeldActions, prepared: Any) -> None:
        self.held, self.prepared = held, prepared
        self.preferred_batch = getattr(prepared, "preferred_batch", None)

    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        return self.held._ends(self.prepared.rollout(self.held._held(actions)))

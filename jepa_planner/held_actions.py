"""Straight-line lookahead: score each planned action as if it were held for several control steps.

A pushing arm that plans one 2 cm step at a time through an energy landscape that the arm's image dominates takes
curved paths, and a curved approach pushes the object off-centre. Scored by where holding it for ``steps`` control
steps leads, a candidate action is a straight line of up to ``steps`` times the action box, so the planner picks
the straight move towards the goal; the receding horizon still executes only the first control step and replans.
With the planner's ``energy_mode`` "closest" a candidate is scored at the frame of its hold closest to the goal, so
a goal nearer than a full hold is not scored as overshot.
"""
from __future__ import annotations

from typing import Any, Callable

import torch


class HeldActions:
    """A dynamics model (``jepa_planner.cem.DynamicsModel``) over ``model`` whose every action lasts ``steps``
    control steps: actions (B, H, A) are rolled out as (B, H * steps, A) and every predicted frame is returned,
    (B, H * steps, N, D), the last of each action's ``steps`` frames (``frames_per_action``) being where its hold
    ends. ``max_horizon`` is the model's divided by ``steps``."""

    def __init__(self, model: Any, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if model.max_horizon < steps:
            raise ValueError(f"holding each action {steps} steps needs a model that predicts {steps} steps ahead; "
                             f"this one predicts {model.max_horizon}")
        self.model, self.steps = model, steps
        self.frames_per_action = steps
        self.max_horizon = model.max_horizon // steps

    @property
    def config(self) -> Any:
        """The wrapped model's configuration (token, feature and action sizes do not change)."""
        return self.model.config

    def _held(self, actions: torch.Tensor) -> torch.Tensor:
        return actions.repeat_interleave(self.steps, dim=1)

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """context (1,C,N,D), state (1,C,S), actions (B,H,A) -> the predictions of every held step (B,H*steps,N,D)."""
        return self.model.rollout(context, state, self._held(actions))

    def prepare_context(self, context: torch.Tensor, state: torch.Tensor) -> "_PreparedHeld":
        """The model's prepared context (work shared by all samples done once, when the model can prepare one),
        rolled out with held actions."""
        prepare = getattr(self.model, "prepare_context", None)
        if not callable(prepare):
            return _PreparedHeld(self, lambda actions: self.model.rollout(context, state, actions), None)
        prepared = prepare(context, state)
        return _PreparedHeld(self, prepared.rollout, getattr(prepared, "preferred_batch", None))


class _PreparedHeld:
    def __init__(self, held: HeldActions, rollout: Callable[[torch.Tensor], torch.Tensor],
                 preferred_batch: int | None) -> None:
        self.held, self._rollout, self.preferred_batch = held, rollout, preferred_batch

    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        return self._rollout(self.held._held(actions))

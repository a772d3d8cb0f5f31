"""Sub-goal sequences with per-goal step budgets (ROS-free bookkeeping for long tasks)."""
from __future__ import annotations

import math
from typing import Sequence

import torch


class GoalSequenceError(ValueError):
    """Invalid goals, budgets or tolerances."""


class GoalSequence:
    """Walk through goal features one sub-goal at a time.

    Call `update(energy)` once per executed control step with the energy against `current` (observed or
    predicted, the caller's choice). energy <= tolerance advances to the next goal; using up a goal's step
    budget without reaching it sets `failed` with a `failure_reason`.
    """

    def __init__(self, goals: Sequence[torch.Tensor], budgets: int | Sequence[int],
                 tolerances: float | Sequence[float]) -> None:
        if len(goals) == 0:
            raise GoalSequenceError("goals must contain at least one goal")
        n = len(goals)
        self.goals = list(goals)
        self.budgets = [budgets] * n if isinstance(budgets, int) else list(budgets)
        self.tolerances = [float(tolerances)] * n if isinstance(tolerances, (int, float)) else \
            [float(t) for t in tolerances]
        if len(self.budgets) != n or len(self.tolerances) != n:
            raise GoalSequenceError(f"{n} goals need {n} budgets and tolerances, got {len(self.budgets)} "
                                    f"and {len(self.tolerances)}")
        for i, b in enumerate(self.budgets):
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise GoalSequenceError(f"budgets[{i}] must be an int >= 1, got {b!r}")
        for i, t in enumerate(self.tolerances):
            if not math.isfinite(t) or t < 0:
                raise GoalSequenceError(f"tolerances[{i}] must be finite and >= 0, got {t!r}")
        self.index = 0
        self.steps_used = 0
        self.total_steps = 0
        self.failure_reason = ""

    @property
    def done(self) -> bool:
        """Every goal reached."""
        return self.index >= len(self.goals)

    @property
    def failed(self) -> bool:
        """A goal's budget ran out before it was reached."""
        return bool(self.failure_reason)

    @property
    def current(self) -> torch.Tensor | None:
        """Features of the goal being pursued, or None when done or failed."""
        return None if self.done or self.failed else self.goals[self.index]

    def update(self, energy: float) -> str:
        """Record one executed step with `energy` against the current goal.

        Returns "advanced" (goal reached, next one active), "done" (last goal reached), "running" or "failed".
        """
        if self.done or self.failed:
            raise GoalSequenceError("update called after the sequence finished "
                                    f"({'failed' if self.failed else 'done'})")
        self.steps_used += 1
        self.total_steps += 1
        tol = self.tolerances[self.index]
        if math.isfinite(energy) and energy <= tol:
            self.index += 1
            self.steps_used = 0
            return "done" if self.done else "advanced"
        budget = self.budgets[self.index]
        if self.steps_used >= budget:
            self.failure_reason = (f"sub-goal {self.index} not reached within its budget of {budget} steps "
                                   f"(last energy {energy:.4g} > tolerance {tol:g})")
            return "failed"
        return "running"

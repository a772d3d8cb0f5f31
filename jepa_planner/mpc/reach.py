"""Goals of the loop: goal features checked against the models, and the state of a running ReachGoal.

Rules: a ReachGoal carries at most `max_goal_images` goal images; goal features must come from the planner's
encoder (when the caller knows the `model_id`), have the models' feature shape and be finite, else
`InvalidGoalError`. A ReachGoal has one step budget per goal (the default when the request gives none) and a
deadline of its summed budgets x `max_step_time` of wall time; a frame counts as fresh input when it is newer than
any seen, younger than `embedding_timeout` and not too far ahead of the clock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from jepa_planner.goals import GoalSequence, GoalSequenceError
from jepa_planner.mpc.decisions import ReachOutcome
from jepa_planner.mpc.errors import InvalidGoalError
from jepa_planner.mpc.inputs import NS, Observation
from jepa_planner.mpc.models import PlannerModels


def goal_tensor(models: PlannerModels, features: np.ndarray | torch.Tensor, model_id: str | None = None,
                field: str = "goal") -> torch.Tensor:
    """Goal features (N, D) on the models' device; InvalidGoalError unless they come from the planner's encoder
    (`model_id`, when given), have the models' shape and are finite."""
    if model_id is not None and model_id != models.model_id:
        raise InvalidGoalError(f"{field}.model_id {model_id!r} is not the planner's encoder {models.model_id!r}")
    goal = torch.as_tensor(features, dtype=torch.float32).to(models.device)
    if tuple(goal.shape) != models.feature_shape:
        raise InvalidGoalError(f"goal features {list(goal.shape)} differ from the models' "
                               f"{list(models.feature_shape)}")
    if not torch.isfinite(goal).all():
        raise InvalidGoalError("goal features contain NaN or Inf")
    return goal


def check_goal_image_count(count: int, max_goal_images: int) -> None:
    """InvalidGoalError when a ReachGoal carries more than `max_goal_images` goal images (checked before any is
    encoded)."""
    if count > max_goal_images:
        raise InvalidGoalError(f"{count} goal_images exceed max_goal_images ({max_goal_images}); split the goal "
                               "or raise the parameter")


def goal_sequence(models: PlannerModels, goals: Sequence[np.ndarray | torch.Tensor], budgets: Sequence[int] | None,
                  default_budget: int, tolerance: float) -> GoalSequence:
    """The checked goals of a ReachGoal request with their budgets (None: `default_budget` each) and tolerance;
    InvalidGoalError says what is wrong with the request."""
    if budgets is not None and len(budgets) != len(goals):
        raise InvalidGoalError(f"step_budgets has {len(budgets)} entries for {len(goals)} goals")
    tensors = [goal_tensor(models, goal) for goal in goals]
    try:
        return GoalSequence(tensors, [int(b) for b in budgets] if budgets is not None else default_budget, tolerance)
    except GoalSequenceError as exc:
        raise InvalidGoalError(str(exc)) from exc


@dataclass
class ReachState:
    """Book-keeping of the running ReachGoal."""

    sequence: GoalSequence
    started: float             # wall time
    deadline: float            # wall time
    last_input: float          # wall time of the last fresh frame
    newest_ns: int = -1        # newest fresh stamp seen
    stepped: bool = False      # a plan went out and awaits judgement on the next observation
    steps: int = 0
    energy: float = math.nan
    end_reason: str = ""       # set by `MPCLoop.end`, reported by the next step

    @classmethod
    def start(cls, sequence: GoalSequence, wall: float, max_step_time: float) -> "ReachState":
        """A ReachGoal starting at wall time `wall`, ending with "deadline" after its budgets x `max_step_time`."""
        return cls(sequence, started=wall, deadline=wall + sum(sequence.budgets) * max_step_time, last_input=wall)

    def note_input(self, observation: Observation | None, now_ns: int, wall: float, embedding_timeout: float,
                   max_future_ns: int) -> None:
        """Remember `observation` as fresh input when it is newer than any seen, younger than `embedding_timeout`
        seconds and at most `max_future_ns` ahead of `now_ns`."""
        if observation is not None and observation.stamp_ns > self.newest_ns and \
                now_ns - observation.stamp_ns <= embedding_timeout * NS and \
                observation.stamp_ns - now_ns <= max_future_ns:
            self.newest_ns, self.last_input = observation.stamp_ns, wall

    def outcome(self, reason: str, detail: str = "") -> ReachOutcome:
        """How this ReachGoal ended, with `reason`."""
        return ReachOutcome(reason, self.energy, self.steps, self.sequence.index, detail)

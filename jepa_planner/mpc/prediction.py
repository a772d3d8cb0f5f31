"""The Predict service of the loop: the predictor rolled out from one observation under given actions.

Rules: the horizon must be within the predictor's max horizon, the actions (horizon x A, row-major) finite and
inside the predictor's action space, the context a usable observation and the goal (optional) valid goal features;
a result with a non-finite value is refused. Each refusal raises `PredictError` saying why.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from jepa_planner.energy import l1_energy
from jepa_planner.mpc.errors import InvalidGoalError, PredictError
from jepa_planner.mpc.inputs import Observation, context_inputs, observation_problem
from jepa_planner.mpc.models import PlannerModels
from jepa_planner.mpc.reach import goal_tensor


def action_plan(models: PlannerModels, actions: Sequence[float], horizon: int) -> np.ndarray:
    """`actions` (horizon x A, row-major) as a float32 array (H, A); PredictError unless the horizon is within the
    predictor's max horizon and every action is finite and inside the action space."""
    space, max_h = models.action_space, models.predictor.max_horizon
    names, dim = tuple(space.names), len(space.names)
    if not 1 <= horizon <= max_h:
        raise PredictError(f"horizon {horizon} must be in [1, {max_h}] (the predictor's max horizon)")
    if len(actions) != horizon * dim:
        raise PredictError(f"actions has {len(actions)} values, horizon {horizon} x {dim} action dims "
                           f"{list(names)} needs {horizon * dim}")
    plan = np.asarray(actions, dtype=np.float32).reshape(horizon, dim)
    if not np.isfinite(plan).all():
        raise PredictError("actions contain NaN or Inf")
    low, high = np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32)
    outside = np.argwhere((plan < low) | (plan > high))
    if len(outside):
        t, i = (int(v) for v in outside[0])
        raise PredictError(f"actions[{t}] {names[i]}={plan[t, i]:g} is outside the action space "
                           f"[{low[i]:g}, {high[i]:g}] {space.units[i]}".rstrip())
    return plan


def predict(models: PlannerModels, context: Observation, actions: Sequence[float], horizon: int,
            goal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Roll the predictor out from `context` under `actions` (horizon x A, row-major): predictions (H, N, D) and
    energies (H,) to `goal` (None: no energies). PredictError says why a request is refused."""
    plan = action_plan(models, actions, horizon)
    kind, problem = observation_problem(context, models, "context")
    if kind:
        raise PredictError(problem)
    goal_t = None
    if goal is not None:
        try:
            goal_t = goal_tensor(models, goal)
        except InvalidGoalError as exc:
            raise PredictError(f"goal: {exc}") from exc
    with torch.inference_mode():
        predicted = models.predictor.rollout(*context_inputs(models, context),
                                             torch.from_numpy(plan).to(models.device)[None])[0]
        energies = None if goal_t is None else l1_energy(predicted, goal_t).float().cpu().numpy()
    predicted = predicted.float().cpu().numpy()
    if not np.isfinite(predicted).all() or (energies is not None and not np.isfinite(energies).all()):
        raise PredictError("the predictor returned non-finite values for these actions")
    return predicted, energies

"""The loop's inputs: `Observation` (features of one camera frame with its paired state) and `InputGate`, which
checks each one on arrival (``loop.inputs.offer``) and keeps the latest accepted one.

Rules: an observation must come from the planner's encoder (`model_id`), have the models' feature shape, finite
values and the predictor's state names; one without any state counts as "waiting for state". A stamp more than
`max_future_stamp` ahead of the clock is refused. Nothing refused is kept, so no single message can move the loop's
clock; each refusal is counted under one of `REFUSALS`.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from jepa_planner.mpc.models import PlannerModels

#: Nanoseconds per second (stamps and clocks are integer nanoseconds).
NS = 1_000_000_000


@dataclass(frozen=True)
class Observation:
    """Features of one camera frame with its paired state, as the loop receives them."""

    features: np.ndarray                 # (N, D) float32
    stamp_ns: int                        # the camera stamp
    state: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))   # (S,) in state_names order
    state_names: tuple[str, ...] = ()
    model_id: str = ""                   # the encoder that made the features
    source: Any = None                   # carried for the caller (the node keeps the message header here)


#: Counter names of refused inputs, as /diagnostics shows them.
REFUSALS = ("malformed_embeddings", "model_mismatches", "future_stamps", "waiting_for_state")


def observation_problem(obs: Observation, models: PlannerModels, field: str = "Embedding") -> tuple[str, str]:
    """(refusal counter, problem) for an observation the models cannot use, or ("", "")."""
    if obs.model_id != models.model_id:
        return "model_mismatches", (f"model mismatch: {field}.model_id {obs.model_id!r} is not the planner's "
                                    f"encoder {models.model_id!r}")
    shape = tuple(np.shape(obs.features))
    if shape != models.feature_shape:
        return "malformed_embeddings", (f"malformed embedding: {field}.shape {list(shape)} differs from the "
                                        f"models' {list(models.feature_shape)}")
    if not np.isfinite(obs.features).all():
        return "malformed_embeddings", f"malformed embedding: {field}.data contains NaN or Inf"
    if not obs.state_names and models.state_names:
        return "waiting_for_state", (f"waiting for state: {field} carries no state (the predictor needs "
                                     f"{', '.join(models.state_names)})")
    if tuple(obs.state_names) != models.state_names or np.shape(obs.state) != (len(models.state_names),):
        return "malformed_embeddings", (f"malformed embedding: {field}.state_names {list(obs.state_names)} "
                                        f"differ from the predictor's state space {list(models.state_names)}")
    if not np.isfinite(obs.state).all():
        return "malformed_embeddings", f"malformed embedding: {field}.state contains NaN or Inf"
    return "", ""


class InputGate:
    """Checks each observation on arrival, counts refusals and keeps the latest accepted one (thread-safe)."""

    def __init__(self, models: PlannerModels, max_future_stamp: float) -> None:
        self._models = models
        self._lock = threading.Lock()
        self.max_future_ns = int(max_future_stamp * NS)
        self.latest: Observation | None = None
        self.problem = "no embedding received yet"   # why the last input was refused ("" when accepted)
        self.counts = dict.fromkeys(REFUSALS, 0)

    def offer(self, obs: Observation, now_ns: int) -> str:
        """Accept `obs` as the latest input, or refuse and count it; returns the problem ("" when accepted)."""
        kind, problem = observation_problem(obs, self._models)
        ahead = (obs.stamp_ns - now_ns) / NS
        if not kind and obs.stamp_ns - now_ns > self.max_future_ns:
            kind, problem = "future_stamps", (f"future stamp: embedding stamped {ahead:.3f} s ahead of the clock "
                                              f"(> max_future_stamp {self.max_future_ns / NS:g} s)")
        with self._lock:
            if kind:
                self.counts[kind] += 1
            else:
                self.latest = obs
            self.problem = problem
        return problem

    def refuse(self, kind: str, problem: str) -> None:
        """Count an input the caller could not even convert (e.g. a malformed message)."""
        with self._lock:
            self.counts[kind] += 1
            self.problem = problem


def context_inputs(models: PlannerModels, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
    """An observation as the predictor's one-frame context (1, 1, N, D) and state (1, 1, S) on the models' device."""
    return (models.tensor(obs.features)[None, None],
            torch.as_tensor(np.asarray(obs.state, dtype=np.float32), device=models.device)[None, None])

"""Validation of jepa_msgs fields and numpy <-> message conversion, shared by every node.

Every check raises MessageValidationError naming the offending field, so a node can log it, count it and
carry on instead of crashing on a malformed message.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class MessageValidationError(ValueError):
    """A message field is malformed; `field` names it (e.g. "Embedding.shape")."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _float_array(values, field: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise MessageValidationError(field, "contains NaN or Inf")
    return array


def embedding_array(msg, field: str = "Embedding") -> np.ndarray:
    """Return the features of an Embedding message as a float32 array of shape msg.shape."""
    shape = tuple(int(s) for s in msg.shape)
    if not shape or any(s == 0 for s in shape):
        raise MessageValidationError(f"{field}.shape", f"must be non-empty with positive sizes, got {list(shape)}")
    expected = math.prod(shape)
    if len(msg.data) != expected:
        raise MessageValidationError(
            f"{field}.data", f"has {len(msg.data)} values but shape {list(shape)} needs {expected}")
    return _float_array(msg.data, f"{field}.data").reshape(shape)


def embedding_state(msg, field: str = "Embedding") -> np.ndarray:
    """Return the paired robot state of an Embedding message (float64, may be empty)."""
    if len(msg.state) != len(msg.state_names):
        raise MessageValidationError(
            f"{field}.state", f"has {len(msg.state)} values for {len(msg.state_names)} state_names")
    state = np.asarray(msg.state, dtype=np.float64)
    if not np.all(np.isfinite(state)):
        raise MessageValidationError(f"{field}.state", "contains NaN or Inf")
    return state


def fill_embedding(msg, features: np.ndarray, *, header=None, model_id: str = "",
                   state_names: Sequence[str] = (), state: Sequence[float] = ()):
    """Fill an Embedding message from a features array (any shape) and an optional paired state."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    if len(state) != len(state_names):
        raise MessageValidationError("Embedding.state", f"{len(state)} values for {len(state_names)} names")
    if header is not None:
        msg.header = header
    msg.model_id = model_id
    msg.shape = [int(s) for s in features.shape]
    msg.data = features.ravel()
    msg.state_names = list(state_names)
    msg.state = [float(v) for v in state]
    return msg


def plan_actions(msg, field: str = "Plan") -> np.ndarray:
    """Return a Plan's actions as a (horizon, action_dim) float32 array, checking every size."""
    dim = len(msg.action_names)
    if dim == 0:
        raise MessageValidationError(f"{field}.action_names", "is empty")
    if msg.action_units and len(msg.action_units) != dim:
        raise MessageValidationError(
            f"{field}.action_units", f"has {len(msg.action_units)} entries for {dim} action_names")
    if msg.horizon == 0:
        raise MessageValidationError(f"{field}.horizon", "must be at least 1")
    if len(msg.actions) != msg.horizon * dim:
        raise MessageValidationError(
            f"{field}.actions", f"has {len(msg.actions)} values but horizon {msg.horizon} x {dim} dims "
            f"needs {msg.horizon * dim}")
    if msg.energies and len(msg.energies) != msg.horizon:
        raise MessageValidationError(f"{field}.energies", f"has {len(msg.energies)} values for horizon {msg.horizon}")
    return _float_array(msg.actions, f"{field}.actions").reshape(msg.horizon, dim)


def fill_plan(msg, actions: np.ndarray, *, action_names: Sequence[str], action_units: Sequence[str] = (),
              energies: Sequence[float] = (), energy: float = float("nan"), header=None, goal_index: int = 0,
              planning_time_ms: float = 0.0, sequence: int = 0):
    """Fill a Plan message from a (horizon, action_dim) array."""
    actions = np.ascontiguousarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != len(action_names):
        raise MessageValidationError(
            "Plan.actions", f"shape {actions.shape} does not match {len(action_names)} action_names")
    if header is not None:
        msg.header = header
    msg.action_names = list(action_names)
    msg.action_units = list(action_units)
    msg.horizon = actions.shape[0]
    msg.actions = actions.ravel()
    msg.energies = np.asarray(energies, dtype=np.float32)
    msg.energy = float(energy)
    msg.goal_index = int(goal_index)
    msg.planning_time_ms = float(planning_time_ms)
    msg.sequence = int(sequence)
    return msg


def image_to_array(msg) -> np.ndarray:
    """An rgb8 sensor_msgs/Image (the sim's camera) as (H, W, 3) uint8."""
    return np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3] \
        .reshape(msg.height, msg.width, 3).copy()


def fill_image(msg, rgb: np.ndarray, *, header=None):
    """Fill an rgb8 sensor_msgs/Image from an (H, W, 3) uint8 array (the inverse of `image_to_array`)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MessageValidationError("Image.data", f"needs an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = rgb.tobytes()
    return msg

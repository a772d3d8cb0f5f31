"""The gripper convention every layer shares: V-JEPA 2-AC's gripper value is the gripper's closedness, 0 open and
1 closed, and a finger joint's position maps to it linearly between the open and the closed position.

Rules: this module is the one place that converts finger positions to closedness and back; the Franka Panda
hand's numbers (each finger travels ``FRANKA_FINGER_TRAVEL`` m, 0 = closed) are the defaults, and a robot with
another hand passes its own open and closed positions.
"""
from __future__ import annotations

import numpy as np

#: m each finger of the Franka Panda hand travels: 0 = closed, this = fully open (opening 0 .. 0.08 m)
FRANKA_FINGER_TRAVEL = 0.04


def closedness(position: float | np.ndarray, open_position: float = FRANKA_FINGER_TRAVEL,
               closed_position: float = 0.0) -> float | np.ndarray:
    """Finger joint position(s) -> closedness: 0 at ``open_position``, 1 at ``closed_position``, not clipped."""
    value = (np.asarray(position, dtype=np.float64) - open_position) / (closed_position - open_position) + 0.0
    return float(value) if value.ndim == 0 else value   # + 0.0 above: never -0.0


def finger_position(value: float, open_position: float = FRANKA_FINGER_TRAVEL, closed_position: float = 0.0) -> float:
    """Closedness -> the finger joint position (the inverse of :func:`closedness`)."""
    return open_position + value * (closed_position - open_position)

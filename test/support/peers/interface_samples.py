"""Deterministic instances of every jepa_msgs type, built the same way in two processes."""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from jepa_msgs.action import ReachGoal
from jepa_msgs.msg import Embedding, Plan, Prediction
from jepa_msgs.srv import Predict
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from jepa_common import frames
from jepa_ros.msg_validation import fill_embedding, fill_plan


def _header(rng: np.random.Generator) -> Header:
    return Header(stamp=Time(sec=int(rng.integers(1, 2**31 - 1)), nanosec=int(rng.integers(0, 10**9))),
                  frame_id=frames.CAMERA_OPTICAL)


def _awkward_floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random float32 values plus the awkward ones a lossy path would change (subnormals, -0, extremes)."""
    values = rng.standard_normal(n).astype(np.float32) * np.float32(1e3)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.1754944e-38], dtype=np.float32)
    values[: min(n, special.size)] = special[: min(n, special.size)]
    return values


def embedding(rng: np.random.Generator) -> Embedding:
    """An Embedding of 16 tokens x 8 features with a paired 3-D state."""
    return fill_embedding(Embedding(), _awkward_floats(rng, 128).reshape(16, 8), header=_header(rng),
                          model_id="tiny-abc123", state_names=["x", "y", "z"], state=rng.standard_normal(3))


def plan(rng: np.random.Generator) -> Plan:
    """A horizon-2 plan over three displacement dimensions."""
    return fill_plan(Plan(), _awkward_floats(rng, 6).reshape(2, 3), action_names=["dx", "dy", "dz"],
                     action_units=["m", "m", "m"], energies=_awkward_floats(rng, 2), energy=0.25,
                     header=_header(rng), goal_index=1, planning_time_ms=12.5, sequence=2**40 + 7)


def prediction(rng: np.random.Generator) -> Prediction:
    """Predicted embeddings for two steps."""
    msg = Prediction(header=_header(rng), sequence=2**40 + 7)
    msg.steps = [embedding(rng), embedding(rng)]
    msg.energies = _awkward_floats(rng, 2)
    return msg


def image(rng: np.random.Generator) -> Image:
    """A small rgb8 image."""
    return Image(header=_header(rng), height=4, width=5, encoding="rgb8", is_bigendian=0, step=15,
                 data=rng.integers(0, 256, 60, dtype=np.uint8).tobytes())


def predict_request(rng: np.random.Generator) -> Predict.Request:
    """A predict request with a goal."""
    return Predict.Request(context=embedding(rng), actions=_awkward_floats(rng, 6), horizon=2, goal=embedding(rng))


def predict_response(rng: np.random.Generator) -> Predict.Response:
    """A successful predict response."""
    return Predict.Response(success=True, message="ok", predictions=[embedding(rng), embedding(rng)],
                            energies=_awkward_floats(rng, 2), energy=0.5)


def reach_goal_goal(rng: np.random.Generator) -> ReachGoal.Goal:
    """Two goal images with step budgets."""
    return ReachGoal.Goal(goal_images=[image(rng), image(rng)], goal_embeddings=[embedding(rng)],
                          step_budgets=[10, 20], tolerance=0.0625)  # float32 fields: values exact in float32


def reach_goal_feedback(rng: np.random.Generator) -> ReachGoal.Feedback:
    """One step of feedback."""
    return ReachGoal.Feedback(goal_index=1, step=3, energy=0.3125, planning_time_ms=40.0,
                              action=_awkward_floats(rng, 3))


def reach_goal_result(rng: np.random.Generator) -> ReachGoal.Result:
    """A successful result."""
    return ReachGoal.Result(success=True, final_energy=0.015625, steps=12, goals_reached=2, reason="reached")


TOPIC_SAMPLES = {"embedding": (Embedding, embedding), "plan": (Plan, plan), "prediction": (Prediction, prediction)}
SEED = 20261125


def first_difference(received, expected, path: str) -> str | None:
    """Path and values of the first field that differs (arrays compare bytes, so bit-exact), or None."""
    if hasattr(expected, "get_fields_and_field_types"):
        for field in expected.get_fields_and_field_types():
            found = first_difference(getattr(received, field), getattr(expected, field), f"{path}.{field}")
            if found:
                return found
        return None
    if isinstance(expected, (array.array, np.ndarray, bytes)):
        r, e = np.asarray(received), np.asarray(expected)
        same = r.dtype == e.dtype and r.shape == e.shape and r.tobytes() == e.tobytes()
        return None if same else f"{path}: {r!r} != {e!r}"
    if isinstance(expected, list):
        if len(received) != len(expected):
            return f"{path}: length {len(received)} != {len(expected)}"
        for i, (r, e) in enumerate(zip(received, expected)):
            found = first_difference(r, e, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if received == expected else f"{path}: {received!r} != {expected!r}"

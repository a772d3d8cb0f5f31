"""Robot states from ROS messages and actions as differences of consecutive states (ROS-free).

As in V-JEPA 2-AC, an action is what takes state t to state t+1: the xyz difference, the relative rotation
R(t+1) R(t)^T as extrinsic x-y-z Euler angles, the gripper difference; joint states give joint deltas. Action
dimension ``d<name>`` belongs to state dimension ``<name>``, which is how the predictor's ``state_update`` maps
actions onto states (``ee_pose`` composes the rotation back: :func:`compose_rotations`).

State kinds:
- ``ee_xyz``: end-effector position [x, y, z] (m), from geometry_msgs/PoseStamped.
- ``ee_pose``: position plus orientation as extrinsic Euler angles [roll, pitch, yaw] (rad).
- ``joints``: joint positions from sensor_msgs/JointState, in the order of the first message's names.
"""
from __future__ import annotations

import numpy as np
from transforms3d.euler import euler2mat, mat2euler, quat2euler

from jepa_world_model.config import ROTATION_NAMES, rotation_slice

STATE_KINDS = ("ee_xyz", "ee_pose", "joints")
_EULER_AXES = "sxyz"  # static (extrinsic) x, then y, then z


def pose_state(position, quaternion_xyzw, kind: str) -> np.ndarray:
    """State vector of an end-effector pose: [x, y, z] or [x, y, z, roll, pitch, yaw]."""
    xyz = np.asarray(position, dtype=np.float64).reshape(3)
    if kind == "ee_xyz":
        return xyz
    if kind == "ee_pose":
        x, y, z, w = (float(v) for v in quaternion_xyzw)
        norm = np.sqrt(x * x + y * y + z * z + w * w)
        if not norm > 0:
            return np.concatenate([xyz, np.full(3, np.nan)])  # caught as a NaN state by the dataset checks
        return np.concatenate([xyz, quat2euler((w / norm, x / norm, y / norm, z / norm), _EULER_AXES)])
    raise ValueError(f"pose_state: kind must be 'ee_xyz' or 'ee_pose', got {kind!r}")


def state_names(kind: str, joint_names: tuple[str, ...] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, units) of the state dimensions of ``kind``."""
    if kind == "ee_xyz":
        return ("x", "y", "z"), ("m",) * 3
    if kind == "ee_pose":
        return ("x", "y", "z") + ROTATION_NAMES, ("m",) * 3 + ("rad",) * 3
    if kind == "joints":
        if not joint_names:
            raise ValueError("state_names: kind 'joints' needs the joint names")
        return tuple(joint_names), ("rad",) * len(joint_names)
    raise ValueError(f"state kind must be one of {STATE_KINDS}, got {kind!r}")


def action_names(names: tuple[str, ...], units: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, units) of the actions that move between states named ``names``: ``d<name>``, same units."""
    return tuple(f"d{n}" for n in names), tuple(units)


def relative_rotations(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Extrinsic x-y-z Euler angles of R(end) R(start)^T for rows (..., 3) of Euler angles (float64)."""
    start, end = np.broadcast_arrays(np.asarray(start, np.float64), np.asarray(end, np.float64))
    out = np.empty(start.shape)
    for index in np.ndindex(start.shape[:-1]):
        r0 = euler2mat(*start[index], axes=_EULER_AXES)
        out[index] = mat2euler(euler2mat(*end[index], axes=_EULER_AXES) @ r0.T, axes=_EULER_AXES)
    return out


def compose_rotations(delta: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Extrinsic x-y-z Euler angles of R(delta) R(current) for rows (..., 3) of Euler angles (float64): the
    orientation after the relative rotation ``delta`` (the inverse of :func:`relative_rotations`)."""
    delta, current = np.broadcast_arrays(np.asarray(delta, np.float64), np.asarray(current, np.float64))
    out = np.empty(delta.shape)
    for index in np.ndindex(delta.shape[:-1]):
        rotation = euler2mat(*delta[index], axes=_EULER_AXES) @ euler2mat(*current[index], axes=_EULER_AXES)
        out[index] = mat2euler(rotation, axes=_EULER_AXES)
    return out


def state_differences(states: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Actions (T-1, S) between consecutive states (T, S) whose dimensions are named ``names``.

    Every dimension is a plain difference except a [roll, pitch, yaw] triple, which becomes the extrinsic Euler
    angles of R(t+1) R(t)^T.
    """
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] != len(names):
        raise ValueError(f"states must be (T, {len(names)}) for names {names}, got shape {states.shape}")
    actions = np.diff(states, axis=0)
    rot = rotation_slice(names)
    if rot is not None:
        actions[:, rot] = relative_rotations(states[:-1, rot], states[1:, rot])
    return actions

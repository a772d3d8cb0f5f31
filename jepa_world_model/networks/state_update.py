"""Rollout state integration per ``PredictorConfig.state_update``: the state after an action, and its inverse,
the actions between consecutive context states.

- ``add``: every action dim is added to the state dim ``action_to_state`` maps it to.
- ``ee_pose`` (V-JEPA 2-AC's rule for 7-D end-effector poses): the [roll, pitch, yaw] deltas are composed as
  rotations, R(s') = R(a) R(s) with extrinsic x-y-z Euler angles (``transforms3d``), the other mapped dims are
  added, and a ``gripper`` state dim is clipped to the state space's bounds. Its inverse gives the actions of
  :func:`jepa_world_model.actions.state_differences`.
- ``none``: the state stays; context actions are zero.
"""
from __future__ import annotations

import numpy as np
import torch

from jepa_world_model.actions import compose_rotations, relative_rotations
from jepa_world_model.config import GRIPPER_NAME, PredictorConfig, rotation_slice


def _rotation(config: PredictorConfig) -> tuple[tuple[int, int, int], slice] | None:
    """(action dims, state slice) of the rotation that ``ee_pose`` composes; None for the other rules."""
    if config.state_update != "ee_pose":
        return None
    return config.rotation_action_dims, rotation_slice(config.state_space.names)


def _added_dims(config: PredictorConfig, rotation: tuple | None) -> tuple[list[int], list[int]]:
    """(action dims, state dims) of the pairs that are added."""
    skip = set(rotation[0]) if rotation else set()
    pairs = [(i, j) for i, j in enumerate(config.action_to_state) if j >= 0 and i not in skip]
    return [i for i, _ in pairs], [j for _, j in pairs]


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def next_state(config: PredictorConfig, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Physical state (B, S) after physical action (B, A) under ``config.state_update``."""
    if config.state_update == "none":
        return state
    rotation = _rotation(config)
    actions_dims, state_dims = _added_dims(config, rotation)
    index = torch.tensor(state_dims, dtype=torch.long, device=state.device)
    new = state.index_add(1, index, action[:, actions_dims].to(state.dtype))
    if rotation is not None:
        dims, rot = rotation
        angles = compose_rotations(_to_numpy(action[:, list(dims)]), _to_numpy(state[:, rot]))
        new[:, rot] = torch.from_numpy(angles).to(new)
        for j, name in enumerate(config.state_space.names):
            if name == GRIPPER_NAME:
                new[:, j] = new[:, j].clamp(config.state_space.low[j], config.state_space.high[j])
    return new


def context_actions(config: PredictorConfig, states: torch.Tensor) -> torch.Tensor:
    """Actions (B, C-1, A) between consecutive physical states (B, C, S): the inverse of :func:`next_state` on
    the mapped dims (without the gripper clip), 0 on the others and everywhere for ``none``."""
    batch, steps = states.shape[:2]
    actions = states.new_zeros(batch, steps - 1, config.action_dim)
    if config.state_update == "none" or steps < 2:
        return actions
    rotation = _rotation(config)
    for i, j in zip(*_added_dims(config, rotation)):
        actions[:, :, i] = states[:, 1:, j] - states[:, :-1, j]
    if rotation is not None:
        dims, rot = rotation
        angles = relative_rotations(_to_numpy(states[:, :-1, rot]), _to_numpy(states[:, 1:, rot]))
        actions[:, :, list(dims)] = torch.from_numpy(angles).to(actions)
    return actions

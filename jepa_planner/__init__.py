"""jepa_planner: ROS-free goal-conditioned planning (CEM/MPC, energies, action spaces) plus thin ROS nodes.

The public names below are imported lazily, so ``import jepa_planner.<submodule>`` (e.g. the controller node,
which needs no torch) does not pull in torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ActionConstraints": "action_space", "ActionSpaceError": "action_space", "project_l1_ball_": "action_space",
    "validate_bounds": "action_space",
    "CEMConfig": "cem", "CEMConfigError": "cem", "CEMPlanner": "cem", "DynamicsModel": "cem",
    "PlannerInputError": "cem", "PlanResult": "cem", "coloured_noise": "cem", "shift_warm_start": "cem",
    "EnergyFn": "energy", "l1_energy": "energy", "layer_norm_features": "energy", "raw_l1_energy": "energy",
    "GoalSequence": "goals", "GoalSequenceError": "goals",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""jepa_planner: ROS-free goal-conditioned planning (CEM/MPC, energies, action spaces) plus thin ROS nodes."""
from jepa_planner.action_space import ActionConstraints, ActionSpaceError, project_l1_ball_, validate_bounds
from jepa_planner.cem import (CEMConfig, CEMConfigError, CEMPlanner, DynamicsModel, PlannerInputError, PlanResult,
                              coloured_noise, shift_warm_start)
from jepa_planner.energy import EnergyFn, l1_energy, layer_norm_features, raw_l1_energy
from jepa_planner.goals import GoalSequence, GoalSequenceError

__all__ = [
    "ActionConstraints", "ActionSpaceError", "project_l1_ball_", "validate_bounds",
    "CEMConfig", "CEMConfigError", "CEMPlanner", "DynamicsModel", "PlannerInputError", "PlanResult",
    "coloured_noise", "shift_warm_start",
    "EnergyFn", "l1_energy", "layer_norm_features", "raw_l1_energy",
    "GoalSequence", "GoalSequenceError",
]

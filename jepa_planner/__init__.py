"""jepa_planner: ROS-free goal-conditioned planning: the MPC loop, CEM, energies, action spaces and goal sequences.

The public names below are imported lazily, so ``import jepa_planner.<submodule>`` does not pull in torch.
"""
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "action_space": ["ActionConstraints", "ActionSpaceError", "project_l1_ball_", "validate_bounds"],
    "cem": ["CEMConfig", "CEMConfigError", "CEMPlanner", "DynamicsModel", "PlannerInputError", "PlanResult",
            "coloured_noise", "shift_warm_start"],
    "energy": ["EnergyFn", "l1_energy", "layer_norm_features", "raw_l1_energy"],
    "goals": ["GoalSequence", "GoalSequenceError"],
    "mpc": ["Decision", "InvalidGoalError", "MPCLoop", "Observation", "PlannerModels", "PlannerSettings",
            "PlannerSetupError", "PredictError", "ReachOutcome"],
})

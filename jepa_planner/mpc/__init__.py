"""The planner's model-predictive control loop, ROS-free, one module per job:

- `settings`: `PlannerSettings` (planner_node's parameters) and the CEM configuration made from them;
- `models`: `PlannerModels`, the predictor and goal-image encoder, loaded and checked to work together;
- `inputs`: `Observation` and the `InputGate` that checks each one on arrival (``loop.inputs.offer``);
- `reach`: goal features checked against the models and the state of a running ReachGoal;
- `decisions`: what a step decides (`Decision`, PLAN/HOLD/WAIT/INVALID/FINISHED) and how a ReachGoal ended;
- `prediction`: the Predict service (a rollout under given actions);
- `loop`: `MPCLoop`, which ties them together (its docstring has the loop's rules);
- `errors`: the exceptions.

Each rule has its unit test in test/planner/test_mpc.py. The submodules import one another, never this package;
import the public names from here.
"""
from jepa_planner.mpc.decisions import (FINISHED, HOLD, INVALID, PLAN, WAIT, Decision, ReachOutcome, result_problem,
                                        waiting_status)
from jepa_planner.mpc.errors import InvalidGoalError, PlannerSetupError, PredictError
from jepa_planner.mpc.inputs import NS, REFUSALS, InputGate, Observation, context_inputs, observation_problem
from jepa_planner.mpc.loop import MPCLoop, make_planner
from jepa_planner.mpc.models import PlannerModels, check_models
from jepa_planner.mpc.prediction import action_plan, predict
from jepa_planner.mpc.reach import ReachState, check_goal_image_count, goal_sequence, goal_tensor
from jepa_planner.mpc.settings import FALLBACK_TOLERANCE, MODES, PlannerSettings, cem_config, parse_fixed_dims

__all__ = [
    "FALLBACK_TOLERANCE", "FINISHED", "HOLD", "INVALID", "MODES", "NS", "PLAN", "REFUSALS", "WAIT", "Decision",
    "InputGate", "InvalidGoalError", "MPCLoop", "Observation", "PlannerModels", "PlannerSettings",
    "PlannerSetupError", "PredictError", "ReachOutcome", "ReachState", "action_plan", "cem_config",
    "check_goal_image_count", "check_models", "context_inputs", "goal_sequence", "goal_tensor", "make_planner",
    "observation_problem", "parse_fixed_dims", "predict", "result_problem", "waiting_status",
]

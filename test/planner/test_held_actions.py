"""The straight-line lookahead (jepa_planner.held_actions) on the real tiny predictor, and the planner setting that
turns it on (lookahead_steps)."""
import numpy as np
import pytest
import torch

from jepa_planner.cem import CEMConfig, CEMConfigError, CEMPlanner
from jepa_planner.energy import l1_energy
from jepa_planner.held_actions import HeldActions
from jepa_planner.mpc import MPCLoop, PlannerModels, PlannerSettings, PlannerSetupError
from jepa_world_model import load_encoder, load_predictor
from jepa_common.settings import make_settings


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return load_predictor("tiny").eval()


@pytest.fixture(scope="module")
def problem(predictor):
    g = torch.Generator().manual_seed(1)
    n, d = predictor.config.tokens_per_frame, predictor.config.embed_dim
    context = torch.randn(1, 1, n, d, generator=g)
    state = torch.tensor([[[0.3, 0.0, 0.2]]])
    actions = (torch.rand(6, 2, 3, generator=g) - 0.5) * 0.04
    return context, state, actions


def test_each_action_is_rolled_out_held_with_every_frame_returned(predictor, problem):
    context, state, actions = problem
    held = HeldActions(predictor, 3)
    with torch.inference_mode():
        got = held.rollout(context, state, actions)
        spelled_out = actions[:, [0, 0, 0, 1, 1, 1]]   # a1 a1 a1 a2 a2 a2
        full = predictor.rollout(context, state, spelled_out)
        prepared = held.prepare_context(context, state).rollout(actions)
    assert got.shape == (6, 6, *context.shape[2:])
    torch.testing.assert_close(got, full)
    torch.testing.assert_close(prepared, got, rtol=1e-4, atol=1e-5)
    assert held.max_horizon == predictor.max_horizon // 3 and held.frames_per_action == 3


def test_holding_differs_from_one_step_and_one_step_is_the_model(predictor, problem):
    context, state, actions = problem
    with torch.inference_mode():
        one = HeldActions(predictor, 1).rollout(context, state, actions[:, :1])
        five = HeldActions(predictor, 5).rollout(context, state, actions[:, :1])
        plain = predictor.rollout(context, state, actions[:, :1])
    torch.testing.assert_close(one, plain)
    assert five.shape[1] == 5 and (five[:, -1:] - plain).abs().mean() > 1e-3


def test_bad_holds_are_refused(predictor):
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        HeldActions(predictor, 0)
    with pytest.raises(ValueError, match="predicts 8"):
        HeldActions(predictor, predictor.max_horizon + 1)
    with pytest.raises(CEMConfigError, match="longer than model.max_horizon"):
        CEMPlanner(HeldActions(predictor, 4), l1_energy, CEMConfig(low=[-0.02] * 3, high=[0.02] * 3, horizon=3))


def test_the_planner_setting_plans_held_actions_and_checks_the_predictor_horizon(predictor, problem):
    models = PlannerModels(load_encoder("tiny"), predictor)
    fast = {"samples": 16, "elites": 4, "iterations": 2}
    loop = MPCLoop(models, make_settings(PlannerSettings, {**fast, "lookahead_steps": 4}))
    assert isinstance(loop.planner.model, HeldActions) and loop.planner.model.steps == 4
    context, state, _ = problem
    goal = torch.randn(*context.shape[2:], generator=torch.Generator().manual_seed(2))
    result = loop.planner.plan(context, state, goal)
    assert result.actions.shape == (1, 3) and np.isfinite(result.energy)
    assert result.predictions.shape == (1, *context.shape[2:])  # where the hold ends, one frame per action
    with pytest.raises(PlannerSetupError, match="longer than model.max_horizon"):
        MPCLoop(models, make_settings(PlannerSettings, {**fast, "lookahead_steps": 4, "horizon": 3}))
    with pytest.raises(PlannerSetupError, match="predicts 8"):
        MPCLoop(models, make_settings(PlannerSettings, {**fast, "lookahead_steps": 9}))
    plain = MPCLoop(models, make_settings(PlannerSettings, fast))
    assert plain.planner.model is predictor
    plain.reconfigure(make_settings(PlannerSettings, {**fast, "lookahead_steps": 2}))
    assert plain.planner.model.steps == 2


def test_closest_scores_the_plan_at_its_frame_nearest_the_goal(predictor, problem):
    models = PlannerModels(load_encoder("tiny"), predictor)
    settings = {"samples": 16, "elites": 4, "iterations": 2, "lookahead_steps": 4, "energy_mode": "closest"}
    loop = MPCLoop(models, make_settings(PlannerSettings, settings))
    context, state, _ = problem
    goal = torch.randn(*context.shape[2:], generator=torch.Generator().manual_seed(3))
    result = loop.planner.plan(context, state, goal)
    with torch.inference_mode():
        frames = loop.planner.model.rollout(context, state, result.actions[None])[0]
        energies = l1_energy(frames, goal)
    assert frames.shape[0] == 4
    assert result.energy == pytest.approx(float(energies.min()), rel=1e-4)
    torch.testing.assert_close(result.predictions[0], frames[-1])

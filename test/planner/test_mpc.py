"""The planner's MPC loop without ROS (jepa_planner.mpc): settings, model checks, input rules, goals and every
ReachGoal outcome, on the real tiny encoder and predictor. Time is passed in: `now` (stamps are judged against
it, ns) and `wall` (monotonic seconds), so each rule is checked exactly, without waiting."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from jepa_planner.cem import CEMConfig
from jepa_planner.mpc import (FINISHED, HOLD, INVALID, PLAN, WAIT, Decision, InvalidGoalError, MPCLoop, Observation,
                              PlannerModels, PlannerSettings, PlannerSetupError, PredictError, cem_config,
                              check_goal_image_count, check_models, parse_fixed_dims)
from jepa_world_model import load_encoder, load_predictor
from jepa_common.settings import SettingsError, make_settings

NS = 1_000_000_000
T0 = 1_000 * NS   # the clock at the start of each test
STATE = np.array([0.3, 0.0, 0.2])
FAST = {"samples": 16, "elites": 4, "iterations": 2}
WAIT_FOR_NEXT_FRAME = Decision(WAIT)


@pytest.fixture(scope="module")
def models() -> PlannerModels:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return PlannerModels(load_encoder("tiny"), load_predictor("tiny"))


@pytest.fixture(scope="module")
def images(models):
    """Features of two clearly different pictures: where the robot is, and the goal."""
    y, x = np.mgrid[0:64, 0:64]
    gradient = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    board = ((x // 8 + y // 8) % 2 * 255).astype(np.uint8)
    checker = np.stack([board, 255 - board, board // 2], axis=-1)
    with torch.inference_mode():
        here, goal = (models.encoder(torch.from_numpy(img)[None])[0].numpy() for img in (checker, gradient))
    return {"here": here, "goal": goal}


def make_loop(models: PlannerModels, **overrides) -> MPCLoop:
    return MPCLoop(models, make_settings(PlannerSettings, {**FAST, **overrides}))


def observe(models: PlannerModels, features: np.ndarray, stamp_ns: int, **fields) -> Observation:
    values = dict(state=STATE, state_names=models.state_names, model_id=models.model_id)
    return Observation(features, stamp_ns, **{**values, **fields})


def feed(loop: MPCLoop, features: np.ndarray, now_ns: int, wall: float, stamp_ns: int | None = None):
    """Offer a frame stamped `stamp_ns` (default now) and step once."""
    obs = observe(loop.models, features, now_ns if stamp_ns is None else stamp_ns)
    assert loop.inputs.offer(obs, now_ns) == ""
    return loop.step(loop.inputs.latest, now_ns, wall)


# ------------------------------------------------------------------------------------------------ settings
def test_cem_defaults_have_one_source():
    """PlannerSettings' CEM fields default to CEMConfig's, so the node, the offline loop and the YAML agree."""
    space = load_predictor("tiny").action_space
    assert cem_config(PlannerSettings(), space) == CEMConfig(low=space.low, high=space.high)
    defaults = PlannerSettings()
    assert (defaults.samples, defaults.iterations, defaults.elites, defaults.horizon) == (16, 3, 4, 1)
    assert (defaults.momentum, defaults.early_stop_patience, defaults.device) == (0.1, 2, "auto")


def test_fixed_dims_are_parsed_by_name_or_index():
    assert parse_fixed_dims("dz=0.0, 0=0.5", ("dx", "dy", "dz")) == {2: 0.0, 0: 0.5}
    assert parse_fixed_dims("", ("dx",)) == {}
    for text, words in [("dz", "not name=value"), ("dq=1", "neither an action name"), ("3=1", "index below 3"),
                        ("dz=up", "is not a number")]:
        with pytest.raises(PlannerSetupError, match=words):
            parse_fixed_dims(text, ("dx", "dy", "dz"))


def test_bad_cem_settings_name_the_problem(models):
    space = models.action_space
    cases = [({"action_low": (-0.1, -0.1)}, "action_low has 2 values, the predictor's action space"),
             ({"action_low": (0.1, -0.05, -0.05)}, r"action_low\[0\]=0.1 is not <= action_high\[0\]=0.05 \(dx\)"),
             ({"samples": 4, "elites": 8}, r"elites \(8\) must not exceed samples \(4\)"),
             ({"fixed_dims": "dw=0"}, "neither an action name")]
    for overrides, words in cases:
        with pytest.raises(PlannerSetupError, match=words):
            cem_config(make_settings(PlannerSettings, overrides), space)
    with pytest.raises(PlannerSetupError, match="longer than model.max_horizon"):
        make_loop(models, horizon=9)


def test_models_must_fit_together():
    predictor = load_predictor("tiny")
    with pytest.raises(PlannerSetupError, match="embed_dim 32, the predictor expects 64 x embed_dim 64"):
        check_models(load_encoder("tiny", width=32, num_heads=4, mlp_hidden=64), predictor)
    predictor.encoder_id = "someone-else"
    with pytest.raises(PlannerSetupError, match="trained on encoder someone-else"):
        check_models(load_encoder("tiny"), predictor)


def test_device_auto_resolves_and_missing_cuda_is_a_clear_error():
    models = PlannerModels.load(make_settings(PlannerSettings, {"device": "auto", "torch_threads": 0}))
    assert models.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(PlannerSetupError, match="CUDA is not available"):
            PlannerModels.load(make_settings(PlannerSettings, {"device": "cuda", "torch_threads": 0}))


def test_reconfigure_checks_and_keeps_read_only_settings(models):
    loop = make_loop(models)
    planner = loop.planner
    with pytest.raises(PlannerSetupError, match="read-only setting"):
        loop.reconfigure(dataclasses.replace(loop.settings, predictor="other"))
    with pytest.raises(PlannerSetupError, match="must not exceed samples"):
        loop.reconfigure(dataclasses.replace(loop.settings, elites=100))
    assert loop.planner is planner and loop.settings.elites == FAST["elites"]
    loop.reconfigure(dataclasses.replace(loop.settings, settle_time=0.5))
    assert loop.planner is planner                  # no CEM change, no new planner
    loop.reconfigure(dataclasses.replace(loop.settings, horizon=3))
    assert loop.planner is not planner and loop.planner.config.horizon == 3


# --------------------------------------------------------------------------------------------------- inputs
def test_inputs_are_checked_counted_and_only_accepted_ones_kept(models, images):
    loop = make_loop(models)
    gate = loop.inputs
    good = observe(models, images["here"], T0)
    assert gate.offer(good, T0) == "" and gate.latest is good
    refusals = [
        (observe(models, images["here"], T0, model_id="other"), "model_mismatches", "model mismatch"),
        (observe(models, images["here"][:10], T0), "malformed_embeddings", "differs from the models'"),
        (observe(models, images["here"], T0, state_names=("a", "b", "c")), "malformed_embeddings",
         "differ from the predictor's state space"),
        (observe(models, images["here"], T0, state=np.array([math.nan, 0, 0])), "malformed_embeddings", "NaN"),
        (observe(models, images["here"], T0, state=np.zeros(0), state_names=()), "waiting_for_state",
         "waiting for state: Embedding carries no state (the predictor needs x, y, z)"),
        (observe(models, images["here"], T0 + 86_400 * NS), "future_stamps", "86400.000 s ahead"),
    ]
    for obs, counter, words in refusals:
        before = gate.counts[counter]
        assert words in gate.offer(obs, T0)
        assert gate.counts[counter] == before + 1 and gate.latest is good
    # Within max_future_stamp (0.2 s) a stamp slightly ahead (clock skew) is accepted.
    ahead = observe(models, images["here"], T0 + NS // 10)
    assert gate.offer(ahead, T0) == "" and gate.latest is ahead


def test_waiting_for_state_is_reported_as_such(models, images):
    loop = make_loop(models)
    loop.set_topic_goal(images["goal"])
    loop.inputs.offer(observe(models, images["here"], T0, state=np.zeros(0), state_names=()), T0)
    decision = loop.step(loop.inputs.latest, T0, 0.0)
    assert decision.kind == WAIT and decision.message.startswith("waiting for state")
    assert loop.status_values(T0)["waiting_for_state"] == 1 and loop.status_values(T0)["malformed_embeddings"] == 0


# ------------------------------------------------------------------------------------------------ stepping
def test_one_plan_per_fresh_frame_and_the_settle_time(models, images):
    loop = make_loop(models, settle_time=0.1, embedding_timeout=1.0)
    assert loop.step(None, T0, 0.0).message == "waiting: no goal"
    loop.set_topic_goal(images["goal"])
    decision = feed(loop, images["here"], T0, 0.0)
    assert decision.kind == PLAN and decision.observation.stamp_ns == T0
    assert decision.result.actions.shape == (1, 3) and decision.message == "planning"
    # The same frame again: nothing to do (and nothing to complain about).
    again = loop.step(loop.inputs.latest, T0 + NS // 20, 0.05)
    assert again.kind == WAIT and again.message == ""
    # A frame taken before the plan went out + settle_time: the action has not been executed yet.
    assert feed(loop, images["here"], T0 + NS // 20, 0.05).kind == WAIT
    plan_ns = int(decision.result.time_ms * 1e6)
    assert feed(loop, images["here"], T0 + plan_ns + NS // 10, 0.2).kind == PLAN
    # A frame older than embedding_timeout is stale.
    stale = loop.step(observe(models, images["here"], T0 + 2 * NS), T0 + 3_500_000_000, 3.5)
    assert stale.kind == WAIT and stale.message.startswith("waiting: stale input: embedding is 1.50 s old")


def test_continuous_mode_plans_on_every_new_frame(models, images):
    loop = make_loop(models, mode="continuous")
    loop.set_topic_goal(images["goal"])
    kinds = [feed(loop, images["here"], T0 + i * NS // 100, i * 0.01).kind for i in range(3)]
    assert kinds == [PLAN, PLAN, PLAN]


def test_topic_goal_is_held_once_reached_and_resumed_when_the_energy_rises(models, images):
    loop = make_loop(models, mode="continuous")
    loop.set_topic_goal(images["here"])       # the goal is where the robot is
    hold = feed(loop, images["here"], T0, 0.0)
    assert hold.kind == HOLD and hold.message.startswith("holding: goal reached (energy 0 <= 0.015)")
    assert torch.equal(hold.result.actions, torch.zeros(1, 3))
    assert hold.result.predictions.shape == (1, 64, 64) and torch.isfinite(hold.result.step_energies).all()
    pushed = feed(loop, images["goal"], T0 + NS // 10, 0.1)     # the arm was pushed away
    assert pushed.kind == PLAN and pushed.energy > loop.settings.default_tolerance


def test_a_clock_that_jumps_back_does_not_stop_planning(models, images):
    loop = make_loop(models, mode="continuous")
    loop.set_topic_goal(images["goal"])
    assert feed(loop, images["here"], T0, 0.0).kind == PLAN
    assert feed(loop, images["here"], 5 * NS, 0.1).kind == PLAN      # e.g. a restarted sim clock


def test_planning_slower_than_max_future_stamp_never_plans_a_frame_twice(models, images):
    loop = make_loop(models, max_future_stamp=0.0)
    loop.set_topic_goal(images["goal"])
    assert feed(loop, images["here"], T0, 0.0).kind == PLAN
    assert loop.step(loop.inputs.latest, T0 + 1000, 0.001) == WAIT_FOR_NEXT_FRAME


def test_invalid_results_are_never_published(images):
    broken = load_predictor("tiny")
    with torch.no_grad():
        broken.predictor_proj.weight.fill_(math.nan)
    models = PlannerModels(load_encoder("tiny"), broken)
    loop = make_loop(models)
    loop.set_topic_goal(images["goal"])
    decision = feed(loop, images["here"], T0, 0.0)
    assert decision.kind == INVALID and "no valid plan" in decision.message and "non-finite" in decision.message
    loop.begin_reach([images["goal"]], 1.0)
    end = feed(loop, images["here"], T0 + NS, 1.0)
    assert end.kind == FINISHED and end.outcome.reason.startswith("planner error: ")
    with pytest.raises(PredictError, match="non-finite"):
        loop.predict(observe(models, images["here"], T0), [0.0] * 3, 1)


# --------------------------------------------------------------------------------------- ReachGoal outcomes
def run_reach(loop: MPCLoop, features: np.ndarray, steps: int, dt: float = 0.2, t0: float = 10.0):
    """Feed a fresh frame every `dt` s (stamps and wall alike) until the ReachGoal ends or `steps` frames."""
    decisions = []
    for i in range(steps):
        decisions.append(feed(loop, features, T0 + int(i * dt * NS), t0 + i * dt))
        if decisions[-1].kind == FINISHED:
            break
    return decisions


def test_reach_goal_reached_walks_through_sub_goals(models, images):
    loop = make_loop(models)
    loop.set_topic_goal(images["goal"])
    loop.begin_reach([images["goal"], images["here"]], 10.0, tolerance=1e6)
    assert loop.goal_kind == "action"
    # frames 0.5 s apart: each one is past the previous plan's settle time even when a loaded machine plans slowly
    decisions = run_reach(loop, images["here"], 10, dt=0.5)
    assert [(d.kind, d.goal_index, d.step) for d in decisions[:-1]] == [(PLAN, 0, 1), (PLAN, 1, 1)]
    outcome = decisions[-1].outcome
    assert outcome.success and (outcome.reason, outcome.steps, outcome.goals_reached) == ("reached", 2, 2)
    assert loop.goal_kind == "none"      # the ReachGoal replaced the topic goal; nothing left to pursue
    assert loop.step(loop.inputs.latest, T0 + 10 * NS, 20.0).message == "waiting: no goal"


def test_reach_goal_budget_exhausted(models, images):
    loop = make_loop(models)
    loop.begin_reach([images["goal"]], 10.0, budgets=[2], tolerance=1e-6)
    decisions = run_reach(loop, images["here"], 10)
    assert [d.kind for d in decisions] == [PLAN, PLAN, FINISHED]
    outcome = decisions[-1].outcome
    assert (outcome.reason, outcome.steps, outcome.goals_reached) == ("budget exhausted", 2, 0)
    assert "budget of 2 steps" in outcome.detail
    expected = loop.energy(observe(models, images["here"], T0), loop.goal_tensor(images["goal"]))
    assert decisions[0].energy == pytest.approx(expected) and outcome.final_energy == pytest.approx(expected)


def test_reach_goal_ends_on_stale_input(models, images):
    loop = make_loop(models, stale_abort_after=1.0)
    loop.begin_reach([images["goal"]], 10.0, budgets=[100], tolerance=1e-6)
    assert feed(loop, images["here"], T0, 10.0).kind == PLAN
    # The camera stops: the last frame stays the latest; waiting until stale_abort_after after it arrived.
    assert loop.step(loop.inputs.latest, T0 + NS // 2, 10.9).kind == WAIT
    end = loop.step(loop.inputs.latest, T0 + NS, 11.01)
    assert end.kind == FINISHED and end.outcome.reason == "stale input" and end.outcome.steps == 1


def test_reach_goal_with_repeated_stamps_ends_as_stale(models, images):
    """Frames that keep one stamp are not new input: the goal cannot wait on them forever."""
    loop = make_loop(models, stale_abort_after=1.0)
    loop.begin_reach([images["goal"]], 10.0, budgets=[100], tolerance=1e-6)
    assert feed(loop, images["here"], T0, 10.0).kind == PLAN
    kinds = [feed(loop, images["here"], T0 + int(i * 0.1 * NS), 10.0 + i * 0.3, stamp_ns=T0).kind
             for i in range(1, 5)]
    assert kinds == [WAIT, WAIT, WAIT, FINISHED]


def test_reach_goal_after_a_day_ahead_stamp_still_plans_and_ends(models, images):
    loop = make_loop(models)
    assert loop.inputs.offer(observe(models, images["here"], T0 + 86_400 * NS), T0) != ""
    loop.begin_reach([images["goal"]], 10.0, budgets=[2], tolerance=1e-6)
    decisions = run_reach(loop, images["here"], 10)
    assert [d.kind for d in decisions] == [PLAN, PLAN, FINISHED]
    assert decisions[-1].outcome.reason == "budget exhausted"
    assert loop.status_values(T0)["future_stamps"] == 1


def test_reach_goal_canceled(models, images):
    loop = make_loop(models)
    loop.begin_reach([images["goal"]], 10.0, budgets=[100], tolerance=1e-6)
    assert feed(loop, images["here"], T0, 10.0).kind == PLAN
    loop.end("canceled")
    end = loop.step(loop.inputs.latest, T0 + NS // 10, 10.1)
    assert end.kind == FINISHED and end.outcome.reason == "canceled" and not end.outcome.success
    assert loop.goal_kind == "none"


def test_reach_goal_deadline_from_the_budget(models, images):
    """Steps that keep coming but slowly: the goal ends at its summed budgets x max_step_time."""
    loop = make_loop(models, max_step_time=0.1, stale_abort_after=10.0)
    loop.begin_reach([images["goal"]] * 2, 10.0, budgets=[5, 5], tolerance=1e-6)   # deadline 1 s after the start
    decisions = run_reach(loop, images["here"], 20, dt=0.4)
    assert [d.kind for d in decisions] == [PLAN, PLAN, PLAN, FINISHED]
    outcome = decisions[-1].outcome
    assert outcome.reason == "deadline" and outcome.steps == 3 and "more than 1.0 s" in outcome.detail


@pytest.mark.parametrize("budgets, goals, words", [
    ([3, 3], 1, "step_budgets has 2 entries for 1 goals"),
    ([0], 1, r"budgets\[0\] must be an int >= 1"),
    (None, 0, "at least one goal"),
])
def test_reach_goal_invalid_requests(models, images, budgets, goals, words):
    loop = make_loop(models)
    with pytest.raises(InvalidGoalError, match=words):
        loop.begin_reach([images["goal"]] * goals, 10.0, budgets=budgets)
    assert loop.goal_kind == "none"


def test_goal_image_count_is_capped_by_max_goal_images():
    cap = PlannerSettings().max_goal_images
    assert cap == 16
    check_goal_image_count(cap, cap)
    with pytest.raises(InvalidGoalError, match=r"17 goal_images exceed max_goal_images \(16\)"):
        check_goal_image_count(cap + 1, cap)
    with pytest.raises(SettingsError, match="max_goal_images"):
        make_settings(PlannerSettings, {"max_goal_images": 0})


def test_invalid_goal_features_are_refused(models, images):
    loop = make_loop(models)
    with pytest.raises(InvalidGoalError, match="differ from the models'"):
        loop.begin_reach([images["goal"][:3]], 10.0)
    with pytest.raises(InvalidGoalError, match="NaN or Inf"):
        loop.set_topic_goal(np.full_like(images["goal"], math.nan))
    with pytest.raises(InvalidGoalError, match="goal.model_id 'x' is not the planner's encoder"):
        loop.goal_tensor(images["goal"], model_id="x")
    loop.refuse_goal("invalid goal on /jepa/goal_image: unsupported encoding 'yuv9'")
    assert loop.invalid_goals == 1 and loop.status_values(T0)["invalid_goals"] == 1
    assert loop.step(None, T0, 0.0).message == "waiting: no goal (invalid goal on /jepa/goal_image: unsupported " \
                                              "encoding 'yuv9')"


def test_topic_goals_are_refused_while_a_reach_goal_runs(models, images):
    loop = make_loop(models)
    loop.begin_reach([images["goal"]], 10.0)
    with pytest.raises(InvalidGoalError, match="a ReachGoal action is running"):
        loop.set_topic_goal(images["here"])
    assert loop.goal_kind == "action"


# ---------------------------------------------------------------------------------------------------- predict
def test_predict_rolls_out_and_refuses_bad_requests(models, images):
    loop = make_loop(models)
    context = observe(models, images["here"], T0)
    predictions, energies = loop.predict(context, [0.01, 0.0, -0.05] * 2, 2, images["goal"])
    assert predictions.shape == (2, 64, 64) and energies.shape == (2,) and np.isfinite(energies).all()
    assert loop.predict(context, [0.0] * 3, 1)[1] is None
    bad = [([1e30, 0.0, 0.0], 1, r"actions\[0\] dx=1e\+30 is outside the action space \[-0.05, 0.05\] m"),
           ([0.0, 0.0, -0.0501] * 1, 1, "dz=-0.0501 is outside the action space"),
           ([0.0, math.nan, 0.0], 1, "actions contain NaN or Inf"),
           ([0.0] * 5, 2, "needs 6"), ([0.0] * 27, 9, r"horizon 9 must be in \[1, 8\]")]
    for actions, horizon, words in bad:
        with pytest.raises(PredictError, match=words):
            loop.predict(context, actions, horizon)
    with pytest.raises(PredictError, match="context.model_id"):
        loop.predict(observe(models, images["here"], T0, model_id="x"), [0.0] * 3, 1)
    with pytest.raises(PredictError, match="goal: goal features"):
        loop.predict(context, [0.0] * 3, 1, images["goal"][:5])

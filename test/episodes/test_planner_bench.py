"""The planner on the real (tiny, random-weight) predictor and on the shipped trained models with real sim
problems, and the `jepa bench planner` CLI."""
import json
import math

import pytest
import torch

from jepa_episodes.bench import (ModelSize, TrainedProblems, build_model, final_energy, make_problem,
                                reference_box, trained_settings)
from jepa_planner.cem import CEMConfig, CEMPlanner
from jepa_planner.energy import l1_energy
from jepa_planner.held_actions import HeldActions
from jepa_planner.reference import reference_cem
from jepa_ros.cli import main as jepa_main

pytestmark = pytest.mark.slow  # real sim problems and trained models: several seconds each on a loaded machine


def test_default_planner_on_the_tiny_predictor_beats_holding_still():
    model = build_model(ModelSize("tiny", "tiny"), "cpu")
    context, state, goal = make_problem(model, horizon=1, seed=3, device="cpu")
    cfg = CEMConfig(low=[-0.05] * 3, high=[0.05] * 3, samples=64, iterations=4)
    result = CEMPlanner(model, l1_energy, cfg).plan(context, state, goal)
    assert result.ok and result.actions.shape == (1, 3) and result.actions.abs().max() <= 0.05
    hold = final_energy(model, context, state, goal, torch.zeros(1, 3))
    assert result.energy < 0.9 * hold
    assert abs(final_energy(model, context, state, goal, result.actions) - result.energy) < 1e-5
    assert torch.allclose(result.predictions, model.rollout(context, state, result.actions[None])[0], atol=1e-5)


def test_bench_cli_quick_writes_table_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert jepa_main(["bench", "planner", "--quick", "--device", "cpu", "--models", "random", "--json",
                      str(path)]) == 0
    out = capsys.readouterr().out
    assert "| reference (quick) | tiny | cpu |" in out and "| project-default (quick) |" in out
    report = json.loads(path.read_text())
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"] == torch.__version__
    rows = {r["setting"]: r for r in report["results"]}
    assert set(rows) == {"reference (quick)", "project-default (quick)"}
    for r in rows.values():
        for key in ("setting", "device", "samples", "iterations", "horizon", "ms_per_action", "final_energy",
                    "reference_ms_per_action", "reference_final_energy", "speedup"):
            assert key in r
        assert r["ms_per_action"] > 0 and r["reference_ms_per_action"] > 0
        assert r["speedup"] == r["reference_ms_per_action"] / r["ms_per_action"]
        assert 0 < r["final_energy"] < 1 and 0 < r["reference_final_energy"] < 1
        # Ours evaluates at most samples * iterations sequences plus the final mean; the reference exactly that.
        assert 0 < r["sequences_evaluated"] <= r["samples"] * r["iterations"] + 1  # prepared rollouts count too
        assert r["reference_sequences_evaluated"] == r["reference_samples"] * r["reference_iterations"]
    assert rows["reference (quick)"]["samples"] == rows["reference (quick)"]["reference_samples"]


def test_planning_through_a_prepared_context_matches_the_plain_rollout():
    model = build_model(ModelSize("tiny", "tiny"), "cpu")
    context, state, goal = make_problem(model, horizon=2, seed=4, device="cpu")

    class PlainRollout:  # the same model without prepare_context
        max_horizon = model.max_horizon
        rollout = staticmethod(model.rollout)

    cfg = CEMConfig(low=[-0.05] * 3, high=[0.05] * 3, samples=48, iterations=3, horizon=2, early_stop_patience=0)
    prepared = CEMPlanner(model, l1_energy, cfg).plan(context, state, goal)
    plain = CEMPlanner(PlainRollout(), l1_energy, cfg).plan(context, state, goal)
    assert abs(prepared.energy - plain.energy) <= 1e-5 * plain.energy
    torch.testing.assert_close(prepared.actions, plain.actions, atol=1e-6, rtol=0)
    torch.testing.assert_close(prepared.predictions, plain.predictions, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def trained():
    """Both shipped trained models' problem builders (CPU), sims closed afterwards."""
    built = {name: TrainedProblems(name, "cpu") for name in ("default", "push_default")}
    yield built
    for problems in built.values():
        problems.close()


def test_trained_problems_are_real_deterministic_and_use_the_deployed_planner(trained, one_torch_thread):
    reach, push = trained["default"], trained["push_default"]
    # The deployed planners: reach at the defaults (horizon 1, the model's box); push horizon 1 with dz held at 0,
    # each action scored held for 8 steps (both planners roll out the same held actions).
    assert reach.config.horizon == 1 and not reach.config.fixed_dims and reach.model is reach.predictor
    assert tuple(reach.config.low) == tuple(reach.predictor.action_space.low)
    assert push.config.horizon == 1 and dict(push.config.fixed_dims) == {2: 0.0}
    assert isinstance(push.model, HeldActions) and push.model.steps == 8 and push.model.model is push.predictor
    # the deployed push planner ranks by the closest held frame; the rows rank as the reference does, by the last
    assert push.config.energy_mode == "closest"
    assert {row.ours.energy_mode for row in trained_settings(push.config)} == {"final"}
    low, high = reference_box(push.config)
    assert low[2] == high[2] == 0.0
    assert low[:2] == tuple(push.config.low[:2]) and high[:2] == tuple(push.config.high[:2])
    for problems in (reach, push):
        first = problems.make(problems.config.horizon, seed=1001)
        info = dict(problems.info[1001])
        problems.make(problems.config.horizon, seed=1002)  # another problem in between changes nothing
        again = problems.make(problems.config.horizon, seed=1001)
        other = problems.make(problems.config.horizon, seed=1002)
        n, d = problems.predictor.config.tokens_per_frame, problems.predictor.config.embed_dim
        context, state, goal = first
        assert context.shape == (1, 1, n, d) and state.shape == (1, 1, 3) and goal.shape == (n, d)
        for a, b in zip(first, again):
            assert torch.equal(a, b)
        assert problems.info[1001] == info
        assert not torch.equal(first[2], other[2]) and not torch.equal(first[1], other[1])
        # The state is the end-effector position of the rendered start; the goal image is not the current frame.
        torch.testing.assert_close(state[0, 0], torch.tensor(info["ee"], dtype=torch.float32))
        assert float(l1_energy(context[:, 0], goal)[0]) > 0.01
    assert trained["push_default"].info[1001]["goal"] == "behind"
    # A fresh builder (models loaded by name again, a new sim) gives the same problem.
    fresh = TrainedProblems("push_default", "cpu")
    try:
        for a, b in zip(fresh.make(1, seed=1001), push.make(1, seed=1001)):
            assert torch.equal(a, b)
    finally:
        fresh.close()


def test_bench_cli_quick_trained_rows_plan_on_the_same_real_problems(tmp_path, capsys, trained):
    path = tmp_path / "bench.json"
    assert jepa_main(["bench", "planner", "--quick", "--device", "cpu", "--models", "default", "push_default",
                      "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| reference (quick) | default | cpu | reach sim, goal image | 1 |" in out
    assert "| project-default (quick) | push_default | cpu | push sim, 'behind' image, actions held 8 steps | 1 (dz=0) |" in out
    rows = json.loads(path.read_text())["results"]
    assert [(r["model"], r["setting"]) for r in rows] == [
        (m, s) for m in ("default", "push_default") for s in ("reference (quick)", "project-default (quick)")]
    for r in rows:
        problems = trained[r["model"]]
        assert r["horizon"] == r["reference_horizon"] == problems.config.horizon
        assert r["ms_per_action"] > 0 and r["reference_ms_per_action"] > 0
        assert math.isfinite(r["final_energy"]) and math.isfinite(r["reference_final_energy"])
        assert 0 < r["final_energy"] < 2 and 0 < r["reference_final_energy"] < 2
        [problem] = r["per_problem"]
        assert problem["seed"] == 1001 and problem["final_energy"] == r["final_energy"]
        assert problem["reference_final_energy"] == r["reference_final_energy"]
        # Both energies belong to this very problem: rebuilding it from its seed and planning again with the
        # row's settings (the reference with the bench's generator seed 1) gives them back.
        setting = {s.name: s for s in trained_settings(problems.config, quick=True)}[r["setting"]]
        context, state, goal = problems.make(r["horizon"], problem["seed"])
        ref = setting.reference
        actions = reference_cem(problems.model, context, state, goal, low=ref.low, high=ref.high,
                                samples=ref.samples, iterations=ref.iterations, elites=ref.elites,
                                horizon=ref.horizon, generator=torch.Generator().manual_seed(1))
        assert final_energy(problems.model, context, state, goal, actions) == pytest.approx(
            r["reference_final_energy"], rel=1e-5)
        ours = CEMPlanner(problems.model, l1_energy, setting.ours).plan(context, state, goal)
        assert final_energy(problems.model, context, state, goal, ours.actions) == pytest.approx(
            r["final_energy"], rel=1e-5)
        if problems.config.fixed_dims:  # dz held at 0 by both planners
            assert torch.all(ours.actions[:, 2] == 0) and torch.all(actions[:, 2] == 0)

"""The planner on the real (tiny, random-weight) predictor, and the `jepa bench planner` CLI."""
import json

import torch

from jepa_planner.bench import ModelSize, build_model, final_energy, make_problem
from jepa_planner.cem import CEMConfig, CEMPlanner
from jepa_planner.energy import l1_energy
from jepa_ros.cli import main as jepa_main


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
    assert jepa_main(["bench", "planner", "--quick", "--device", "cpu", "--json", str(path)]) == 0
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

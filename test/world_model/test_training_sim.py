"""Record the built-in simulation -> train a tiny predictor -> held-out rollout error beats the baselines."""
import json

import numpy as np
import pytest
import torch

from jepa_world_model import load_encoder, load_predictor
from test.support.training import FAST_TRAIN_ARGS, jepa_in_process, sim_recording

pytestmark = pytest.mark.slow


def test_record_train_evaluate_on_sim(tmp_path_factory, tmp_path):
    train_dir = sim_recording(tmp_path_factory, "train", episodes=12, steps=24, seed=0)
    held_out = sim_recording(tmp_path_factory, "heldout", episodes=4, steps=24, seed=100)
    out, cache = tmp_path / "model", tmp_path / "cache"

    jepa_in_process("train", str(train_dir), "--out", str(out), "--cache-dir", str(cache), "--steps", "600",
                    "--batch-size", "8", "--clip-len", "3", "--lr", "1e-2", "--start-lr", "1e-3", "--warmup", "0.05",
                    *FAST_TRAIN_ARGS)
    report, plot = tmp_path / "eval.json", tmp_path / "landscape.png"
    jepa_in_process("eval-offline", "--checkpoint", str(out), str(held_out), "--cache-dir", str(cache),
                    "--horizon", "3", "--json", str(report), "--plot", str(plot))

    result = json.loads(report.read_text())
    errors = result["rollout_l1"]
    print("held-out rollout L1 per step:", json.dumps(errors), "landscape argmin error / span:",
          np.mean(result["landscape_argmin_error"]), np.mean(result["landscape_span"]))
    assert result["episodes"] == 4 and result["skipped"] == 0
    for h in range(3):  # at every horizon step
        assert errors["trained"][h] < 0.9 * errors["no_motion"][h], errors
        assert errors["trained"][h] < 0.2 * errors["untrained"][h], errors
    assert result["mean_l1"]["trained"] < 0.85 * result["mean_l1"]["no_motion"]
    # the energy minimum lies near the true action (a random grid point would be ~0.77 span away)
    assert np.mean(result["landscape_argmin_error"]) < 0.4 * np.mean(result["landscape_span"]), result
    assert len(result["energy_landscape"]["energy"]) == 21
    assert plot.stat().st_size > 0 and (out / "loss_curve.png").stat().st_size > 0

    # The run's own verdict: one of the 12 episodes held out, the model better than "no motion" on it.
    verdict = json.loads((out / "config.json").read_text())["metadata"]["verdict"]
    assert verdict["held_out_episodes"] == 1 and verdict["better_than_no_motion"] and verdict["ratio"] < 0.9, verdict
    assert verdict["summary"].startswith("verdict: better than no motion")

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 601))
    assert np.mean([r["loss"] for r in rows[-50:]]) < 0.2 * np.mean([r["loss"] for r in rows[:5]])

    # The checkpoint loads through the public loaders; the planner gets the normalisation from it.
    predictor = load_predictor(out)
    encoder = load_encoder(out)
    assert predictor.encoder_id == encoder.model_id
    assert predictor.action_space.names == ("dx", "dy", "dz") and predictor.state_space.names == ("x", "y", "z")
    assert 0.005 < predictor.action_space.std[0] < 0.05  # metres per step, from the training data
    frame = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    features = encoder(frame)[None]
    pred = predictor.rollout(features, torch.tensor([[[0.3, 0.0, 0.15]]]), torch.zeros(2, 2, 3))
    assert pred.shape == (2, 2, 16, encoder.embed_dim) and torch.isfinite(pred).all()

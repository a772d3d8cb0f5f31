"""The verdict of a training run: held-out episodes, rollout error against "no motion", a WARNING when worse."""
import numpy as np
import pytest
import torch

from jepa_world_model import load_encoder, load_predictor
from jepa_world_model.data.dataset import ReadOptions, load_episodes
from jepa_world_model.training.verdict import format_verdict, held_out_split, held_out_verdict
from test.support.training import sim_recording

pytestmark = pytest.mark.slow


@pytest.mark.unit
def test_held_out_split_is_seeded_disjoint_and_keeps_training_data():
    train, held = held_out_split(100, 0.05, seed=0)
    assert len(held) == 5 and sorted(train + held) == list(range(100)) and not set(train) & set(held)
    assert held_out_split(100, 0.05, seed=0) == (train, held) and held_out_split(100, 0.05, seed=1)[1] != held
    assert held_out_split(12, 0.05, seed=0)[1] and len(held_out_split(12, 0.05, seed=0)[0]) == 11  # at least one
    assert held_out_split(1, 0.05, seed=0) == ([0], []) and held_out_split(10, 0.0, seed=0) == (list(range(10)), [])


def test_an_untrained_predictor_gets_a_warning_and_the_true_future_would_not(tmp_path_factory):
    data = sim_recording(tmp_path_factory, "verdict", episodes=2, steps=6, seed=3)
    episodes, _ = load_episodes([str(data)], ReadOptions())
    encoder = load_encoder("tiny", crop_size=32, output_layer_norm=True)
    with torch.no_grad():
        features = [encoder(torch.from_numpy(e.frames)).numpy() for e in episodes]
    predictor = load_predictor("tiny", embed_dim=encoder.embed_dim, grid_size=(4, 4))

    verdict = held_out_verdict(predictor, episodes, features, horizon=3)
    assert verdict["held_out_episodes"] == 2 and verdict["clips"] == 2 * 4 and verdict["horizon"] == 3
    assert len(verdict["rollout_l1_per_step"]) == 3 and verdict["no_motion_l1"] > 0
    assert verdict["better_than_no_motion"] is False and verdict["ratio"] > 1.0
    line = format_verdict(verdict)
    assert line.startswith("WARNING: the model is NOT better than no motion") and "ratio" in line

    good = dict(verdict, rollout_l1=0.5 * verdict["no_motion_l1"], ratio=0.5, better_than_no_motion=True)
    assert format_verdict(good).startswith("verdict: better than no motion")
    assert np.isclose(held_out_verdict(predictor, episodes, features, horizon=9)["horizon"], 6)  # shortened
    assert format_verdict(held_out_verdict(predictor, [], [], horizon=3)).startswith("WARNING: no verdict")

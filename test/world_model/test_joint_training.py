"""`jepa train --recipe joint`: the pooled encoder and the predictor trained together from pixels (real sim
recordings, the real reader, trainer and planner loop; tiny models for a few steps)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
from jepa_world_model import load_encoder, load_predictor
from jepa_world_model.config import EncoderConfig
from jepa_world_model.errors import ConfigError
from jepa_world_model.training.joint import anti_collapse, normality_gap
from test.support.training import jepa_in_process


@pytest.mark.unit
def test_a_pooled_encoder_gives_one_token_per_tubelet():
    encoder = load_encoder("tiny", pooled_dim=24, crop_size=32)
    images = torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)
    clips = torch.randint(0, 255, (2, 4, 32, 32, 3), dtype=torch.uint8)
    assert encoder(images).shape == (3, 1, 24)
    assert encoder(clips).shape == (2, 2, 24)
    assert encoder.embed_dim == 24 and encoder.num_tokens(num_frames=4) == 2
    assert encoder.config.token_grid == 1


@pytest.mark.unit
def test_patch_encoders_keep_their_model_id_and_bad_pooled_dims_are_refused():
    config = EncoderConfig(name="tiny", patch_size=8, crop_size=64, width=64, depth=2, num_heads=4, mlp_hidden=256)
    assert "pooled_dim" not in config.to_dict()  # the fingerprint (model_id) of every existing encoder is unchanged
    assert config.replace(pooled_dim=8).to_dict()["pooled_dim"] == 8
    assert EncoderConfig.from_dict(config.replace(pooled_dim=8).to_dict()).pooled_dim == 8
    for bad in (-1, True, 2.5):
        with pytest.raises(ConfigError, match="pooled_dim"):
            config.replace(pooled_dim=bad)


@pytest.mark.unit
def test_the_anti_collapse_term_is_high_for_collapsed_features_and_low_for_spread_ones():
    collapsed = torch.ones(64, 16)
    variance, covariance = anti_collapse(collapsed)
    assert variance.item() == pytest.approx(0.99, abs=0.01) and covariance.item() == pytest.approx(0.0, abs=1e-6)
    spread = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0))
    variance, covariance = anti_collapse(spread)
    assert variance.item() < 0.05 and covariance.item() < 0.05
    correlated = spread[:, :1].repeat(1, 16)  # one factor copied into every feature
    assert anti_collapse(correlated)[1].item() > 10.0


@pytest.mark.unit
def test_the_normality_gap_is_near_zero_for_normal_features_and_grows_with_clusters():
    torch.manual_seed(0)
    normal = torch.randn(512, 32)
    half_clustered = normal.clone()
    half_clustered[:256] = normal[0]     # half the frames share one vector: a per-feature variance still looks fine
    assert normality_gap(normal).item() < 0.02
    assert normality_gap(half_clustered).item() > 0.3 > anti_collapse(half_clustered)[0].item()
    assert normality_gap(normal[:1].repeat(512, 1)).item() > normality_gap(half_clustered).item()


@pytest.mark.slow
def test_joint_recipe_trains_the_encoder_and_the_planner_uses_it(tmp_path):
    data = tmp_path / "push"
    record_sim_episodes(data, 3, steps=12, seed=41, config=SimRecordingConfig(task="push"))
    out = tmp_path / "joint"
    jepa_in_process("train", str(data), "--out", str(out), "--recipe", "joint", "--steps", "6", "--batch-size", "4",
                    "--held-out", "0.34", "--encoder-override", "pooled_dim=16", "--checkpoint-every", "3",
                    "--sigreg-weight", "0.5", "--device", "cpu", "--no-progress")
    encoder, predictor = load_encoder(str(out)), load_predictor(str(out))
    assert encoder.config.pooled_dim == 16 and encoder.embed_dim == 16
    assert predictor.config.grid_size == (1, 1) and predictor.embed_dim == 16
    untrained = load_encoder("tiny", pooled_dim=16)
    moved = [not torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), untrained.state_dict().values())]
    assert all(moved), "every encoder weight is trained"
    metadata = json.loads((out / "config.json").read_text())["metadata"]
    assert metadata["training"]["recipe"] == "joint" and metadata["encoder"]["trained"] is True
    assert metadata["verdict"]["clips"] > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(np.isfinite(r["variance"]) and 0.0 <= r["variance"] <= 1.0 for r in rows)
    assert all(np.isfinite(r["normality_gap"]) and r["normality_gap"] > 0.0 for r in rows)
    # the offline planner runs a push episode on it (the encoder comes with the predictor)
    report = tmp_path / "eval.json"
    jepa_in_process("eval", "--offline", "--task", "push", "--predictor", str(out), "--episodes", "1",
                    "--budget", "3", "--json", str(report))
    [record] = json.loads(report.read_text())["results"]
    assert record["task"] == "push" and record["outcome"] and len(record["ee_positions"]) >= 2

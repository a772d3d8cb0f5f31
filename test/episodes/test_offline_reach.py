"""The shipped default world model closes the loop on the built-in simulation (ROS-free, real MuJoCo and torch)."""
import numpy as np
import pytest
import torch

from jepa_episodes.offline_reach import ReachLoop, evaluate, load_models, workspace_box
from jepa_world_model import load_encoder, load_predictor
from jepa_world_model.checkpoints.files import DEFAULT_MODEL_DIR, resolve_source


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return load_models("default", "default")


def test_default_source_is_the_shipped_checkpoint(models):
    encoder, predictor = models
    assert resolve_source("default") == DEFAULT_MODEL_DIR
    assert resolve_source("tiny") == "tiny"
    assert predictor.encoder_id == encoder.model_id  # trained on this very encoder
    assert encoder.config.output_layer_norm and encoder.embed_dim == predictor.embed_dim
    assert encoder.num_tokens() == predictor.config.tokens_per_frame
    assert predictor.action_space.names == ("dx", "dy", "dz")
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.iterdir())
    assert size < 20 * 2**20


def test_reaching_shrinks_the_distance_to_the_goal(models):
    encoder, predictor = models
    loop = ReachLoop(encoder, predictor, ee_box=workspace_box())
    summary = evaluate(loop, episodes=2, seed=0, budget=10)
    for episode in summary["results"]:
        start, final = episode["distances"][0], episode["final_distance"]
        assert start > 0.05
        assert final < 0.5 * start, episode["distances"]
        assert all(np.isfinite(episode["energies"]))
    assert summary["median_plan_ms"] > 0


def test_mismatched_models_are_rejected():
    encoder = load_encoder("tiny", width=32, num_heads=4, mlp_hidden=64)
    predictor = load_predictor("tiny")
    with pytest.raises(ValueError, match="embed_dim"):
        ReachLoop(encoder, predictor)


def test_short_episodes_follow_each_other_on_one_loop(models):
    """Episodes of one or two plans back to back: the camera clock runs on, so every episode plans."""
    encoder, predictor = models
    loop = ReachLoop(encoder, predictor, ee_box=workspace_box())
    summary = evaluate(loop, episodes=4, seed=3, budget=1)
    assert [len(r["energies"]) for r in summary["results"]] == [1, 1, 1, 1]

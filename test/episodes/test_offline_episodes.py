"""The shipped models close the loop through the offline driver (ROS-free, real MuJoCo and torch): reach and
push episodes, determinism for a seed, and `jepa eval --offline` writing the one JSON schema."""
import json

import numpy as np
import pytest
import torch

from jepa_common.outcomes import NORMAL_ENDS
from jepa_episodes.offline import OfflineDriver, load_models
from jepa_episodes.record import EpisodeSummary
from jepa_episodes.runner import run_episodes
from jepa_episodes.tasks.push import PUSH
from jepa_episodes.tasks.reach import REACH
from jepa_ros.cli import main as jepa
from jepa_world_model import load_encoder, load_predictor
from jepa_world_model.checkpoints.files import DEFAULT_MODEL_DIR, resolve_source
from test.support.episodes import short_push

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return load_models("default", "default")


def reach(models, episodes, seed, budget):
    driver = OfflineDriver(REACH, *models)
    try:
        return run_episodes(REACH, driver, REACH.sample(episodes, seed), (budget,), (1e-9,))
    finally:
        driver.close()


def test_default_source_is_the_shipped_checkpoint(models):
    encoder, predictor = models
    assert resolve_source("default") == DEFAULT_MODEL_DIR
    assert predictor.encoder_id == encoder.model_id  # trained on this very encoder
    assert encoder.config.output_layer_norm and encoder.embed_dim == predictor.embed_dim
    assert predictor.action_space.names == ("dx", "dy", "dz")


def test_reaching_shrinks_the_distance_and_is_deterministic(models):
    first = reach(models, 2, seed=0, budget=8)
    for record in first:
        assert record.start_distance > 0.05 and record.final_distance < 0.5 * record.start_distance, record.distances
        assert record.steps == 8 and record.reason in NORMAL_ENDS and all(np.isfinite(record.energies))
    again = reach(models, 2, seed=0, budget=8)
    assert [r.distances for r in again] == [r.distances for r in first]


def test_short_episodes_follow_each_other_on_one_loop(models):
    """Episodes of one plan back to back: the camera clock runs on, so every episode plans."""
    assert [r.steps for r in reach(models, 4, seed=3, budget=1)] == [1, 1, 1, 1]


def test_mismatched_models_are_rejected():
    encoder = load_encoder("tiny", width=32, num_heads=4, mlp_hidden=64)
    with pytest.raises(ValueError, match="embed_dim"):
        OfflineDriver(REACH, encoder, load_predictor("tiny"))


def test_a_push_episode_moves_the_puck_toward_its_target():
    driver = OfflineDriver(PUSH, *load_models(PUSH.model, PUSH.model))
    try:
        [record] = run_episodes(PUSH, driver, [short_push()], (6, 14), PUSH.tolerances(0.0, 2))
    finally:
        driver.close()
    assert record.final_distance < record.start_distance - 0.02, (record.distances, record.outcome)
    assert record.success, (record.final_distance, record.outcome)
    assert set(record.goal_index) <= {0, 1} and len(record.object_positions) == record.steps + 2


def test_jepa_eval_offline_writes_the_episode_schema(tmp_path):
    out = tmp_path / "eval.json"
    assert jepa(["eval", "--offline", "--episodes", "1", "--seed", "0", "--budget", "2", "--json", str(out)]) == 0
    summary = EpisodeSummary.from_dict(json.loads(out.read_text()))
    assert (summary.task, summary.driver, len(summary.records)) == ("reach", "offline", 1)
    assert summary.records[0].steps == 2 and summary.extra["planner_settings"]["mode"] == "continuous"

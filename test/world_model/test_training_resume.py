"""SIGKILL training right after a checkpoint, resume, and land where the uninterrupted run landed."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from jepa_world_model import ActionSpace, StateSpace, load_predictor, save_checkpoint
from jepa_world_model.training.train import TrainConfig, build_predictor
from test.support.training import FAST_TRAIN_ARGS, REPO, jepa_in_process, sim_recording, single_thread_env

pytestmark = pytest.mark.slow

STEPS = 60


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path_factory, tmp_path):
    data = sim_recording(tmp_path_factory, "small", episodes=4, steps=12, seed=3)
    common = [str(data), "--cache-dir", str(tmp_path / "cache"), "--steps", str(STEPS), "--batch-size", "4",
              "--clip-len", "3", "--lr", "3e-3", "--checkpoint-every", "20", *FAST_TRAIN_ARGS]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    jepa_in_process("train", *common, "--out", str(reference))

    proc = subprocess.Popen([sys.executable, "-m", "jepa_ros.cli", "train", *common, "--out", str(killed)],
                            cwd=REPO, env=single_thread_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_checkpoint = killed / "checkpoints" / "step_0000020"
    deadline = time.monotonic() + 240
    while not first_checkpoint.is_dir():
        assert proc.poll() is None, f"training ended before its first checkpoint: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    interrupted = _rows(killed)
    assert 20 <= len(interrupted) < STEPS, "the kill must land mid-run"
    assert not (killed / "model.safetensors").exists()
    for checkpoint in (killed / "checkpoints").glob("step_*"):  # as written before change_weight existed
        state = torch.load(checkpoint / "training_state.pt", weights_only=False)
        del state["config"]["change_weight"]
        torch.save(state, checkpoint / "training_state.pt")

    jepa_in_process("train", *common, "--out", str(killed), "--resume")
    resumed, expected = _rows(killed), _rows(reference)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([r["loss"] for r in resumed], [r["loss"] for r in expected], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose([r["lr"] for r in resumed], [r["lr"] for r in expected], rtol=1e-12)
    assert resumed[-1]["loss"] < 0.5 * resumed[0]["loss"]


@pytest.mark.unit
def test_init_from_a_checkpoint_with_other_action_dims_keeps_the_rest(tmp_path):
    source = load_predictor("tiny", action_dim=7, state_dim=7, seed=5)
    save_checkpoint(tmp_path / "source", predictor=source)
    cfg = TrainConfig(data=["unused"], out=str(tmp_path / "out"), steps=1, init=str(tmp_path / "source"))
    actions, states = ActionSpace.default(3), StateSpace.default(3)
    predictor = build_predictor(cfg, embed_dim=64, grid=8, clip_len=3, action_space=actions, state_space=states)
    assert predictor.config.action_space == actions and predictor.config.state_space == states
    fresh, kept = predictor.state_dict(), source.state_dict()
    assert fresh["action_encoder.weight"].shape == (64, 3)
    for key in ("predictor_embed.weight", "predictor_blocks.1.mlp.fc2.weight", "predictor_proj.bias"):
        assert torch.equal(fresh[key], kept[key]), key
    same_dims = build_predictor(cfg, 64, 8, 3, ActionSpace.default(7), StateSpace.default(7))
    assert torch.equal(same_dims.state_dict()["action_encoder.weight"], kept["action_encoder.weight"])
    with pytest.raises(ValueError, match="features of width 64"):
        build_predictor(cfg, embed_dim=32, grid=8, clip_len=3, action_space=actions, state_space=states)

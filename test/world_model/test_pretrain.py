"""`jepa pretrain` on sim recordings: the loss falls, the EMA target is its own encoder and works wherever an
encoder does, kill + --resume lands where the uninterrupted run did, 2 gloo ranks follow 1 rank, clear errors,
and the collapse guard stops an encoder whose features ignore the input."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from jepa_world_model import load_encoder, save_checkpoint
from jepa_world_model.training.collapse import CollapseError, CollapseGuard, effective_rank
from jepa_world_model.networks.mask_predictor import encode_visible
from jepa_world_model.training.masks import MaskError
from jepa_world_model.perception import FrameEncoder, PerceptionSettings
from jepa_world_model.training.pretrain import PretrainConfig, PretrainError, pretrain
from test.support.training import (FAST_PRETRAIN_ARGS, REPO, jepa_in_process, rewrite_recording, sim_recording,
                                   single_thread_env)

pytestmark = pytest.mark.slow

OVERRIDES = {"crop_size": 32, "patch_size": 4}


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _state(out: Path, step: int) -> dict:
    return torch.load(out / "checkpoints" / f"step_{step:07d}" / "training_state.pt", weights_only=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return sim_recording(tmp_path_factory, "small", episodes=4, steps=12, seed=3)


@pytest.mark.unit
def test_encoding_only_the_visible_tokens_of_all_tokens_is_the_encoder():
    encoder = load_encoder("tiny", seed=2, **OVERRIDES)
    pixels = encoder.preprocess(torch.rand(2, 4, 32, 32, 3))
    index = torch.arange(128).repeat(2, 1)
    with torch.no_grad():
        torch.testing.assert_close(encode_visible(encoder, pixels, index), encoder.encode_pixels(pixels))
        part = encode_visible(encoder, pixels, index[:, ::3])
    assert part.shape == (2, 43, 64)


def test_pretraining_loss_falls_and_the_target_encoder_works_everywhere(data, tmp_path):
    out = tmp_path / "pre"
    jepa_in_process("pretrain", str(data), "--out", str(out), "--steps", "60", "--checkpoint-every", "30", *FAST_PRETRAIN_ARGS)
    rows = _rows(out)
    assert [r["step"] for r in rows] == list(range(1, 61))
    losses = np.array([r["loss"] for r in rows])
    assert losses[-10:].mean() < 0.6 * losses[:5].mean()
    assert {"loss_short", "loss_long", "feature_std", "effective_rank", "ema", "lr"} <= set(rows[0])
    assert rows[0]["ema"] == pytest.approx(0.99) and rows[-1]["ema"] == pytest.approx(1.0)
    assert min(r["effective_rank"] for r in rows) > 3 and min(r["feature_std"] for r in rows) > 1e-2
    assert (out / "loss_curve.png").stat().st_size > 0

    # the exported encoder is the EMA target: not the context encoder, and moved away from the initial weights
    state = _state(out, 60)
    exported = load_encoder(out)
    assert exported.config.output_layer_norm and exported.config.crop_size == 32
    weights = exported.state_dict()
    for key, value in state["target_encoder"].items():
        assert torch.equal(weights[key], value), key
    differs = [k for k in weights if not torch.equal(weights[k], state["context_encoder"][k])]
    assert len(differs) == len(weights)
    initial = load_encoder("tiny", seed=0, **OVERRIDES).state_dict()
    assert not torch.equal(weights["blocks.0.attn.qkv.weight"], initial["blocks.0.attn.qkv.weight"])

    # ... and it is an encoder like any other: `jepa train --encoder DIR` (feature cache keyed by its identity),
    # the perception node's frame encoder
    trained = tmp_path / "train"
    jepa_in_process("train", str(data), "--out", str(trained), "--encoder", str(out), "--predictor", "tiny",
                    "--steps", "3", "--batch-size", "4", "--clip-len", "3", "--cache-dir", str(tmp_path / "cache"),
                    "--no-progress", "--device", "cpu")
    config = json.loads((trained / "config.json").read_text())
    assert config["encoder_id"] == exported.model_id == load_encoder(trained).model_id
    frame_encoder = FrameEncoder(PerceptionSettings(model=str(out), device="cpu"))
    assert frame_encoder.model_id == exported.model_id
    features = frame_encoder.encode(np.zeros((64, 64, 3), dtype=np.uint8))
    assert features.shape == (64, 64) and np.isfinite(features).all()


def test_killed_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    common = [str(data), "--steps", "60", "--checkpoint-every", "20", *FAST_PRETRAIN_ARGS]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    jepa_in_process("pretrain", *common, "--out", str(reference))

    proc = subprocess.Popen([sys.executable, "-m", "jepa_ros.cli", "pretrain", *common, "--out", str(killed)],
                            cwd=REPO, env=single_thread_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = killed / "checkpoints" / "step_0000020"
    deadline = time.monotonic() + 240
    while not first.is_dir():
        assert proc.poll() is None, f"pretraining ended before its first checkpoint: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    interrupted = _rows(killed)
    assert 20 <= len(interrupted) < 60, "the kill must land mid-run"
    assert not (killed / "model.safetensors").exists()

    jepa_in_process("pretrain", *common, "--out", str(killed), "--resume")
    resumed, expected = _rows(killed), _rows(reference)
    assert [r["step"] for r in resumed] == list(range(1, 61))
    for key in ("loss", "loss_short", "loss_long", "lr", "ema", "feature_std"):
        np.testing.assert_allclose([r[key] for r in resumed], [r[key] for r in expected], rtol=1e-6, atol=1e-7,
                                   err_msg=key)
    a, b = load_file(str(killed / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=0, atol=1e-6, err_msg=key)
    with pytest.raises(PretrainError, match="options changed"):
        pretrain(PretrainConfig(data=[str(data)], out=str(killed), steps=60, checkpoint_every=20, batch_size=8,
                                lr=1e-3, encoder_overrides=OVERRIDES, progress=False, device="cpu"), resume=True)


def test_two_gloo_ranks_follow_one_rank(data, tmp_path):
    common = [str(data), "--steps", "10", "--checkpoint-every", "5", *FAST_PRETRAIN_ARGS]
    jepa_in_process("pretrain", *common, "--out", str(tmp_path / "one"))
    env = single_thread_env()
    env["GLOO_SOCKET_IFNAME"] = "lo"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "jepa_ros.cli", "pretrain", *common, "--out", str(tmp_path / "two")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(one) == len(two) == 10
    assert one[-1]["loss"] < 0.9 * one[0]["loss"]
    for key in ("loss", "loss_short", "loss_long", "feature_std"):
        np.testing.assert_allclose([r[key] for r in two], [r[key] for r in one], rtol=1e-4, atol=1e-6, err_msg=key)
    w_one = load_file(str(tmp_path / "one" / "model.safetensors"))
    w_two = load_file(str(tmp_path / "two" / "model.safetensors"))
    for key in w_one:
        np.testing.assert_allclose(w_two[key].numpy(), w_one[key].numpy(), rtol=1e-3, atol=1e-5, err_msg=key)


def test_clear_errors_for_missing_camera_short_clips_and_masks_without_context(data, tmp_path):
    blind = rewrite_recording(data / "episode_0000.mcap", tmp_path / "blind" / "episode.mcap",
                              drop=("/camera/image_raw",))
    config = lambda source, **kw: PretrainConfig(data=[str(source)], out=str(tmp_path / "out"), steps=2,  # noqa
                                                 batch_size=2, encoder_overrides=OVERRIDES, progress=False,
                                                 device="cpu", **kw)
    with pytest.raises(PretrainError, match="no usable recording.*no camera topic"):
        pretrain(config(blind.parent))
    with pytest.raises(PretrainError, match="no clip of 16 frames.*longest run of consecutive frames is 13"):
        pretrain(config(data, clip_len=16))
    with pytest.raises(PretrainError, match="not a multiple of the encoder's tubelet size 2"):
        pretrain(config(data, clip_len=3))
    with pytest.raises(MaskError, match="masks leave no context"):
        pretrain(config(data, short_blocks=0, long_scale=1.0))
    # the command line says the same and exits with status 2
    result = subprocess.run([sys.executable, "-m", "jepa_ros.cli", "pretrain", str(blind.parent), "--out",
                             str(tmp_path / "cli"), "--steps", "2", "--device", "cpu"], cwd=REPO,
                            env=single_thread_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no camera topic" in result.stderr


def test_collapse_guard_stops_an_encoder_with_constant_features(data, tmp_path):
    encoder = load_encoder("tiny", seed=0, **OVERRIDES)
    with torch.no_grad():  # the final LayerNorm outputs its bias whatever the input
        encoder.norm.weight.zero_()
        encoder.norm.bias.copy_(torch.linspace(-1.0, 1.0, encoder.embed_dim))
    save_checkpoint(tmp_path / "constant", encoder=encoder)
    with pytest.raises(CollapseError, match="representation collapse at step 5.*feature std across the batch"):
        pretrain(PretrainConfig(data=[str(data)], out=str(tmp_path / "out"), init=str(tmp_path / "constant"),
                                steps=50, batch_size=8, collapse_patience=5, progress=False, device="cpu"))
    rows = _rows(tmp_path / "out")
    assert len(rows) == 5 and all(r["feature_std"] < 1e-3 and r["effective_rank"] < 1.5 for r in rows)


@pytest.mark.unit
def test_collapse_numbers_and_guard():
    gen = torch.Generator().manual_seed(0)
    assert effective_rank(torch.randn(2000, 32, generator=gen)) > 25
    line = torch.randn(500, 1, generator=gen) * torch.randn(1, 32, generator=gen)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    assert effective_rank(torch.ones(4, 16, 32)) == 0.0
    guard = CollapseGuard(min_std=0.01, min_rank=2.0, patience=3)
    guard.update(1, std=0.001, rank=10.0)
    guard.update(2, std=0.5, rank=10.0)
    assert guard.below == 0
    guard.update(3, std=0.5, rank=1.0)
    guard.update(4, std=0.5, rank=1.0)
    with pytest.raises(CollapseError, match="effective rank 1 < 2 for 3 consecutive steps"):
        guard.update(5, std=0.5, rank=1.0)

"""Training sees the gripper: `jepa train --state-kind ee_pose_gripper` on `jepa record --sim --task grasp`
recordings gives a predictor with V-JEPA 2-AC's 7-D states [x, y, z, roll, pitch, yaw, gripper] and actions
dx .. dgripper (real MuJoCo recordings, the real reader and trainer, a tiny model for a few steps)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jepa_episodes.sim_recording import SimRecordingConfig, record_franka_episodes
from jepa_world_model.data.dataset import GRIPPER_KIND, ReadOptions, gripper_closedness, read_episode
from test.support.training import FAST_TRAIN_ARGS, jepa_in_process

pytestmark = pytest.mark.slow

STATE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")


def franka_recording(out, episodes: int = 2, steps: int = 24, seed: int = 3):
    """Scripted grasp episodes at a 32 px camera (the tiny encoder's crop)."""
    return record_franka_episodes(out, episodes, steps, seed, SimRecordingConfig(task="grasp", image_size=32))


def test_gripper_closedness_is_frankas_normalisation():
    assert gripper_closedness([[0.04, 0.04], [0.0, 0.0], [0.02, 0.02], [0.05, 0.05]]) == pytest.approx(
        [0.0, 1.0, 0.5, 0.0])


def test_the_reader_gives_the_7d_state_with_the_gripper_closing_during_a_grasp(tmp_path):
    paths = franka_recording(tmp_path / "rec", episodes=1, steps=40)
    episode = read_episode(paths[0], ReadOptions(state_kind=GRIPPER_KIND))
    assert episode.state_names == STATE_NAMES and episode.states.shape == (len(episode), 7)
    assert episode.state_units[-1] == "1"
    gripper = episode.states[:, 6]
    assert np.all((gripper >= 0.0) & (gripper <= 1.0))
    assert gripper[0] < 0.1  # the fingers start open
    assert gripper.max() > 0.3, gripper  # the script closes them on the cube within 40 steps
    pose = read_episode(paths[0], ReadOptions(state_kind="ee_pose"))
    np.testing.assert_allclose(episode.states[:, :6], pose.states, atol=1e-9)


def test_jepa_train_on_grasp_recordings_trains_a_7d_predictor(tmp_path):
    from jepa_world_model import load_predictor

    data = tmp_path / "grasp"
    franka_recording(data)
    out = tmp_path / "model"
    jepa_in_process("train", str(data), "--out", str(out), "--state-kind", GRIPPER_KIND, "--steps", "3",
                    "--batch-size", "4", "--held-out", "0", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
                    *FAST_TRAIN_ARGS)
    predictor = load_predictor(str(out))
    config = predictor.config
    assert tuple(config.state_space.names) == STATE_NAMES
    assert tuple(config.action_space.names) == ACTION_NAMES
    assert config.state_update == "ee_pose"
    low, high = np.asarray(config.state_space.low), np.asarray(config.state_space.high)
    assert 0.0 <= low[6] <= high[6] <= 1.0 and high[6] > low[6]  # the recordings open and close the gripper
    # `jepa eval --offline` plays a grasp episode with it (the encoder saved with it, FrankaSim at its crop size)
    result = tmp_path / "eval.json"
    jepa_in_process("eval", "--offline", "--task", "grasp", "--episodes", "1", "--budget", "2", "--predictor",
                    str(out), "--json", str(result), "--settings", '{"samples": 16, "iterations": 2, "elites": 4}')
    summary = json.loads(result.read_text())
    [record] = summary["results"]
    assert record["task"] == "grasp" and record["outcome"] and len(record["ee_positions"][0]) == 7


def test_jepa_eval_of_a_franka_task_without_a_predictor_refuses_in_one_line(capsys):
    from jepa_ros.cli import main as jepa_main

    for task in ("grasp", "pick_place"):
        assert jepa_main(["eval", "--task", task, "--episodes", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no shipped Franka model yet: pass --predictor" in err[0], err
        assert "docs/TRAINING.md" in err[0]

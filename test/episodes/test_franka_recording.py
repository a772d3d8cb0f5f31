"""`jepa record --sim --task grasp|pick_place`: scripted play of the Franka written as MCAP episodes with the 7-D
V-JEPA 2-AC actions on /jepa/plan, readable by the training dataset reader (real MuJoCo, real files)."""
from __future__ import annotations

import numpy as np
import pytest
from mcap.reader import make_reader

from jepa_common import topics
from jepa_episodes.sim_recording import (FRANKA_ACTION_NAMES, SimRecordingConfig, record_franka_episodes,
                                         record_sim_episodes)
from jepa_ros.cli import main as jepa_main
from jepa_sim.franka_sim import FINGER_JOINT_NAMES, JOINT_NAMES
from jepa_world_model.data.dataset import ReadOptions, read_episode
from jepa_world_model.data.recording import PLAN_TYPE, message_definition, typestore_for

pytestmark = pytest.mark.unit

STEPS = 12


def _messages(path) -> dict[str, list]:
    """{topic: [deserialised message, ...]} of one MCAP file."""
    out: dict[str, list] = {}
    with open(path, "rb") as stream:
        for schema, channel, message in make_reader(stream).iter_messages(log_time_order=True):
            store = typestore_for(schema.name, message_definition(schema.name))
            out.setdefault(channel.topic, []).append(store.deserialize_cdr(message.data, schema.name))
    return out


def test_jepa_record_sim_grasp_writes_two_episodes_with_7d_actions_the_dataset_reader_opens(tmp_path):
    out = tmp_path / "grasp"
    assert jepa_main(["record", "--sim", "--task", "grasp", "--episodes", "2", "--steps", str(STEPS), "--seed", "5",
                      "--out", str(out)]) == 0
    paths = sorted(out.glob("episode_*.mcap"))
    assert [p.name for p in paths] == ["episode_0000.mcap", "episode_0001.mcap"]
    starts = []
    for path in paths:
        messages = _messages(path)
        plans = messages[topics.PLAN]
        assert len(plans) == STEPS and len(messages[topics.CAMERA]) == STEPS + 1
        assert all(tuple(p.action_names) == FRANKA_ACTION_NAMES and p.horizon == 1 and len(p.actions) == 7
                   for p in plans)
        actions = np.array([p.actions for p in plans])
        assert np.all(np.isfinite(actions)) and np.abs(actions[:, :3]).max() > 0.005  # the script moves the arm
        assert len(messages[topics.SERVO_TWIST]) == STEPS and len(messages[topics.OBJECT_POSE]) == STEPS + 1
        joints = messages[topics.JOINT_STATES][0]
        assert tuple(joints.name) == JOINT_NAMES and set(FINGER_JOINT_NAMES) <= set(joints.name)
        image = messages[topics.CAMERA][0]
        assert (image.width, image.height) == (128, 128)  # the Franka's default camera size
        starts.append(np.array([messages[topics.EE_POSE][0].pose.position.x, messages[topics.EE_POSE][0].pose.position.y]))

        episode = read_episode(path, ReadOptions(state_kind="ee_pose"))
        assert episode.state_names == ("x", "y", "z", "roll", "pitch", "yaw") and len(episode) == STEPS + 1
        assert np.abs(episode.states[0, 3]) > 3.0  # rolled by pi: the gripper points down
        joint_episode = read_episode(path, ReadOptions(state_kind="joints"))
        assert joint_episode.state_names == JOINT_NAMES
    assert np.linalg.norm(starts[0] - starts[1]) > 1e-3  # random starts


def test_franka_recordings_are_deterministic_for_a_seed(tmp_path):
    config = SimRecordingConfig(task="pick_place", image_size=32)
    first = record_franka_episodes(tmp_path / "a", 1, 6, seed=2, config=config)
    again = record_sim_episodes(tmp_path / "b", 1, 6, seed=2, config=config)
    plans = [[tuple(p.actions) for p in _messages(paths[0])[topics.PLAN]] for paths in (first, again)]
    assert plans[0] == plans[1]
    assert typestore_for(PLAN_TYPE, message_definition(PLAN_TYPE))  # the schema the files carry


def test_the_step_mix_sets_the_largest_random_step_episode_by_episode_and_refuses_hostile_sizes(tmp_path, capsys):
    config = SimRecordingConfig(task="grasp", image_size=32, random_prob=1.0, franka_noise=0.0,
                                step_mix=(0.075, 0.01))
    paths = record_franka_episodes(tmp_path / "mix", 2, 8, seed=3, config=config)
    largest = [np.abs([p.actions[:3] for p in _messages(path)[topics.PLAN]]).max() for path in paths]
    assert 0.03 < largest[0] <= 0.075 and largest[1] <= 0.01, largest
    assert jepa_main(["record", "--sim", "--task", "grasp", "--out", str(tmp_path / "bad"), "--max-step", "5"]) == 2
    assert "step_mix must hold positive step sizes in m, at most 0.2" in capsys.readouterr().err

"""An official V-JEPA 2 encoder file and V-JEPA 2-AC predictor file in the loop of the Franka tasks, without ROS:
`jepa eval --offline --task pick_place --encoder E --predictor P` through the real CLI entry, real MuJoCo and real
torch models (tiny, untrained, official format at 256 px with 7-D actions: test/support/official_models.py).
What is checked is that the pair is taken as it comes (prefixed names, sizes from shapes, the 7-D layout, the
256 px input) and drives the arm, not the skill."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from jepa_common.outcomes import SUCCESS
from jepa_episodes.record import EpisodeSummary
from jepa_episodes.tasks.pick_place import PICK_PLACE
from jepa_ros.cli import main as jepa
from jepa_ros.episodes import evaluation
from jepa_world_model.checkpoints.bundle import EncoderSource
from test.support.official_models import INPUT_SIZE, official_pair

ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return official_pair(tmp_path_factory.mktemp("official"))


def launch_arguments(*options: str) -> dict[str, str]:
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)
    return evaluation.stack_arguments(parser.parse_args(list(options)))


@pytest.mark.unit
def test_the_camera_renders_the_official_encoders_input_on_the_franka_tasks_only(pair):
    encoder, predictor = pair
    assert EncoderSource(str(encoder)).input_size() == INPUT_SIZE  # from the file's shapes and the vit_l preset
    assert launch_arguments("--task", "pick_place", "--encoder", str(encoder), "--predictor", str(predictor)) == {
        "encoder": str(encoder), "predictor": str(predictor), "image_size": str(INPUT_SIZE)}
    # an encoder with a smaller input keeps the sim's camera; the 3-joint arm's tasks never get the argument
    assert "image_size" not in launch_arguments("--task", "grasp", "--encoder", "tiny", "--predictor", "tiny")
    assert "image_size" not in launch_arguments("--encoder", str(encoder), "--predictor", str(predictor))


@pytest.mark.unit
def test_jepa_eval_offline_runs_the_official_pair_on_pick_place(pair, tmp_path, one_torch_thread):
    encoder, predictor = pair
    out = tmp_path / "eval.json"
    # an untrained pair's energy hardly changes with the action: without the Franka defaults' price on motion and
    # do-nothing plan its plans move the arm, which shows that the 7-D actions reach the sim
    moving = json.dumps({"action_cost": 0.0, "include_neutral": False})
    code = jepa(["eval", "--offline", "--task", "pick_place", "--encoder", str(encoder), "--predictor",
                 str(predictor), "--episodes", "1", "--goal-images", "3", "--budget", "3", "--json", str(out),
                 "--settings", moving])
    assert code == 0
    summary = EpisodeSummary.from_dict(json.loads(out.read_text()))
    settings = summary.extra["planner_settings"]
    assert (summary.task, summary.driver) == ("pick_place", "offline")
    assert (settings["encoder"], settings["predictor"], settings["device"]) == (str(encoder), str(predictor), "auto")
    assert (settings["action_cost"], settings["include_neutral"]) == (0.0, False)
    [record] = summary.records
    assert record.outcome in (SUCCESS, *PICK_PLACE.failure_classes), record.outcome
    assert record.steps == 3 and record.goal_index == [0, 1, 2]  # one plan per goal image, all three images
    assert all(np.isfinite(record.energies)) and all(ms > 0 for ms in record.plan_ms)
    states = np.array(record.ee_positions)
    assert states.shape[1] == 7  # [x, y, z, roll, pitch, yaw, gripper]
    assert np.abs(states[-1, :3] - states[0, :3]).max() > 0.001  # the plans' actions moved the arm

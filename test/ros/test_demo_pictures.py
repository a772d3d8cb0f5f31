"""`jepa demo` through the nodes with a model that has a picture decoder (the shipped one when it has a decoder, else
a copy of it with a small random-weight decoder, passed with --predictor): one short reach episode, and its step
picture has a row per plan and the columns current | imagined step 1 | actual next | goal (the shipped planner plans
one step), the summary picture is still there, and summary.json names both and the decoder. On the Franka's
pick_place task with a tiny untrained 7-D model (no decoder): the summary picture has a column per goal image (3),
the step picture current | actual next | goal; without --predictor the demo refuses in one line (no Franka model
is shipped)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from jepa_episodes.pictures import column_labels
from jepa_ros.episodes import demo
from jepa_world_model.checkpoints.decoder_loading import find_decoder
from jepa_world_model.evaluation.pictures import strip
from test.ros.test_prediction_pictures import model_with_decoder

pytestmark = pytest.mark.nodes

BUDGET = 4
#: dots per inch and inches per panel of demo.png (jepa_ros.episodes.demo.save_picture)
DPI, PANEL = 80, 3


def demo_args(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(list(options))


def test_demo_draws_a_step_picture_per_episode(tmp_path):
    model = model_with_decoder(tmp_path)
    out = tmp_path / "demo"
    args = demo_args("--goals", "1", "--budget", str(BUDGET), "--predictor", model, "--out", str(out))

    assert demo.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["extra"]["pictures"] == {"summary": "demo.png", "steps": ["steps_episode_0.png"],
                                            "decoder": model}
    assert (out / "demo.png").is_file()
    steps = summary["results"][0]["steps"]
    assert 1 <= steps <= BUDGET
    picture = np.asarray(Image.open(out / "steps_episode_0.png"))
    size = find_decoder(model).config.image_size
    cell = np.zeros((size, size, 3), np.uint8)
    layout = strip([[cell] * 4] * steps, [f"step {i}" for i in range(1, steps + 1)], column_labels(1), scale=2)
    assert picture.shape == layout.shape


def test_demo_draws_pick_place_with_three_goal_images_and_a_7d_model(tmp_path):
    import torch

    from jepa_world_model import load_encoder, load_predictor
    from jepa_world_model.checkpoints.files import save_checkpoint
    from jepa_world_model.presets import EE7_ACTION, EE7_STATE

    torch.manual_seed(0)
    model = save_checkpoint(tmp_path / "franka", encoder=load_encoder("tiny", output_layer_norm=True),
                            predictor=load_predictor("tiny", action_space=EE7_ACTION, state_space=EE7_STATE,
                                                     state_update="ee_pose"))
    out = tmp_path / "demo"
    args = demo_args("--task", "pick_place", "--goal-images", "3", "--goals", "1", "--budget", "3", "--predictor",
                     str(model), "--out", str(out))

    assert demo.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["extra"]["pictures"] == {"summary": "demo.png", "steps": ["steps_episode_0.png"],
                                            "decoder": None}
    [record] = summary["results"]
    assert set(record["goal_index"]) == {0, 1, 2} and len(record["ee_positions"][0]) == 7
    panels = 1 + 3 + 1 + 2  # start, three goal images, final, energy and distance curves
    assert np.asarray(Image.open(out / "demo.png")).shape[:2] == (DPI * PANEL, DPI * PANEL * panels)
    assert np.asarray(Image.open(out / "steps_episode_0.png")).shape[0] > 0


@pytest.mark.unit
def test_demo_without_a_franka_model_refuses_in_one_line(tmp_path, capsys):
    assert demo.main(demo_args("--task", "grasp", "--out", str(tmp_path / "demo"))) == 2
    assert "no shipped Franka model yet" in capsys.readouterr().out
    assert not (tmp_path / "demo").exists()

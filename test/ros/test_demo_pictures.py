"""`jepa demo` through the nodes with a model that has a picture decoder (the shipped one when it has a decoder, else
a copy of it with a small random-weight decoder, passed with --predictor): one short reach episode, and its step
picture has a row per plan and the columns current | imagined step 1 | actual next | goal (the shipped planner plans
one step), the summary picture is still there, and summary.json names both and the decoder."""
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


def test_demo_draws_a_step_picture_per_episode(tmp_path):
    model = model_with_decoder(tmp_path)
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    out = tmp_path / "demo"
    args = parser.parse_args(["--goals", "1", "--budget", str(BUDGET), "--predictor", model, "--out", str(out)])

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

"""`jepa eval-offline` on the shipped model by its launch-file name, with tidy output."""
import argparse
import json
import re

import pytest

from jepa_world_model.evaluation import offline_eval
from test.support.training import sim_recording

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_eval_offline_accepts_the_default_model_name(tmp_path_factory, tmp_path, capsys):
    data = sim_recording(tmp_path_factory, "eval_default", episodes=2, steps=8, seed=21)
    parser = argparse.ArgumentParser()
    offline_eval.add_arguments(parser)
    args = parser.parse_args([str(data), "--checkpoint", "default", "--cache-dir", str(tmp_path / "cache"),
                              "--horizon", "2", "--landscape-clips", "2", "--json", str(tmp_path / "r.json")])
    assert offline_eval.main(args) == 0
    text = capsys.readouterr().out
    assert "None" not in text and not re.search(r"\d\.\d{5,}", text)  # no missing values, rounded numbers
    assert re.search(r"^   2 +\d\.\d{4} +\d", text, re.MULTILINE) and "energy minimum" in text
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["checkpoint"] == "default" and result["episodes"] == 2 and result["horizon"] == 2
    errors = result["mean_l1"]
    assert errors["trained"] < errors["untrained"] and errors["trained"] < errors["no_motion"], errors


def test_eval_offline_options_show_their_defaults():
    parser = argparse.ArgumentParser()
    offline_eval.add_arguments(parser)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in action.help, action.option_strings
    assert parser.parse_args(["data"]).checkpoint == "default"

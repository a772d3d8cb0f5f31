"""`jepa model-info` CLI module on a checkpoint written by the test, and the package import surface."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jepa_world_model import load_encoder, load_predictor, save_checkpoint
from jepa_world_model.checkpoints import model_info


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(argv):
    parser = argparse.ArgumentParser()
    model_info.add_arguments(parser)
    return model_info.main(parser.parse_args(argv))


def test_model_info_on_checkpoint(tmp_path, capsys):
    encoder = load_encoder("tiny")
    predictor = load_predictor("tiny", action_dim=7, state_dim=7)
    ckpt = save_checkpoint(tmp_path / "ck", encoder=encoder, predictor=predictor)
    assert _run([str(ckpt), "--json", str(tmp_path / "info.json")]) == 0
    text = capsys.readouterr().out
    assert "encoder 'tiny': width 64, depth 2, heads 4" in text and "actions 7-D" in text
    report = json.loads((tmp_path / "info.json").read_text())
    enc, pred = report["parts"]["encoder"], report["parts"]["predictor"]
    assert enc["parameters"] == sum(p.numel() for p in encoder.parameters())
    assert enc["forward"]["output_shape"] == [1, 64, 64] and enc["forward"]["time_ms"] > 0
    assert enc["model_id"] == encoder.model_id == pred["encoder_id"]
    assert (pred["action_dim"], pred["state_dim"], pred["depth"], pred["heads"]) == (7, 7, 2, 4)
    assert pred["forward"]["output_shape"] == [1, 1, 64, 64] and pred["max_horizon"] == 8


def test_model_info_partial_checkpoint_and_errors(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "p", predictor=load_predictor("tiny"))
    assert _run([str(ckpt), "--json", str(tmp_path / "p.json")]) == 0
    assert list(json.loads((tmp_path / "p.json").read_text())["parts"]) == ["predictor"]
    assert _run(["no_such_preset"]) == 1
    assert "unknown preset or model source 'no_such_preset'" in capsys.readouterr().err


def test_import_is_light():
    code = ("import sys, jepa_world_model; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "from jepa_world_model import load_encoder, ACPredictor, PredictorConfig; "
            "assert 'transformers' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_model_info_on_official_file(tmp_path):
    encoder, predictor = load_encoder("tiny"), load_predictor("tiny")
    data = {"encoder": {"module.backbone." + k: v for k, v in encoder.state_dict().items()},
            "predictor": {"module.backbone." + k: v for k, v in predictor.state_dict().items()}}
    torch.save(data, tmp_path / "official.pt")
    assert _run([str(tmp_path / "official.pt"), "--preset", "tiny", "--json", str(tmp_path / "o.json")]) == 0
    parts = json.loads((tmp_path / "o.json").read_text())["parts"]
    assert parts["encoder"]["model_id"] == encoder.model_id and parts["predictor"]["model_id"] == predictor.model_id


def _official_release_file(path, predictor_width=64):
    """Encoder and AC predictor in one .pt, as the official release stores them (tiny sizes, 7-D actions)."""
    from jepa_world_model.presets import EE7_ACTION, EE7_STATE

    encoder = load_encoder("tiny")
    predictor = load_predictor("tiny", width=predictor_width, mlp_hidden=4 * predictor_width,
                               action_space=EE7_ACTION, state_space=EE7_STATE)
    torch.save({"encoder": {"module.backbone." + k: v for k, v in encoder.state_dict().items()},
                "predictor": {"module.backbone." + k: v for k, v in predictor.state_dict().items()}}, path)
    return encoder, predictor


def test_model_info_reports_both_parts_of_an_official_release_file(tmp_path, capsys):
    encoder, predictor = _official_release_file(tmp_path / "vjepa2-ac-tiny.pt")
    assert _run([str(tmp_path / "vjepa2-ac-tiny.pt"), "--json", str(tmp_path / "o.json")]) == 0
    text = capsys.readouterr().out
    assert "encoder 'tiny': width 64, depth 2, heads 4" in text
    assert "predictor 'custom': width 64, depth 2, heads 4" in text and "LayerNorm eps 1e-06" in text
    assert "state update ee_pose" in text and "encoder_id n/a" in text and "None" not in text
    report = json.loads((tmp_path / "o.json").read_text())
    assert report["errors"] == {}
    assert report["parts"]["encoder"]["model_id"] == encoder.model_id
    pred = report["parts"]["predictor"]  # grid, time steps and spaces from the ac_vit_g preset
    assert pred["parameters"] == sum(p.numel() for p in predictor.parameters())
    assert pred["grid_size"] == [16, 16] and pred["state_names"][3:] == ["roll", "pitch", "yaw", "gripper"]


def test_model_info_says_how_to_give_heads_of_an_unknown_width(tmp_path, capsys):
    _, predictor = _official_release_file(tmp_path / "odd.pt", predictor_width=48)
    assert _run([str(tmp_path / "odd.pt")]) == 1
    text = capsys.readouterr().out
    assert "encoder 'tiny'" in text  # the part that loads is still reported
    assert "predictor: not loaded:" in text and "--predictor-heads N" in text
    assert _run([str(tmp_path / "odd.pt"), "--predictor-heads", "4", "--json", str(tmp_path / "o.json")]) == 0
    pred = json.loads((tmp_path / "o.json").read_text())["parts"]["predictor"]
    assert pred["heads"] == 4 and pred["parameters"] == sum(p.numel() for p in predictor.parameters())


def test_model_info_on_the_default_model(tmp_path, capsys):
    assert _run(["default", "--json", str(tmp_path / "d.json")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("source: default = ") and "sim_reach" in text and "None" not in text
    report = json.loads((tmp_path / "d.json").read_text())
    assert list(report["parts"]) == ["encoder", "predictor"]
    assert report["parts"]["predictor"]["encoder_id"] == report["parts"]["encoder"]["model_id"]
    assert report["parts"]["predictor"]["state_update"] == "add"


def test_model_info_options_show_their_defaults():
    parser = argparse.ArgumentParser()
    model_info.add_arguments(parser)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in action.help, action.option_strings

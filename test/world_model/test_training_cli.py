"""`jepa train` options come from TrainConfig: one option per documented field, with the dataclass default."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from jepa_world_model import load_predictor, save_checkpoint
from jepa_world_model.config import ActionSpace, StateSpace
from jepa_common.settings import settings_fields
from jepa_common.settings_cli import option_name
from jepa_world_model.training.train import TrainConfig, TrainingError, add_arguments, build_predictor, config_from_args

pytestmark = pytest.mark.unit

REQUIRED = ["data/", "--out", "runs/x"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jepa train")
    add_arguments(p)
    return p


def test_every_cli_default_is_the_dataclass_default():
    args = parser().parse_args(REQUIRED)
    fields = settings_fields(TrainConfig)
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {f.name for f in fields} == {
        "data", "out", "encoder_overrides", "predictor_overrides"}
    for field in fields:
        assert getattr(args, field.name) == field.default, field.name
    assert config_from_args(args) == TrainConfig(data=["data/"], out="runs/x")


def test_option_names_of_the_existing_cli_are_kept():
    help_text = parser().format_help()
    for option in ("--batch-size", "--lr", "--start-lr", "--warmup", "--decay", "--weight-decay", "--clip-grad",
                   "--clip-len", "--fps", "--rollout-steps", "--seed", "--checkpoint-every", "--cache-dir",
                   "--camera-topic", "--state-kind", "--state-topic", "--max-state-gap", "--device", "--steps",
                   "--epochs", "--init", "--encoder", "--predictor", "--no-save-encoder", "--no-progress",
                   "--encoder-override", "--predictor-override", "--resume"):
        assert option in help_text, option
    assert all(option_name(f) in help_text for f in settings_fields(TrainConfig))


def test_options_reach_the_config():
    args = parser().parse_args([*REQUIRED, "--steps", "7", "--batch-size", "8", "--lr", "1e-3", "--fps", "5",
                                "--state-kind", "joints", "--no-save-encoder", "--no-progress",
                                "--encoder-override", "crop_size=32", "--keep-checkpoints", "3"])
    cfg = config_from_args(args)
    assert (cfg.steps, cfg.epochs, cfg.batch_size, cfg.lr, cfg.fps, cfg.state_kind) == (7, None, 8, 1e-3, 5.0,
                                                                                      "joints")
    assert (cfg.save_encoder, cfg.progress, cfg.keep_checkpoints) == (False, False, 3)
    assert cfg.encoder_overrides == {"crop_size": 32}


def test_epochs_replace_the_default_steps_and_steps_exclude_epochs():
    assert (config_from_args(parser().parse_args(REQUIRED)).steps,
            config_from_args(parser().parse_args(REQUIRED)).epochs) == (14000, None)
    assert (config_from_args(parser().parse_args([*REQUIRED, "--epochs", "2"])).steps,
            config_from_args(parser().parse_args([*REQUIRED, "--epochs", "2"])).epochs) == (None, 2.0)
    with pytest.raises(SystemExit):
        parser().parse_args([*REQUIRED, "--steps", "3", "--epochs", "2"])


def test_a_recipe_sets_the_defaults_and_explicit_options_override_it():
    finetune = config_from_args(parser().parse_args([*REQUIRED, "--recipe", "finetune"]))
    assert (finetune.init, finetune.steps, finetune.lr, finetune.encoder) == ("default", 3000, 3e-4, "default")
    mine = config_from_args(parser().parse_args([*REQUIRED, "--recipe", "finetune", "--steps", "50", "--lr",
                                                 "1e-4", "--init", "runs/other"]))
    assert (mine.init, mine.steps, mine.lr, mine.start_lr) == ("runs/other", 50, 1e-4, 3e-5)
    with pytest.raises(SystemExit):
        parser().parse_args([*REQUIRED, "--recipe", "fast"])


def test_the_tiny_preset_trains_at_the_scratch_architecture_and_overrides_replace_it(tmp_path):
    spaces = (ActionSpace.default(3), StateSpace.default(3))
    build = lambda *options: build_predictor(  # noqa: E731
        config_from_args(parser().parse_args([*REQUIRED, *options])), 64, 4, 2, *spaces).config
    default = build()
    assert (default.width, default.mlp_hidden, default.num_heads, default.depth) == (96, 384, 4, 2)
    mine = build("--predictor-override", "depth=3", "--predictor-override", "width=64")
    assert (mine.width, mine.mlp_hidden, mine.num_heads, mine.depth) == (64, 384, 4, 3)
    save_checkpoint(tmp_path / "arch", predictor=load_predictor("tiny", embed_dim=64, grid_size=(4, 4), width=32,
                                                                 num_heads=2, mlp_hidden=64))
    assert build("--predictor", str(tmp_path / "arch")).width == 32  # a checkpoint keeps its own architecture


def test_a_value_outside_its_range_is_a_training_error():
    with pytest.raises(TrainingError, match="warmup: 1.5 is outside 0..1"):
        config_from_args(parser().parse_args([*REQUIRED, "--warmup", "1.5"]))
    for bad in ("-0.5", "nan", "101"):
        with pytest.raises(TrainingError, match="change_weight"):
            config_from_args(parser().parse_args([*REQUIRED, "--change-weight", bad]))
    with pytest.raises(TrainingError, match=r"change_weight must be in \[0, 100\]"):
        TrainConfig(data=["data/"], out="runs/x", change_weight=float("inf"))

"""A trained predictor carries its encoder and its calibrated planning tolerance; the planner node and `jepa eval`
use them when no encoder is given, and a mismatched encoder fails at start with one clear line."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from jepa_planner.mpc import FALLBACK_TOLERANCE, MPCLoop, PlannerModels, PlannerSettings
from jepa_world_model.checkpoints import bundle
from jepa_world_model.checkpoints.files import read_checkpoint_config
from jepa_world_model.errors import ConfigError
from jepa_common.settings import make_settings
from jepa_world_model.training.train import TrainConfig, train
from test.support.nodes import NodeProcess, ros_args
from test.support.training import sim_recording

MISMATCH = "encoder 'default' does not fit predictor"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    """Two tiny checkpoints trained a few steps on sim recordings: encoder weights included / by reference."""
    data = sim_recording(tmp_path_factory, "bundle", episodes=10, steps=20, seed=1)
    root = tmp_path_factory.mktemp("bundle")
    out = {}
    for name, save_encoder in (("included", True), ("reference", False)):
        cfg = TrainConfig(data=[str(data)], out=str(root / name), encoder="tiny", predictor="tiny",
                          encoder_overrides={"crop_size": 32}, steps=5, batch_size=8, progress=False,
                          cache_dir=str(root / "cache"), device="cpu", save_encoder=save_encoder)
        train(cfg)
        out[name] = root / name
    return out


def planner(predictor, **values) -> MPCLoop:
    settings = make_settings(PlannerSettings, {"predictor": str(predictor), "device": "cpu", **values})
    return MPCLoop(PlannerModels.load(settings), settings)


def test_a_trained_checkpoint_carries_its_encoder_and_calibrated_tolerance(trained):
    for name, directory in trained.items():
        config = read_checkpoint_config(directory)
        meta = config["metadata"]
        assert bool(config["encoder"]) == (name == "included"), name
        assert meta["encoder"] == {"id": config["encoder_id"], "source": "tiny",
                                   "overrides": {"crop_size": 32, "output_layer_norm": True}}
        assert 0 < meta["planning_tolerance"] < 1
        calibration = meta["planning_tolerance_calibration"]
        assert calibration["radius"] == 0.01 and calibration["near_miss_pairs"] >= bundle.MIN_PAIRS
        assert calibration["near_misses_within_tolerance"] <= 2 * bundle.NEAR_MISS_QUANTILE + 0.05

        loop = planner(directory)   # no encoder given: the one saved with (or referenced by) the predictor
        assert loop.models.model_id == config["encoder_id"] == loop.models.predictor.encoder_id
        assert loop.models.feature_shape == (16, 64)
        assert loop.tolerance == pytest.approx(meta["planning_tolerance"])
        assert planner(directory, default_tolerance=0.05).tolerance == 0.05   # a setting wins


def test_the_shipped_model_keeps_its_tolerance_and_presets_fit_their_encoders():
    assert bundle.planning_tolerance("default") == 0.015
    assert bundle.predictor_encoder("default").source == "default"
    assert planner("default").tolerance == 0.015
    assert bundle.predictor_encoder("tiny").source == "tiny"
    loop = planner("tiny")
    assert loop.models.planning_tolerance is None and loop.tolerance == FALLBACK_TOLERANCE


def test_a_reference_that_gives_another_encoder_or_none_is_refused(trained, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(trained["reference"], changed)
    config = json.loads((changed / "config.json").read_text())
    config["metadata"]["encoder"]["overrides"] = {"crop_size": 64, "output_layer_norm": True}
    (changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="now has model_id .* the predictor was trained on"):
        bundle.encoder_for("", changed).load()

    del config["metadata"]["encoder"]
    (changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="holds no encoder and names none; give the encoder explicitly"):
        bundle.predictor_encoder(changed)


def moving_features(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Six 40-step random walks of a position and features (T, 4, 8) that are a linear map of it: (features,
    states)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(3, 4, 8)).astype(np.float32)
    states = [np.cumsum(rng.uniform(-0.006, 0.006, size=(40, 3)), axis=0) for _ in range(6)]
    return [np.einsum("ts,snd->tnd", s, basis) + 0.1 for s in states], states


def half_collapsed(features: list[np.ndarray]) -> list[np.ndarray]:
    """Every second frame of every episode replaced by one shared feature map."""
    return [np.where((np.arange(len(f)) % 2 == 0)[:, None, None], features[0][0], f) for f in features]


def test_calibration_finds_the_energy_of_near_misses():
    """Features that move with the position: the tolerance lies between the energies at and beyond the radius."""
    features, states = moving_features(0)
    result = bundle.calibrate_tolerance(features, states, ("x", "y", "z"), radius=0.01)
    assert result["planning_tolerance_calibration"]["near_misses_within_tolerance"] <= 0.05
    close = []   # energies of pairs at most a quarter of the radius apart: these count as reached
    for f, s in zip(features, states):
        normed = (f - f.mean(-1, keepdims=True)) / f.std(-1, keepdims=True)
        i, j = np.triu_indices(len(s), 1)
        near = np.linalg.norm(s[i] - s[j], axis=1) <= 0.0025
        close += list(np.abs(normed[i[near]] - normed[j[near]]).mean(axis=(1, 2)))
    assert np.median(close) < result["planning_tolerance"]
    assert bundle.calibrate_tolerance(features[:1], [s[:3] for s in states[:1]], ("x", "y", "z"), 0.01) is None
    assert result["planning_tolerance_calibration"]["indistinct_far_pairs"] == 0.0
    # Half the frames collapsed onto one feature map: the calibration says how many distant pairs look the same.
    share = bundle.calibrate_tolerance(half_collapsed(features), states, ("x", "y", "z"), radius=0.01)[
        "planning_tolerance_calibration"]["indistinct_far_pairs"]
    assert 0.15 < share < 0.35    # about a quarter of the pairs join two collapsed frames


def test_planner_node_uses_the_saved_encoder_and_refuses_a_mismatch_at_start(trained):
    good = NodeProcess.module("jepa_ros.nodes.planner_node", ros_args(predictor=str(trained["included"]),
                                                                      device="cpu"))
    bad = NodeProcess.module("jepa_ros.nodes.planner_node", ros_args(predictor=str(trained["included"]),
                                                                     encoder="default", device="cpu"))
    try:
        tolerance = read_checkpoint_config(trained["included"])["metadata"]["planning_tolerance"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "goal tolerance" not in good.output():
            time.sleep(0.2)
        assert "encoder saved with the predictor" in good.output(), good.output()
        assert f"goal tolerance {tolerance:g}" in good.output(), good.output()
        assert good.alive()

        assert bad.proc.wait(90) == 2, bad.output()
        lines = [line for line in bad.output().splitlines() if MISMATCH in line]
        assert len(lines) == 1 and "trained on encoder" in lines[0] and "leave the encoder out" in lines[0], \
            bad.output()
    finally:
        good.cleanup()
        bad.cleanup()


def test_jepa_eval_prints_the_mismatch_at_once_and_runs_without_an_encoder(trained, tmp_path):
    started = time.monotonic()
    mismatched = NodeProcess.module("jepa_ros.cli", ["eval", "--predictor", str(trained["included"]), "--encoder",
                                                     "default", "--episodes", "1", "--device", "cpu",
                                                     "--logs", str(tmp_path / "logs1"),
                                                     "--json", str(tmp_path / "eval1.json")])
    try:
        assert mismatched.proc.wait(110) == 2, mismatched.output()
        output = mismatched.output()
    finally:
        mismatched.cleanup()
    assert time.monotonic() - started < 110
    assert f"jepa eval: planner_node exited with code 2: {MISMATCH}" in output, output
    assert "TimeoutError" not in output

    report = tmp_path / "eval2.json"
    works = NodeProcess.module("jepa_ros.cli", ["eval", "--predictor", str(trained["included"]), "--episodes", "1",
                                                "--budget", "2", "--device", "cpu", "--logs", str(tmp_path / "logs2"),
                                                "--json", str(report)])
    try:
        assert works.proc.wait(240) == 0, works.output()
        assert "success rate" in works.output() and "median planning" in works.output()
    finally:
        works.cleanup()
    summary = json.loads(report.read_text())
    assert summary["episodes"] == 1 and summary["results"][0]["reason"] in ("reached", "budget exhausted")


def test_training_warns_when_the_features_collapse_distant_positions(caplog):
    """The recipes' calibration step logs a warning, with the share, when distant frames look the same."""
    from types import SimpleNamespace

    from jepa_world_model.training.predictor_steps import planning_tolerance_metadata
    features, states = moving_features(1)
    cfg = SimpleNamespace(reach_radius=0.01, seed=0)
    with caplog.at_level("WARNING"):
        planning_tolerance_metadata(cfg, SimpleNamespace(features=features, states=states, state_names=("x", "y", "z")))
    assert "hardly tell positions apart" not in caplog.text
    with caplog.at_level("WARNING"):
        meta = planning_tolerance_metadata(cfg, SimpleNamespace(features=half_collapsed(features), states=states,
                                                                state_names=("x", "y", "z")))
    share = meta["planning_tolerance_calibration"]["indistinct_far_pairs"]
    assert f"{100 * share:.1f}% of frame pairs more than 0.02 apart" in caplog.text

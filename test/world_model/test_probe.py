"""Linear probe (`jepa eval-offline --probe`): pretrained encoder, random encoder and pixels side by side on
held-out sim recordings; the object row where recordings carry /object_pose; ridge regression itself."""
import json

import numpy as np
import pytest

from jepa_world_model.data.dataset import ReadOptions
from jepa_world_model.evaluation.probe import ProbeError, Ridge, run_probe, score
from test.support.training import FAST_PRETRAIN_ARGS, jepa_in_process, rewrite_recording, sim_recording

pytestmark = pytest.mark.slow


def _with_object(source, dest):
    """The recordings of ``source`` plus /object_pose: here the end effector itself (the sim has no object yet),
    so its probe must score exactly like the end-effector probe."""
    for path in sorted(source.glob("*.mcap")):
        rewrite_recording(path, dest / path.name, copies={"/object_pose": "/ee_pose"})
    return dest


def test_probe_prints_pretrained_random_and_pixel_rows(tmp_path_factory, tmp_path, capsys):
    train = sim_recording(tmp_path_factory, "small", episodes=4, steps=12, seed=3)
    held_out = sim_recording(tmp_path_factory, "probe_held_out", episodes=2, steps=12, seed=11)
    encoder = tmp_path / "encoder"
    jepa_in_process("pretrain", str(train), "--out", str(encoder), "--steps", "30", *FAST_PRETRAIN_ARGS)
    capsys.readouterr()

    jepa_in_process("eval-offline", str(held_out), "--probe", str(train), "--encoder", str(encoder),
                    "--json", str(tmp_path / "probe.json"))
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "probe.json").read_text())
    labels = [f"encoder {encoder}", "random tiny", "pixels 16x16"]
    assert list(result["rows"]) == labels
    for label in labels:
        assert label in printed
        ee = result["rows"][label]["ee_position"]
        assert np.isfinite([ee["rmse"], ee["r2"]]).all() and ee["rmse"] < 0.5
        assert ee["test_frames"] == result["test_frames"] == 26 and ee["train_frames"] == 52
        assert result["rows"][label]["object_position"] is None
    assert "object position: n/a (no /object_pose topic" in printed
    assert result["test_episodes"] == 2 and result["train_episodes"] == 4

    options = ReadOptions()
    # on the frames it was fitted on, a linear map from pixels finds the arm (52 frames are too few to generalise)
    fitted = run_probe(str(encoder), [str(train)], [str(train)], options)
    assert fitted["rows"]["pixels 16x16"]["ee_position"]["r2"] > 0.9
    with_object = run_probe(str(encoder), [str(_with_object(train, tmp_path / "train_obj"))],
                            [str(_with_object(held_out, tmp_path / "held_obj"))], options)
    for label, targets in with_object["rows"].items():
        assert targets["object_position"] is not None, label
        assert targets["object_position"]["rmse"] == pytest.approx(targets["ee_position"]["rmse"], rel=1e-9)
        assert targets["object_position"]["rmse"] == pytest.approx(result["rows"][label]["ee_position"]["rmse"],
                                                                   abs=1e-6)


def test_probe_needs_an_end_effector_pose(tmp_path_factory, tmp_path):
    train = sim_recording(tmp_path_factory, "small", episodes=4, steps=12, seed=3)
    blind = rewrite_recording(train / "episode_0000.mcap", tmp_path / "joints" / "e.mcap", drop=("/ee_pose",))
    with pytest.raises(ProbeError, match="PoseStamped end-effector topic"):
        run_probe("tiny", [str(blind.parent)], [str(train)], ReadOptions())
    with pytest.raises(ProbeError, match="pool"):
        run_probe("tiny", [str(train)], [str(train)], ReadOptions(), pool="max")


@pytest.mark.unit
def test_ridge_recovers_a_linear_map_and_picks_a_small_penalty_for_clean_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) * rng.uniform(0.1, 10.0, size=12)
    weights = rng.normal(size=(12, 3))
    y = x @ weights + 0.01 * rng.normal(size=(300, 3))
    groups = np.repeat(np.arange(6), 50)
    ridge = Ridge().fit(x[:240], y[:240], groups[:240])
    result = score(ridge.predict(x[240:]), y[240:])
    assert result["r2"] > 0.999 and result["rmse"] < 0.05
    assert ridge.alpha <= 1.0
    noise = rng.normal(size=(300, 3))
    assert score(Ridge().fit(x[:240], noise[:240], groups[:240]).predict(x[240:]), noise[240:])["r2"] < 0.1

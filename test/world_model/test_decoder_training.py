"""`jepa train-decoder` on a small sim recording lowers its loss and ends with its PSNR verdict; the decoder it
writes draws `jepa eval-offline --pictures` strips of the shipped reach model's predictions."""
import json

import pytest

from jepa_world_model.checkpoints.decoder_loading import check_decoder, load_decoder
from jepa_world_model.networks.encoder import load_encoder
from test.support.training import jepa_in_process, sim_recording

pytestmark = pytest.mark.slow


def test_train_decoder_then_pictures_of_predictions(tmp_path_factory, tmp_path):
    data = sim_recording(tmp_path_factory, "decoder_train", episodes=6, steps=12, seed=7)
    held = sim_recording(tmp_path_factory, "decoder_held", episodes=2, steps=12, seed=8)
    out, cache = tmp_path / "decoder", tmp_path / "cache"

    jepa_in_process("train-decoder", str(data), "--out", str(out), "--cache-dir", str(cache), "--model", "default",
                    "--steps", "150", "--batch-size", "16", "--lr", "3e-3", "--held-out", "0.2", "--no-progress")

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 150
    first, last = (sum(r["l1"] for r in part) / len(part) for part in (rows[:10], rows[-10:]))
    assert last < 0.6 * first, (first, last)
    config = json.loads((out / "config.json").read_text())
    verdict = config["metadata"]["verdict"]
    assert verdict["held_out_episodes"] == 2 and verdict["frames"] == 26, verdict
    assert verdict["psnr_db"] > 10 and verdict["mean_frame_psnr_db"] > 10, verdict
    assert config["metadata"]["training"]["model"] == "default"
    decoder = load_decoder(out)
    check_decoder(decoder, load_encoder("default"))

    report, pictures = tmp_path / "eval.json", tmp_path / "pictures"
    jepa_in_process("eval-offline", str(held), "--checkpoint", "default", "--decoder", str(out), "--horizon", "3",
                    "--cache-dir", str(cache), "--pictures", str(pictures), "--picture-count", "3",
                    "--json", str(report))
    result = json.loads(report.read_text())["pictures"]
    for key in ("predicted", "no_motion", "mean_frame", "reconstruction"):
        assert len(result["psnr_db"][key]) == 3 and all(v > 5 for v in result["psnr_db"][key]), result
    assert result["decoder_verdict"] == verdict
    assert sorted(p.name for p in pictures.iterdir()) == sorted(result["strips"]) and len(result["strips"]) == 3

"""`jepa_episodes.inference_paths` quick mode on the reach model: the eager and int8 paths give finite timings,
energies and prediction differences, eager against itself differs by nothing, and a path whose library is
missing is reported as "not installed" instead of stopping the run."""
from __future__ import annotations

import json
import math

import pytest

from jepa_episodes import inference_paths

pytestmark = pytest.mark.unit


def _missing(*args):
    raise inference_paths.NotInstalled("No module named 'onnxruntime'")


def test_quick_mode_measures_eager_and_int8_and_reports_a_missing_library(tmp_path, capsys, monkeypatch):
    missing = inference_paths.InferencePath("onnxruntime", 1, _missing, "a library that is not there")
    monkeypatch.setattr(inference_paths, "PATHS", (*inference_paths.PATHS, missing))
    monkeypatch.setattr(inference_paths, "QUICK_PATHS", (*inference_paths.QUICK_PATHS, missing.key))
    out = tmp_path / "paths.json"
    assert inference_paths.main(["--quick", "--models", "default", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| int8-dynamic | 1 |" in table and "not installed" in table
    (model,) = json.loads(out.read_text())["results"]
    rows = {f"{r['path']}@{r['threads']}": r for r in model["rows"]}
    assert rows.pop(missing.key)["status"].startswith("not installed")
    assert set(rows) == {"eager@1", "int8-dynamic@1"}
    for row in rows.values():
        assert row["status"] == "ok", row
        for key in ("batch_ms", "plan_ms", "batch_ratio", "plan_ratio", "max_abs_pred_diff", "setup_s"):
            assert math.isfinite(row[key]) and row[key] >= 0, (key, row)
        assert math.isfinite(row["energy_rel_diff_median"])
    eager = rows[inference_paths.BASELINE]
    assert eager["max_abs_pred_diff"] == 0.0
    assert eager["energy_rel_diff_median"] == 0.0 and eager["batch_ratio"] == 1.0
    assert math.isfinite(model["seed_noise_rel_median"])

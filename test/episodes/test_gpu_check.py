"""The GPU check script (scripts/gpu_check.sh -> jepa_episodes.gpu_check) in its CPU smoke mode: one JSON with every
section measured in finite numbers, an encoder that cannot be loaded recorded as an error without stopping the run,
and the time budget skipping what it has no time for."""
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from jepa_episodes.gpu_check import SECTIONS

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def run_check(out: Path, *args: str) -> dict:
    """Run scripts/gpu_check.sh with OUT=out on the CPU; its JSON."""
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", *args], cwd=out,
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["summary"] and "\n".join(report["summary"]) in result.stdout
    return report


def numbers(value):
    """Every int/float inside a JSON value (bools and None left out)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_smoke_run_measures_every_section_and_records_a_failing_model(tmp_path):
    report = run_check(tmp_path, "--smoke", "--encoders", "tiny", str(tmp_path / "no_such_encoder"))
    assert report["smoke"] is True and report["finished"] is True and report["device"] == "cpu"
    assert report["machine"]["torch"] and report["machine"]["cpu_count"] >= 1
    assert list(report["sections"]) == list(SECTIONS)
    assert all(math.isfinite(v) for v in numbers(report))

    encoder = report["sections"]["encoder"]
    assert encoder["status"] == "partial"
    tiny, missing = encoder["results"]["models"]
    assert tiny["name"] == "tiny" and set(tiny["inputs"]) == {"frame", "clip"}
    for measured in tiny["inputs"].values():
        assert measured["fp32_ms_per_clip"] > 0 and measured["bf16_ms_per_clip"] > 0
        assert 0.99 < measured["parity"]["cosine"] <= 1.0 + 1e-9
    assert "no_such_encoder" in missing["error"] and "parameters" not in missing

    for name in ("predictor", "planning", "train_step", "pretrain_step"):
        assert report["sections"][name]["status"] == "ok", report["sections"][name]
    predictor = report["sections"]["predictor"]["results"]["models"][0]
    assert predictor["action_dim"] == 7 and predictor["fp32_ms_per_rollout"] > 0
    rows = report["sections"]["planning"]["results"]["rows"]
    assert [r["name"].split(",")[0] for r in rows] == ["paper", "paper", "paper", "shipped"]
    assert all(r["ms_per_action"] > 0 and r["paper_ms_per_action"] == 16000 for r in rows)
    for name in ("train_step", "pretrain_step"):
        assert report["sections"][name]["results"]["ms_per_step"] > 0


def test_spent_budget_skips_the_sections_not_selected_are_marked(tmp_path):
    report = run_check(tmp_path, "--smoke", "--budget-s", "0", "--sections", "encoder", "planning")
    sections = report["sections"]
    assert sections["encoder"]["status"] == sections["planning"]["status"] == "skipped: budget"
    assert sections["train_step"]["status"] == "skipped: not selected"
    assert report["finished"] is True

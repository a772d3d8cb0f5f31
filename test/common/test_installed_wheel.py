"""The `jepa` command of a wheel install works outside the source tree: the planner bench on the shipped models and
the offline push loop, run with the wheel's own `jepa` from a temp folder (test/support/wheel.py builds the wheel
and installs it into a fresh venv that borrows this environment's dependencies; test/conftest.py shares it per
session with test/ros/test_package_share.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from test.support.wheel import REPO

# a wheel build and two CLI runs on the shipped models: minutes on a loaded 2-core machine, no DDS
pytestmark = pytest.mark.slow

#: Where the libraries of the wheel's `jepa` come from, as its own interpreter sees them.
WHERE = """
import json, sys
import jepa_common, jepa_episodes, jepa_planner, jepa_ros, jepa_sim, jepa_world_model
print(json.dumps({"modules": [m.__file__ for m in (jepa_common, jepa_episodes, jepa_planner, jepa_ros, jepa_sim,
                                                    jepa_world_model)], "path": sys.path}))
"""


def test_the_wheels_libraries_come_from_its_own_site_packages(installed_wheel, tmp_path):
    result = installed_wheel.run([str(installed_wheel.python), "-c", WHERE], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert all(Path(m).is_relative_to(installed_wheel.site) for m in found["modules"]), found["modules"]
    assert str(REPO) not in found["path"], "the source checkout is on the wheel install's sys.path"


def test_bench_planner_quick_from_the_wheel(installed_wheel, tmp_path):
    out = tmp_path / "bench.json"
    models = ["random", "default", "push_default"]
    result = installed_wheel.run([str(installed_wheel.script("jepa")), "bench", "planner", "--quick", "--device", "cpu",
                                  "--models", *models, "--json", str(out)], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(out.read_text())
    rows = bench["results"]
    assert bench["machine"]["device"] == "cpu"
    # random weights run the tiny predictor; the shipped models are loaded by name from the wheel's shipped_models
    assert {row["model"] for row in rows} == {"tiny", "default", "push_default"}, rows
    for row in rows:
        assert row["device"] == "cpu" and row["per_problem"], row
        assert row["ms_per_action"] > 0 and row["reference_ms_per_action"] > 0, row
        for key in ("final_energy", "reference_final_energy"):
            assert row[key] >= 0 and row[key] == row[key], (key, row)   # a number, not NaN
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"], "the bench wrote outside its --json"


def test_offline_push_episode_from_the_wheel(installed_wheel, tmp_path):
    out = tmp_path / "push.json"
    result = installed_wheel.run([str(installed_wheel.script("jepa")), "eval", "--offline", "--task", "push",
                                  "--episodes", "1", "--seed", "0", "--json", str(out)], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert (summary["task"], summary["driver"], summary["seed"]) == ("push", "offline", 0), summary
    assert summary["episodes"] == 1 and len(summary["results"]) == 1, summary
    episode = summary["results"][0]
    assert episode["task"] == "push" and episode["outcome"] in summary["outcomes"], episode
    assert episode["success"] == (episode["outcome"] == "success"), episode
    assert summary["successes"] == int(episode["success"]) and summary["success_rate"] == float(episode["success"])
    # the push deployment's planner: the wheel's share/jepa_ros/config/planner_push.yaml over the defaults
    deployed = yaml.safe_load((installed_wheel.share / "config" / "planner_push.yaml").read_text())
    changed = deployed["planner_node"]["ros__parameters"]
    settings = summary["extra"]["planner_settings"]
    assert changed and {name: settings.get(name) for name in changed} == changed, settings
    assert "push" in result.stdout and "(offline)" in result.stdout, result.stdout[-2000:]


"""An official V-JEPA 2 encoder file and V-JEPA 2-AC predictor file in the loop of the Franka tasks through the
nodes: `jepa eval --task pick_place --encoder E --predictor P` starts launch/sim_grasp.launch.xml (every node its own
OS process, over DDS) with the tiny untrained official-format pair of test/support/official_models.py. Checked: the
sim's camera renders the encoder's 256 px input, the perception and planner nodes take the files as they come, and
one judged episode with 7-D states is written; not the skill."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jepa_common.outcomes import SUCCESS
from jepa_episodes.record import EpisodeSummary
from jepa_episodes.tasks.pick_place import PICK_PLACE
from jepa_ros.cli import main as jepa
from test.support.official_models import INPUT_SIZE, official_pair

pytestmark = pytest.mark.nodes


def test_jepa_eval_runs_the_official_pair_through_the_nodes_at_its_input_size(tmp_path):
    encoder, predictor = official_pair(tmp_path)
    out, logs = tmp_path / "eval.json", tmp_path / "logs"
    code = jepa(["eval", "--task", "pick_place", "--encoder", str(encoder), "--predictor", str(predictor),
                 "--device", "cpu", "--visualisation", "false", "--episodes", "1", "--goal-images", "3", "--budget",
                 "3", "--json", str(out), "--logs", str(logs)])
    assert code == 0, (logs / "planner_node.log").read_text()
    summary = EpisodeSummary.from_dict(json.loads(out.read_text()))
    assert summary.driver == "nodes" and summary.extra["launch_arguments"]["image_size"] == str(INPUT_SIZE)
    assert f"camera {INPUT_SIZE}px" in (logs / "sim_node.log").read_text()
    assert f"input {INPUT_SIZE}x{INPUT_SIZE}" in (logs / "perception_node.log").read_text()
    [record] = summary.records
    assert record.outcome in (SUCCESS, *PICK_PLACE.failure_classes), record.outcome
    assert record.steps >= 3 and set(record.goal_index) == {0, 1, 2}, (record.steps, record.goal_index)
    assert all(np.isfinite(record.energies)) and np.array(record.ee_positions).shape[1] == 7

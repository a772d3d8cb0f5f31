"""The episode runner without DDS or models: the protocol through a scripted driver over a real ArmSim, the one
JSON schema, and outcome names written only in jepa_common/outcomes.py."""
import json
from pathlib import Path

import numpy as np
import pytest

from jepa_common import outcomes
from jepa_common.outcomes import END_BUDGET, END_NODE_DIED, END_REACHED, FAULT, MISSED, NEVER_TOUCHED, SUCCESS
from jepa_episodes.record import SCHEMA, EpisodeSummary
from jepa_episodes.runner import run_episode, run_episodes, summarise
from jepa_episodes.tasks.push import PUSH
from jepa_episodes.tasks.reach import REACH
from test.support.episodes import ScriptedDriver

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def reach_driver():
    driver = ScriptedDriver(REACH)
    yield driver
    driver.close()


def test_a_reached_target_is_a_success_with_every_observation_recorded(reach_driver):
    [record] = run_episodes(REACH, reach_driver, REACH.sample(1, seed=0), (25,), (None,))
    assert record.outcome == SUCCESS and record.success and record.reason == END_REACHED
    assert len(record.distances) == record.steps + 2  # the start, one per plan, the end
    assert record.distances[0] == record.distances[1] > 0.05 and record.final_distance <= 0.005
    assert record.goal_index == [0] * record.steps and record.reasons == [END_REACHED]
    assert record.steps_to_reach == next(i for i, d in enumerate(record.distances) if d <= REACH.success_radius)
    assert reach_driver.starts == [REACH.start(None)]


def test_a_spent_budget_outside_the_radius_is_missed(reach_driver):
    record = run_episode(REACH, reach_driver, REACH.sample(1, seed=0)[0], (2,), (None,))
    assert (record.outcome, record.reason, record.steps, record.success) == (MISSED, END_BUDGET, 2, False)


def test_goal_images_are_pursued_in_order_and_a_fault_ends_the_episode():
    task = PUSH.sample(1, seed=1)[0]
    driver = ScriptedDriver(PUSH)
    try:
        record = run_episode(PUSH, driver, task, (30, 30), (0.05, 0.05))
        assert driver.pursued == ["behind", "target"] and set(record.goal_index) == {0, 1}
        assert len(record.object_positions) == len(record.distances) == record.steps + 2
        assert record.distances[0] == pytest.approx(task.distance, abs=1e-6)
        faulty = ScriptedDriver(PUSH, faults={0: END_NODE_DIED})
        try:
            record = run_episode(PUSH, faulty, task, (30, 30), (0.05, 0.05))
        finally:
            faulty.close()
        assert faulty.pursued == ["behind"] and record.reasons == [END_NODE_DIED]
        assert record.outcome == NEVER_TOUCHED and record.steps == 0
    finally:
        driver.close()


def test_a_reach_fault_is_never_a_success(reach_driver):
    reach_driver.faults = {0: END_NODE_DIED}
    record = run_episode(REACH, reach_driver, REACH.sample(1, seed=0)[0], (25,), (None,))
    assert record.outcome == FAULT and not record.success


def test_the_summary_json_round_trips(reach_driver):
    records = run_episodes(REACH, reach_driver, REACH.sample(2, seed=5), (3,), (None,))
    summary = summarise(REACH, "scripted", 5, 2, 1, records, wall_s=1.5)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["schema"] == SCHEMA and data["episodes"] == 2 and data["extra"] == {"wall_s": 1.5}
    assert set(data["outcomes"]) == {SUCCESS, MISSED, FAULT} and sum(data["outcomes"].values()) == 2
    assert data["median_final_distance_m"] == pytest.approx(np.median([r.final_distance for r in records]))
    assert "median_final_distance" not in data
    again = EpisodeSummary.from_dict(data)
    assert json.loads(json.dumps(again.to_dict())) | {"machine": None} == data | {"machine": None}
    with pytest.raises(ValueError, match="schema"):
        EpisodeSummary.from_dict({**data, "schema": "other/1"})


def test_outcome_names_are_written_only_in_jepa_common_outcomes():
    names = [v for k, v in vars(outcomes).items() if k.isupper() and isinstance(v, str)]
    files = [*sorted((ROOT / "jepa_episodes").rglob("*.py")), *sorted((ROOT / "jepa_ros" / "episodes").rglob("*.py")),
             ROOT / "jepa_sim" / "push.py"]
    for path in files:
        text = path.read_text()
        found = [name for name in names if f'"{name}"' in text or f"'{name}'" in text]
        assert not found, f"{path.relative_to(ROOT)} writes {found}"

"""Task definitions without DDS or models: deterministic sampling, goal scenes, budgets, tolerances, planner
settings and the judgement of episodes (reach radius, push failure classes)."""
import numpy as np
import pytest

from jepa_common.outcomes import (BUDGET_SPENT, END_BUDGET, END_NODE_DIED, END_REACHED, FAULT, MISSED,
                                  NEVER_TOUCHED, OTHER, OVERSHOOT, SUCCESS, WRONG_WAY)
from jepa_episodes.record import SceneState
from jepa_episodes.tasks import TASKS, get_task
from jepa_episodes.tasks.push import PUSH, PUSH_FROM_BEHIND, TOLERANCES, classify
from jepa_episodes.tasks.reach import DEFAULT_BUDGET, REACH
from jepa_sim.arm_sim import PUSH_HEIGHT, ArmSim
from jepa_sim.push import PushTask, sample_push_task

pytestmark = pytest.mark.unit


def test_tasks_by_name():
    assert set(TASKS) == {"reach", "push", "push_from_behind", "grasp", "pick_place"} and get_task("push") is PUSH
    with pytest.raises(ValueError, match="reach"):
        get_task("stack")


def test_reach_targets_are_the_sims_draws_in_order():
    targets = REACH.sample(4, seed=3)
    rng = np.random.default_rng(3)
    with ArmSim(image_size=16) as sim:
        expected = [sim.sample_target(rng) for _ in range(4)]
    np.testing.assert_array_equal(np.stack(targets), np.stack(expected))
    np.testing.assert_array_equal(np.stack(REACH.sample(4, seed=3)), np.stack(targets))
    assert not np.array_equal(REACH.sample(1, seed=4)[0], targets[0])


def test_push_tasks_are_the_sims_draws_in_order():
    tasks = PUSH.sample(3, seed=0)
    rng = np.random.default_rng(0)
    with ArmSim(image_size=16, task="push") as sim:
        assert tasks == [sample_push_task(sim, rng) for _ in range(3)]
    assert PUSH.sample(3, seed=0) == tasks


def test_push_from_behind_starts_behind_the_puck_with_one_goal_image_of_the_same_episodes():
    episode = PUSH_FROM_BEHIND.sample(1, seed=5)[0]
    assert episode == PUSH.sample(1, seed=5)[0]
    start = PUSH_FROM_BEHIND.start(episode)
    np.testing.assert_allclose(start.ee, episode.behind(episode.object_start))
    assert start.object_xy == PUSH.start(episode).object_xy and start.ee != PUSH.start(episode).ee
    assert PUSH_FROM_BEHIND.goal_counts == (1,) and [g.kind for g in PUSH_FROM_BEHIND.goals(episode, 1)] == ["target"]
    with pytest.raises(ValueError, match="goal images"):
        PUSH_FROM_BEHIND.goals(episode, 2)


def test_push_tolerances_follow_the_models_calibration():
    from jepa_world_model.checkpoints.bundle import planning_tolerance

    shipped = planning_tolerance(PUSH.model)
    assert PUSH.tolerances(0.0, 2, shipped) == pytest.approx((TOLERANCES["behind"], TOLERANCES["target"]))
    assert PUSH.tolerances(0.0, 1, shipped / 100) == pytest.approx((TOLERANCES["target"] / 100,))
    assert PUSH.tolerances(0.02, 1, shipped / 100) == (0.02,)  # an explicit tolerance wins
    assert REACH.tolerances(0.0, 1, 0.5) == (None,)  # the planner's default already is the model's calibration


def test_budgets_tolerances_and_goal_counts():
    assert REACH.budgets(None, 1) == (DEFAULT_BUDGET,) == (25,) and REACH.budgets(7, 1) == (7,)
    assert REACH.tolerances(0.0, 1) == (None,) and REACH.tolerances(0.02, 1) == (0.02,)
    assert REACH.goal_count(2) == 1 and PUSH.goal_count(2) == 2 and PUSH.goal_count(1) == 1
    assert PUSH.budgets(None, 2) == (30, 30) and PUSH.budgets(None, 1) == (50,)
    assert PUSH.budgets(20, 2) == (8, 12) and PUSH.budgets(20, 1) == (20,)
    assert PUSH.tolerances(0.0, 2) == (0.05, 0.05) and PUSH.tolerances(0.1, 1) == (0.1,)
    with pytest.raises(ValueError, match="goal images"):
        PUSH.goals(PUSH.sample(1, 0)[0], 3)


def test_planner_settings_are_the_deployments():
    push = PUSH.planner_settings()
    assert (push.lookahead_steps, push.energy_mode, push.samples, push.iterations, push.elites, push.quasi_random,
            push.fixed_dims) == (8, "closest", 16, 2, 4, True, "dz=0.0")
    assert push.mode == "continuous" and PUSH.planner_settings(samples=12).samples == 12
    reach = REACH.planner_settings()
    assert reach.mode == "continuous" and reach.lookahead_steps == 1 and reach.samples == 16
    assert REACH.launch_file.name == "sim.launch.xml" and PUSH.launch_file.name == "sim_push.launch.xml"


def test_goal_scenes():
    task = PushTask((0.30, 0.02), (0.38, 0.06), (0.20, -0.15, PUSH_HEIGHT))
    behind, target = PUSH.goals(task, 2)
    assert (behind.kind, behind.object_moved, target.kind, target.object_moved) == ("behind", False, "target", True)
    assert behind.object_xy == task.object_start and target.object_xy == task.target
    assert PUSH.goals(task, 1) == [target]
    assert PUSH.start(task).ee == task.ee_start and PUSH.start(task).object_xy == task.object_start
    [goal] = REACH.goals(np.array([0.3, 0.1, 0.2]), 1)
    assert goal.ee == (0.3, 0.1, 0.2) and goal.object_xy is None and REACH.start(None).ee is None


def test_reach_judgement():
    target = np.array([0.3, 0.0, 0.2])
    near, far = SceneState((0.3, 0.0, 0.215)), SceneState((0.3, 0.0, 0.23))
    assert REACH.judge(target, [far, near], [END_BUDGET]) == SUCCESS
    assert REACH.judge(target, [near, far], [END_REACHED]) == MISSED
    assert REACH.judge(target, [far, near], [END_NODE_DIED]) == FAULT
    assert REACH.distance(target, far) == pytest.approx(0.03)


def test_push_classification_names_each_failure():
    task = PushTask((0.30, 0.0), (0.40, 0.0), (0.2, 0.0, PUSH_HEIGHT))
    path = lambda *xs: np.array([[0.30, 0.0]] + [list(x) for x in xs])  # noqa: E731
    assert classify(task, path((0.35, 0.0), (0.39, 0.005))) == SUCCESS
    assert classify(task, path((0.301, 0.0))) == NEVER_TOUCHED
    assert classify(task, path((0.27, 0.01))) == WRONG_WAY
    assert classify(task, path((0.33, 0.08))) == WRONG_WAY
    assert classify(task, path((0.45, 0.0))) == OVERSHOOT
    assert classify(task, path((0.35, 0.0))) == BUDGET_SPENT
    assert classify(task, path((0.35, 0.0)), "stale input") == OTHER
    assert set(PUSH.failure_classes) == {NEVER_TOUCHED, WRONG_WAY, OVERSHOOT, BUDGET_SPENT, OTHER}
    states = [SceneState((0.2, 0.0, PUSH_HEIGHT), (x, y, 0.025)) for x, y in ((0.30, 0.0), (0.45, 0.0))]
    assert PUSH.judge(task, states, [END_REACHED, END_BUDGET]) == OVERSHOOT
    assert PUSH.distance(task, states[-1]) == pytest.approx(0.05)

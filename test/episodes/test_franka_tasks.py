"""The grasp and pick-and-place tasks: deterministic sampling, valid start and goal scenes (rendered by the real
FrankaSim), judgement on constructed scene-state sequences and on the scripted policy's episodes."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from jepa_common.outcomes import BUDGET_SPENT, END_BUDGET, END_REACHED, OTHER, SUCCESS
from jepa_episodes.record import SceneState
from jepa_episodes.tasks import TASKS, get_task
from jepa_episodes.tasks.grasp import (DROPPED, GRASP, HOLDING_GRIPPER, MISPLACED, MISSED_GRASP, WORKSPACE,
                                       FrankaEpisode)
from jepa_episodes.tasks.pick_place import GOAL_KINDS, PICK_PLACE
from jepa_sim.franka_script import PickPlaceScript
from jepa_sim.franka_sim import (CUBE_HALF, CUBE_REGION, MIN_CUBE_TARGET_DISTANCE, START_REGION, TARGET_REGION,
                                 FrankaSim)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EPISODE = FrankaEpisode(cube_xy=(0.5, 0.0), cube_yaw=0.1, target_xy=(0.5, 0.15), ee_start=(0.45, 0.0, 0.25),
                        ee_yaw=0.0)
TARGET = np.array([0.5, 0.15])


@pytest.fixture(scope="module")
def sim():
    with FrankaSim(image_size=32) as franka:
        yield franka


def cube_at(x: float, y: float, lift: float = 0.0, ee=None) -> SceneState:
    """A state with the cube's centre at (x, y) raised ``lift`` above its resting height; the EE just above it."""
    cube = (x, y, CUBE_HALF + lift)
    return SceneState(ee=tuple(ee) if ee is not None else (x, y, CUBE_HALF + lift + 0.005), object=cube)


def test_both_tasks_are_registered_and_deploy_the_franka_launch_file_and_planner_settings():
    assert get_task("grasp") is GRASP and get_task("pick_place") is PICK_PLACE and {"grasp", "pick_place"} <= set(TASKS)
    for task in (GRASP, PICK_PLACE):
        assert task.launch_file.name == "sim_grasp.launch.xml" and task.launch_file.is_file()
        settings = task.planner_settings()
        assert settings.fixed_dims == "droll=0.0,dpitch=0.0,dyaw=0.0" and settings.mode == "continuous"
    controller = yaml.safe_load((ROOT / "config" / "controller_franka.yaml").read_text())
    params = controller["controller_node"]["ros__parameters"]
    assert (tuple(params["workspace_min"]), tuple(params["workspace_max"])) == WORKSPACE
    assert params["gripper_joint"] == "panda_finger_joint1"


def test_sampling_is_deterministic_and_inside_the_sims_regions():
    for task in (GRASP, PICK_PLACE):
        episodes = task.sample(20, seed=7)
        assert episodes == task.sample(20, seed=7) and episodes != task.sample(20, seed=8)
        for e in episodes:
            assert CUBE_REGION.contains(e.cube_xy) and TARGET_REGION.contains(e.target_xy)
            assert START_REGION.contains(e.ee_start)
            assert np.linalg.norm(np.subtract(e.target_xy, e.cube_xy)) >= MIN_CUBE_TARGET_DISTANCE
        assert task.describe(episodes[0])["cube_xy"] == list(episodes[0].cube_xy)


def test_start_and_goal_scenes_are_reachable_and_render(sim):
    for episode in PICK_PLACE.sample(4, seed=3):
        start = PICK_PLACE.start(episode)
        assert sim.ik(start.ee, start.ee_euler) is not None
        assert start.object_xy == episode.cube_xy and start.target_xy == episode.target_xy
        scenes = PICK_PLACE.goals(episode, 3)
        assert [s.kind for s in scenes] == list(GOAL_KINDS)
        assert [s.kind for s in PICK_PLACE.goals(episode, 1)] == ["placed"]
        lifted, above, placed = scenes
        assert lifted.gripper == above.gripper == pytest.approx(HOLDING_GRIPPER) and placed.gripper == 0.0
        assert lifted.object_position[2] - CUBE_HALF >= 0.05 and above.object_position[2] - CUBE_HALF >= 0.05
        assert np.allclose(above.object_position[:2], episode.target_xy)
        assert placed.object_position[2] == pytest.approx(CUBE_HALF) and placed.ee[2] > placed.object_position[2]
        low, high = PICK_PLACE.workspace()
        for scene in scenes + GRASP.goals(episode, 1):
            assert np.all(np.asarray(scene.ee) >= low) and np.all(np.asarray(scene.ee) <= high), scene
            yaw = scene.object_yaw
            image = sim.render_goal(scene.ee, scene.ee_euler, scene.gripper, scene.object_position,
                                    (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)))
            assert image.shape == (32, 32, 3) and image.std() > 10
    with pytest.raises(ValueError, match="makes 1 goal images"):
        GRASP.goals(EPISODE, 2)


def test_budgets_tolerances_and_distances():
    assert GRASP.budgets(None, 1) == (60,) and sum(GRASP.budgets(80, 1)) == 80
    assert len(PICK_PLACE.budgets(None, 3)) == 3 and sum(PICK_PLACE.budgets(100, 3)) == 100
    assert PICK_PLACE.tolerances(0.0, 3) == (None, None, None) and GRASP.tolerances(0.2, 1) == (0.2,)
    assert PICK_PLACE.distance(EPISODE, cube_at(0.5, 0.12)) == pytest.approx(0.03)
    assert GRASP.distance(EPISODE, cube_at(0.5, 0.0, lift=0.10)) == pytest.approx(0.0)


@pytest.mark.parametrize("lifts, ended, outcome", [
    ((0.0, 0.02, 0.08, 0.09), END_REACHED, SUCCESS),
    ((0.0, 0.0, 0.003, 0.0), END_BUDGET, MISSED_GRASP),
    ((0.0, 0.04, 0.08, 0.0), END_REACHED, DROPPED),
    ((0.0, 0.02, 0.03, 0.03), END_BUDGET, BUDGET_SPENT),
    ((0.0, 0.02, 0.03, 0.03), END_REACHED, OTHER),
])
def test_grasp_judgement(lifts, ended, outcome):
    states = [cube_at(0.5, 0.0, lift) for lift in lifts]
    assert GRASP.judge(EPISODE, states, [ended]) == outcome


def test_pick_place_judgement():
    lifted = [cube_at(0.5, 0.0), cube_at(0.5, 0.0, 0.05), cube_at(0.5, 0.08, 0.1)]
    raised = (0.5, 0.14, 0.2)  # the EE clear above the cube
    judge = PICK_PLACE.judge
    assert judge(EPISODE, lifted + [cube_at(0.5, 0.14, ee=raised)], [END_REACHED]) == SUCCESS
    open_gripper = (0.5, 0.14, 0.025, math.pi, 0.0, 0.0, 0.05)  # a measured gripper: open, still low
    closed_gripper = open_gripper[:6] + (HOLDING_GRIPPER,)
    assert judge(EPISODE, lifted + [cube_at(0.5, 0.14, ee=open_gripper)], [END_REACHED]) == SUCCESS
    assert judge(EPISODE, lifted + [cube_at(0.5, 0.14, ee=closed_gripper)], [END_REACHED]) == MISPLACED
    assert judge(EPISODE, lifted + [cube_at(0.5, 0.20, ee=(0.5, 0.2, 0.2))], [END_REACHED]) == MISPLACED
    assert judge(EPISODE, lifted[:2] + [cube_at(0.5, 0.02, ee=(0.5, 0.02, 0.2))], [END_BUDGET]) == DROPPED
    assert judge(EPISODE, [cube_at(0.5, 0.0)] * 3, [END_BUDGET]) == MISSED_GRASP
    assert judge(EPISODE, lifted, [END_BUDGET]) == BUDGET_SPENT
    assert judge(EPISODE, lifted, [END_REACHED, END_REACHED, END_REACHED]) == OTHER


@pytest.mark.parametrize("task", [GRASP, PICK_PLACE], ids=lambda t: t.name)
def test_the_scripted_policy_from_a_tasks_start_is_judged_a_success(sim, task):
    episode = task.sample(1, seed=11)[0]
    start = task.start(episode)
    sim.reset(joint_positions=sim.ik(start.ee, start.ee_euler), cube_xy=start.object_xy, cube_yaw=start.object_yaw,
              target_xy=start.target_xy)
    script = PickPlaceScript(task.sim_task, rng=np.random.default_rng(0), noise=0.5)
    script.reset(sim)

    def state() -> SceneState:
        return SceneState(ee=tuple(sim.state()), object=tuple(sim.cube_position()))

    states = [state()]
    for _ in range(250):
        if script.done:
            break
        sim.apply_action(script.act(sim))
        states.append(state())
    for _ in range(5):
        sim.apply_action(np.zeros(7))
    states.append(state())
    assert task.judge(episode, states, [END_REACHED]) == SUCCESS, (script.phase, states[-1])


def test_the_offline_driver_plays_a_franka_episode_with_a_7d_model(one_torch_thread):
    """A tiny, untrained 7-D model through the offline driver: the wiring (FrankaSim, 7-D states, apply_action,
    the rotation held by the deployment's fixed_dims, the box), not the skill."""
    from jepa_episodes.offline import OfflineDriver
    from jepa_episodes.runner import run_episodes
    from jepa_world_model import load_encoder, load_predictor
    from jepa_world_model.presets import EE7_ACTION, EE7_STATE

    encoder = load_encoder("tiny", output_layer_norm=True)
    predictor = load_predictor("tiny", action_space=EE7_ACTION, state_space=EE7_STATE, state_update="ee_pose")
    driver = OfflineDriver(PICK_PLACE, encoder, predictor, PICK_PLACE.planner_settings(samples=8, iterations=1,
                                                                                       elites=2))
    try:
        [episode] = PICK_PLACE.sample(1, seed=0)
        [record] = run_episodes(PICK_PLACE, driver, [episode], (2, 1, 1), PICK_PLACE.tolerances(0.0, 3))
        assert driver.sim.image_size == encoder.config.crop_size
    finally:
        driver.close()
    assert record.steps == 4 and record.goal_index == [0, 0, 1, 2] and record.outcome in PICK_PLACE.failure_classes
    assert len(record.ee_positions[0]) == 7 and record.ee_positions[0][:3] == pytest.approx(episode.ee_start, abs=1e-3)
    low, high = PICK_PLACE.workspace()
    for state in record.ee_positions:
        assert abs(abs(state[3]) - math.pi) < 0.05 and abs(state[4]) < 0.05  # still pointing down
        assert np.all(np.asarray(state[:3]) >= low - 0.01) and np.all(np.asarray(state[:3]) <= high + 0.01)
    with pytest.raises(ValueError, match="7-D V-JEPA 2-AC"):
        OfflineDriver(GRASP, encoder, load_predictor("tiny"))

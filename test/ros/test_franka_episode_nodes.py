"""The grasp task through the nodes: launch/sim_grasp.launch.xml (sim with task grasp, perception, planner with
config/planner_franka.yaml, controller with config/controller_franka.yaml), a tiny UNTRAINED 7-D V-JEPA 2-AC model
saved for the test, every node its own OS process, over DDS. What is checked is the wiring of the node driver
(start scene with yaws and target, goal scene with the cube raised, 7-D plans, gripper commands, a judged
record), not the skill: the model has never seen data.

The perception node gives the 7-D state (config/perception_franka.yaml: the pose from /ee_pose plus the gripper's
closedness from panda_finger_joint1), so the planner takes its embeddings as they come."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rclpy
from std_msgs.msg import Float64

from jepa_common import topics
from jepa_common.outcomes import SUCCESS
from jepa_episodes.offline import place_franka_start
from jepa_episodes.runner import run_episode
from jepa_episodes.tasks.grasp import CUBE_HALF, GRASP
from jepa_ros.episodes.node_driver import NodeDriver
from jepa_ros.launch_runner.stack import Stack, wait_until
from jepa_ros.msg_validation import image_to_array
from jepa_msgs.msg import Embedding
from jepa_ros.ros_util import reliable_qos, sensor_qos

pytestmark = pytest.mark.nodes

ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
STATE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")


def _wrapped(a, b) -> float:
    """Largest angle between two Euler triples, each angle compared modulo a full turn."""
    d = (np.asarray(a, dtype=float) - np.asarray(b, dtype=float) + math.pi) % (2.0 * math.pi) - math.pi
    return float(np.abs(d).max())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny encoder and an untrained 7-D predictor saved together, as `jepa train` saves them."""
    import torch

    from jepa_world_model import load_encoder, load_predictor
    from jepa_world_model.checkpoints.files import save_checkpoint
    from jepa_world_model.presets import EE7_ACTION, EE7_STATE

    torch.manual_seed(0)
    encoder = load_encoder("tiny", output_layer_norm=True)
    predictor = load_predictor("tiny", action_space=EE7_ACTION, state_space=EE7_STATE, state_update="ee_pose")
    return save_checkpoint(tmp_path_factory.mktemp("franka_model") / "model", encoder=encoder, predictor=predictor)


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    rclpy.init()
    try:
        arguments = {"predictor": str(model), "device": "cpu", "visualisation": "false"}
        with Stack(GRASP.launch_file, arguments=arguments,
                   log_dir=tmp_path_factory.mktemp("grasp") / "logs") as running:
            client = NodeDriver(GRASP, alive=lambda: not running.dead())
            try:
                client.wait_until_ready(timeout=120.0, alive=lambda: not running.dead())
                yield running, client
            finally:
                client.close()
    finally:
        rclpy.try_shutdown()


@pytest.fixture(scope="module")
def episode():
    [first] = GRASP.sample(1, seed=4)
    return first


def test_start_scene_and_goal_scene_with_the_cube_raised_over_ros(stack, episode):
    from jepa_sim.franka_sim import FrankaSim

    running, client = stack
    scene = GRASP.start(episode)
    client.start(scene)
    state = client.state()
    assert len(state.ee) == 7 and np.allclose(state.ee[:3], episode.ee_start, atol=0.002)
    assert client.object_distance(episode.cube_xy) < 0.002 and state.object[2] == pytest.approx(CUBE_HALF, abs=0.003)
    assert state.ee[6] < 0.1  # the gripper starts open
    [goal] = GRASP.goals(episode, 1)
    image = image_to_array(client.goal_image(goal)).astype(float)
    start_frame = client.camera_image().astype(float)
    with FrankaSim(image_size=image.shape[0]) as sim:  # the same scenes rendered in-process
        place_franka_start(sim, scene)
        assert _wrapped(state.ee[3:6], sim.ee_euler()) < 0.02  # the gripper turned to the start yaw
        quat = [math.cos(episode.cube_yaw / 2.0), 0.0, 0.0, math.sin(episode.cube_yaw / 2.0)]
        held = sim.render_goal(goal.ee, goal.ee_euler, goal.gripper, goal.object_position, quat).astype(float)
        on_table = [*goal.object_position[:2], CUBE_HALF]  # what a goal without the cube's height would show
        resting = sim.render_goal(np.add(on_table, [0.0, 0.0, goal.ee[2] - goal.object_position[2]]),
                                  goal.ee_euler, goal.gripper, on_table, quat).astype(float)
    changed = np.abs(held - resting).max(axis=2) > 30  # where lifting the cube (and the arm) changes the picture
    assert changed.sum() > 20
    assert np.abs(image - held)[changed].mean() < 0.5 * np.abs(image - resting)[changed].mean()
    assert np.abs(image - start_frame).max(axis=2).astype(bool).sum() > 20  # the goal is not the start frame
    assert len(client.last_goal_images) == 1
    assert not running.dead()


def test_one_grasp_episode_through_the_nodes_plans_7d_actions_and_commands_the_gripper(stack, episode):
    running, client = stack
    commands: list[float] = []
    client.node.create_subscription(Float64, topics.GRIPPER_COMMAND, lambda msg: commands.append(msg.data),
                                    sensor_qos())
    embeddings: list[Embedding] = []
    client.node.create_subscription(Embedding, topics.EMBEDDING, embeddings.append, reliable_qos(5))
    client.plans.clear()
    record = run_episode(GRASP, client, episode, GRASP.budgets(3, 1), GRASP.tolerances(0.0, 1))
    assert not running.dead(), running.log_tail(running.dead()[0])
    assert record.outcome in (SUCCESS, *GRASP.failure_classes), record.outcome
    assert record.reasons and record.steps >= 1, (record.reason, record.steps)
    assert len(client.last_goal_images) == 1 and set(record.goal_index) == {0}
    assert len(record.ee_positions[0]) == 7 and len(record.object_positions[0]) == 3
    assert all(np.isfinite(record.energies)) and all(ms > 0 for ms in record.plan_ms)
    assert client.plans and all(tuple(p.action_names) == ACTION_NAMES and len(p.actions) == 7 * p.horizon
                                for p in client.plans)
    assert embeddings and all(tuple(e.state_names) == STATE_NAMES and 0.0 <= e.state[6] <= 1.0 for e in embeddings)
    assert wait_until(lambda: len(commands) > 0, 3.0), "no gripper command from the controller"
    assert all(0.0 <= c <= 1.0 for c in commands)

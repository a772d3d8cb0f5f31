"""The push task through the nodes: launch/sim_push.launch.xml (sim with task push, perception, planner with
config/planner_push.yaml, controller), the shipped push model, every node its own OS process, over DDS."""
from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped

from jepa_common import frames
from jepa_episodes.runner import run_episode
from jepa_episodes.tasks.push import PUSH
from jepa_ros.episodes.node_driver import NodeDriver
from jepa_ros.msg_validation import image_to_array
from jepa_ros.launch_runner.stack import Stack, wait_until
from jepa_ros.ros_util import reliable_qos
from test.support.episodes import short_push

pytestmark = pytest.mark.nodes

TASK = short_push()  # offline with budgets (6, 14): the puck 0.2 cm from its target after 7 steps


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    rclpy.init()
    try:
        with Stack(PUSH.launch_file, log_dir=tmp_path_factory.mktemp("push") / "logs") as running:
            client = NodeDriver(PUSH, alive=lambda: not running.dead())
            try:
                client.wait_until_ready(timeout=120.0, alive=lambda: not running.dead())
                yield running, client
            finally:
                client.close()
    finally:
        rclpy.try_shutdown()


def test_a_push_episode_moves_the_puck_toward_its_target(stack):
    running, client = stack
    result = run_episode(PUSH, client, TASK, (6, 14), PUSH.tolerances(0.0, 2))
    assert not running.dead(), running.log_tail(running.dead()[0])
    assert result.steps >= 5, result.reason
    assert result.start_distance == pytest.approx(TASK.distance, abs=0.003)
    assert result.final_distance < result.start_distance - 0.02, (result.distances, result.outcome, result.reason)
    assert all(np.isfinite(result.energies)) and all(ms > 0 for ms in result.plan_ms)
    assert set(result.goal_index) <= {0, 1} and len(client.last_goal_images) == 2
    assert len(result.object_positions) == len(result.distances) == result.steps + 2


def test_goal_scenes_and_puck_placement_over_ros(stack):
    running, client = stack
    client.start(PUSH.start(TASK))
    assert client.object_distance(TASK.object_start) < 0.002
    behind, target = (image_to_array(client.goal_image(scene)) for scene in PUSH.goals(TASK, 2))
    assert behind.shape == target.shape == (64, 64, 3) and not np.array_equal(behind, target)
    bad = client.node.create_publisher(PoseStamped, "/sim_node/place_object", reliable_qos())
    for xy in ((2.0, 0.0), (float("nan"), 0.0), TASK.ee_start[:2]):  # outside, non-finite, on the end effector
        msg = PoseStamped()
        msg.header.frame_id = frames.BASE
        msg.pose.position.x, msg.pose.position.y = xy
        bad.publish(msg)
    time.sleep(0.5)
    assert client.object_distance(TASK.object_start) < 0.002  # every bad placement was ignored
    assert wait_until(lambda: "place_object ignored" in running.log_tail("sim_node", 200), 5.0)
    assert not running.dead()


def test_every_episode_start_re_arms_the_controller_so_its_plan_watchdog_starts_afresh(stack):
    # An armed controller keeps its plan watchdog (plan_timeout) counting from the last plan: an episode started
    # soon after the previous one's final plan was stopped before its own first plan ("never touched").
    running, client = stack

    def times_armed() -> int:
        return running.log_tail("controller_node", 100_000).count("]: armed")

    client.start(PUSH.start(TASK))
    assert wait_until(lambda: times_armed() >= 1, 5.0)
    before = times_armed()
    client.start(PUSH.start(TASK))  # the controller is armed now: start disarms it, places the scene and arms it again
    assert wait_until(lambda: times_armed() == before + 1, 5.0), running.log_tail("controller_node")
    assert not running.dead()

"""The whole loop on the built-in simulation: sim -> perception -> planner -> controller -> sim, every node its own
OS process started from launch/sim.launch.xml with its parameter files, talking over DDS."""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import TwistStamped
from jepa_msgs.msg import Plan
from sensor_msgs.msg import Image

from jepa_common import topics
from jepa_common.outcomes import END_NODE_DIED, END_STALE
from jepa_ros.episodes.node_driver import NodeDriver
from jepa_ros.ros_util import reliable_qos, sensor_qos
from jepa_ros.launch_runner.stack import Stack, wait_until

pytestmark = pytest.mark.nodes

TARGET = np.array([0.36, -0.10, 0.12])  # about 15 cm from the home pose


@pytest.fixture()
def stack(tmp_path):
    rclpy.init()
    with Stack(log_dir=tmp_path / "logs") as running:
        client = NodeDriver()
        twists: list[tuple[float, np.ndarray]] = []
        client.node.create_subscription(
            TwistStamped, topics.SERVO_TWIST,
            lambda m: twists.append((time.monotonic(), np.array([m.twist.linear.x, m.twist.linear.y,
                                                                 m.twist.linear.z]))), sensor_qos())
        try:
            client.wait_until_ready(timeout=120.0)
            client.reset_sim()
            client.arm(True)
            yield running, client, twists
        finally:
            client.close()
            rclpy.shutdown()


def moving_after(twists, since: float) -> bool:
    """Whether any twist command published after `since` (monotonic time) is non-zero."""
    return any(t > since and np.linalg.norm(v) > 1e-9 for t, v in twists)


def kill_at_step_two(running: Stack, node: str, killed_at: list[float]):
    """An episode `on_step` callback that SIGKILLs `node` at step 2 and records when in `killed_at`."""
    def on_step(record):
        if record.steps == 2 and not killed_at:
            running.stop(node, signal.SIGKILL)
            killed_at.append(time.monotonic())
    return on_step


def test_reach_episode_brings_the_arm_closer_to_the_goal(stack):
    running, client, _ = stack
    start = client.distance_to(TARGET)
    result = client.run_episode(TARGET, budget=10, alive=lambda: not running.dead())
    assert not running.dead(), running.log_tail(running.dead()[0])
    assert result.steps >= 3, result.reason
    assert result.final_distance < 0.6 * start, (start, result.distances, result.reason)
    assert all(np.isfinite(result.energies)) and all(ms > 0 for ms in result.plan_ms)
    plan = client.plans[-1]
    assert list(plan.action_names) == ["dx", "dy", "dz"] and plan.header.stamp.sec > 0


def test_a_topic_goal_image_is_reached_and_held(stack):
    """/jepa/goal_image (no action): the arm reaches the goal, then hold plans keep it there."""
    running, client, _ = stack
    holds: list[tuple[float, float]] = []   # (time, distance to the target) when a zero-action plan arrives

    def on_plan(plan: Plan) -> None:
        if not any(plan.actions):
            holds.append((time.monotonic(), client.distance_to(TARGET)))

    client.node.create_subscription(Plan, topics.PLAN, on_plan, reliable_qos())
    goal = client.request_goal_image(TARGET)
    client.node.create_publisher(Image, topics.GOAL_IMAGE, reliable_qos(1)).publish(goal)
    assert wait_until(lambda: holds, 30.0), (client.distance_to(TARGET), running.dead())
    reached_at = holds[0][0]
    time.sleep(3.0)
    assert not running.dead()
    later = [distance for t, distance in holds if t > reached_at + 1.0]
    assert later, "no hold plans after the goal was reached"
    assert client.distance_to(TARGET) <= 0.02 and max(later) <= 0.02, (holds, client.distance_to(TARGET))


def test_stopping_the_sim_mid_episode_aborts_with_a_reason_and_stops_the_arm(stack):
    running, client, twists = stack
    killed_at: list[float] = []
    result = client.run_episode(TARGET, budget=20, on_step=kill_at_step_two(running, "sim_node", killed_at),
                                timeout=60.0)
    assert killed_at, result.reason
    assert result.reason == END_STALE and not result.success
    time.sleep(2.0)  # state watchdog (state_timeout 1.0 s in config/controller.yaml) plus margin
    assert not moving_after(twists, killed_at[0] + 1.5), "controller still commands motion without a robot state"


def test_killing_the_planner_mid_episode_ends_it_and_the_watchdog_stops_the_arm(stack):
    running, client, twists = stack
    killed_at: list[float] = []
    result = client.run_episode(TARGET, budget=20, on_step=kill_at_step_two(running, "planner_node", killed_at),
                                alive=lambda: not running.dead(), timeout=60.0)
    assert killed_at and result.reason == END_NODE_DIED and not result.success
    time.sleep(2.5)  # plan watchdog (plan_timeout 1.5 s in config/controller.yaml) plus margin
    assert not moving_after(twists, killed_at[0] + 2.0), "controller kept moving without fresh plans"
    assert twists and np.linalg.norm(twists[-1][1]) == 0.0

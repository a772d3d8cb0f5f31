"""Every jepa_msgs type crosses a real DDS link between two OS processes unchanged (float arrays bit-exact)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from jepa_msgs.action import ReachGoal
from jepa_msgs.srv import Predict
from rclpy.action import ActionClient
from rclpy.node import Node

from jepa_ros.ros_util import latched_qos
from jepa_ros.launch_runner.stack import wait_until
from test.support.peers import interface_samples as samples
from test.support.nodes import NodeProcess


def assert_fields_equal(received, expected, path: str) -> None:
    """Compare two ROS messages recursively, field by field; arrays compare their bytes (bit-exact)."""
    difference = samples.first_difference(received, expected, path)
    assert difference is None, difference


@pytest.fixture(scope="module")
def peer():
    """The peer process; at the end it must shut down cleanly (exit code 0) on SIGINT."""
    process = NodeProcess.module("test.support.peers.interface_peer", [])
    try:
        assert wait_until(lambda: "peer ready" in process.output() or not process.alive(), 60.0), process.output()
        assert process.alive(), process.output()
        yield process
        code = process.stop()
        assert code == 0, f"the peer did not shut down cleanly (exit code {code}):\n{process.output()}"
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def node():
    rclpy.init()
    node = Node("interface_roundtrip_test")
    yield node
    node.destroy_node()
    rclpy.shutdown()


def spin_until(node: Node, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert done(), "timed out waiting over DDS"


@pytest.mark.parametrize("name", sorted(samples.TOPIC_SAMPLES))
def test_topic_roundtrip(peer, node, name):
    msg_type, build = samples.TOPIC_SAMPLES[name]
    received = []
    sub = node.create_subscription(msg_type, f"/roundtrip/{name}", received.append, latched_qos())
    spin_until(node, lambda: received)
    assert_fields_equal(received[0], build(np.random.default_rng(samples.SEED)), name)
    node.destroy_subscription(sub)


def test_service_roundtrip(peer, node):
    client = node.create_client(Predict, "/roundtrip/predict")
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(samples.predict_request(np.random.default_rng(samples.SEED)))
    spin_until(node, future.done)
    response = future.result()
    assert response.success, response.message  # the peer saw our request unchanged
    expected = samples.predict_response(np.random.default_rng(samples.SEED))
    expected.success, expected.message = True, "request matched"
    assert_fields_equal(response, expected, "Predict.Response")


def test_action_roundtrip(peer, node):
    client = ActionClient(node, ReachGoal, "/roundtrip/reach_goal")
    assert client.wait_for_server(timeout_sec=20)
    feedback = []
    goal_future = client.send_goal_async(samples.reach_goal_goal(np.random.default_rng(samples.SEED)),
                                         feedback_callback=lambda msg: feedback.append(msg.feedback))
    spin_until(node, goal_future.done)
    handle = goal_future.result()
    assert handle.accepted
    result_future = handle.get_result_async()
    spin_until(node, result_future.done)
    result = result_future.result().result
    assert result.reason == "reached", result.reason  # the peer saw our goal unchanged
    assert_fields_equal(result, samples.reach_goal_result(np.random.default_rng(samples.SEED)), "ReachGoal.Result")
    assert feedback, "no feedback arrived"
    assert_fields_equal(feedback[0], samples.reach_goal_feedback(np.random.default_rng(samples.SEED)),
                        "ReachGoal.Feedback")

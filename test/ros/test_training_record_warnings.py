"""`jepa record` names configured topics nobody publishes, and an arm reset (a jump of the state) starts a new
episode file."""
from __future__ import annotations

import time

import pytest
from geometry_msgs.msg import PoseStamped
from rosbags.rosbag2 import Reader

from jepa_common import topics
from jepa_ros.nodes.recorder_node import RESET_JUMP, SILENT_AFTER
from jepa_ros.ros_util import reliable_qos
from jepa_ros.launch_runner.stack import wait_until
from test.support.nodes import Driver, NodeProcess

pytestmark = pytest.mark.nodes


def pose(driver: Driver, x: float) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = driver.stamp()
    msg.pose.position.x, msg.pose.position.z = x, 0.2
    msg.pose.orientation.w = 1.0
    return msg


def test_silent_topics_are_named_and_an_arm_reset_starts_the_next_episode(tmp_path):
    out = tmp_path / "recordings"
    driver = Driver()
    publisher = driver.publisher(PoseStamped, topics.EE_POSE, reliable_qos())
    process = NodeProcess.module("jepa_ros.cli", ["record", "--out", str(out), "--topics", topics.EE_POSE,
                                                  "/nothing_here", "--camera-topic", "/no_camera"])
    try:
        driver.wait_for_subscribers(publisher, timeout=30.0)
        time.sleep(0.5)
        before = [0.30 + 0.001 * k for k in range(15)]
        after = [0.30 + 3 * RESET_JUMP + 0.001 * k for k in range(10)]   # the arm was put back elsewhere
        for x in before + after:
            publisher.publish(pose(driver, x))
            time.sleep(0.02)
        assert wait_until(lambda: "no publisher on /nothing_here" in process.output(), SILENT_AFTER + 30.0), \
            process.output()
        time.sleep(0.3)
        assert process.stop() == 0, process.output()
        output = process.output()
    finally:
        process.cleanup()
        driver.close()

    assert "no publisher on /no_camera" in output and "no publisher on /ee_pose" not in output, output
    assert "arm reset: /ee_pose jumped" in output, output
    counts = []
    for name in ("episode_0000.mcap", "episode_0001.mcap"):
        with Reader(out / name) as reader:   # both closed properly
            counts.append(sum(c.msgcount for c in reader.connections if c.topic == topics.EE_POSE))
    assert counts == [len(before), len(after)], (counts, output)
    assert not (out / "episode_0002.mcap").exists()

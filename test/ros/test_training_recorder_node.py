"""`jepa record` as a ROS node: records what another process publishes over DDS; SIGKILL loses at most a chunk."""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from jepa_common import topics
from jepa_ros.nodes import recorder_node
from jepa_ros.ros_util import reliable_qos, sensor_qos
from jepa_world_model.data.dataset import load_episodes
from jepa_world_model.data.recorder_settings import RecorderSettings
from test.support.nodes import Driver, NodeProcess, ros_args

pytestmark = pytest.mark.nodes

T0 = 1_700_000_000
SIZE = 32


def _frame(k: int) -> np.ndarray:
    """A distinct random frame per index k."""
    rng = np.random.default_rng(k)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _publish(driver: Driver, image_pub, pose_pub, k: int) -> None:
    stamp_ns = T0 * 10**9 + k * 100_000_000
    image = Image(height=SIZE, width=SIZE, encoding="rgb8", step=SIZE * 3, data=_frame(k).tobytes())
    image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    pose = PoseStamped()
    pose.header.stamp = image.header.stamp
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.3 + 0.001 * k, 0.0, 0.1
    pose.pose.orientation.w = 1.0
    pose_pub.publish(pose)
    image_pub.publish(image)


@pytest.fixture
def driver():
    d = Driver()
    yield d
    d.close()


def test_recorder_node_records_over_dds_and_survives_sigkill(tmp_path, driver):
    out = tmp_path / "recordings"
    chunk = 40_000  # about 13 frames of 32x32 rgb8 per chunk
    process = NodeProcess.module("jepa_ros.nodes.recorder_node",
                                 ros_args(output_dir=str(out), chunk_size=chunk, flush_period=600.0))
    try:
        image_pub = driver.publisher(Image, topics.CAMERA, sensor_qos())
        pose_pub = driver.publisher(PoseStamped, topics.EE_POSE, reliable_qos())
        driver.wait_for_subscribers(image_pub, timeout=30.0)
        driver.wait_for_subscribers(pose_pub, timeout=30.0)
        time.sleep(0.5)  # let discovery settle both ways

        for k in range(20):  # episode 0, closed through the service
            _publish(driver, image_pub, pose_pub, k)
            time.sleep(0.01)
        time.sleep(0.3)
        response = driver.call(Trigger, "/recorder/next_episode", Trigger.Request(), timeout=10.0)
        assert response.success, response.message
        first = out / "episode_0000.mcap"
        with Reader(first) as reader:  # complete file: the rosbags reader opens it through its summary
            counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts[topics.CAMERA] >= 18 and counts[topics.EE_POSE] >= 18, counts

        second = out / "episode_0001.mcap"
        for k in range(20, 100):  # episode 1, cut short by SIGKILL
            _publish(driver, image_pub, pose_pub, k)
            time.sleep(0.01)
        time.sleep(0.5)
        size_before_kill = second.stat().st_size
        process.kill()
    finally:
        process.cleanup()

    assert size_before_kill > 3 * chunk / 4, "chunks should have reached the disk before the kill"
    with pytest.raises(Exception):
        Reader(second).open()  # no footer: the ordinary reader refuses the file ...
    episodes, skipped = load_episodes([second])  # ... the dataset reader recovers the complete chunks
    assert not skipped, skipped
    episode = episodes[0]
    assert episode.recovered
    frames_per_chunk = chunk // (SIZE * SIZE * 3) + 1
    assert len(episode) >= 80 - 2 * frames_per_chunk - 4, len(episode)  # only the last chunk (+ rare drops) lost
    for stamp, rgb in zip(episode.stamps, episode.frames):
        k = int((stamp - T0 * 10**9) // 100_000_000)
        assert np.array_equal(rgb, _frame(k)), f"frame {k} differs after the round trip"
        assert 20 <= k < 100
    np.testing.assert_allclose(episode.states[:, 0], 0.3 + 0.001 * ((episode.stamps - T0 * 10**9) // 10**8),
                               atol=1e-9)


def test_jepa_record_closes_the_episode_on_sigint_and_numbering_continues(tmp_path, driver):
    out = tmp_path / "recordings"
    out.mkdir()
    (out / "episode_0007.mcap").write_bytes(b"")  # an earlier session's file: the next one is 0008
    # `jepa record` options become the node's parameters (camera topic unused here: it never appears)
    process = NodeProcess.module("jepa_ros.cli", ["record", "--out", str(out), "--topics", topics.EE_POSE,
                                                  "--camera-topic", "/no_camera"])
    try:
        pose_pub = driver.publisher(PoseStamped, topics.EE_POSE, reliable_qos())
        driver.wait_for_subscribers(pose_pub, timeout=30.0)
        time.sleep(0.5)
        for _ in range(10):
            pose = PoseStamped()
            pose.header.stamp = driver.stamp()
            pose_pub.publish(pose)
            time.sleep(0.02)
        time.sleep(0.3)
        assert process.stop() == 0, process.output()
    finally:
        process.cleanup()
    with Reader(out / "episode_0008.mcap") as reader:  # closed properly: summary and footer are there
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {topics.EE_POSE: 10}, counts


def test_bad_parameters_exit_with_code_2(tmp_path):
    process = NodeProcess.module("jepa_ros.nodes.recorder_node",
                                 ros_args(output_dir=str(tmp_path), compression="gzip"))
    try:
        assert process.proc.wait(60) == 2, process.output()
        assert "compression" in process.output() and "Traceback" not in process.output()
    finally:
        process.cleanup()


def test_record_options_come_from_the_settings():
    parser = argparse.ArgumentParser()
    recorder_node.add_arguments(parser)
    assert recorder_node.make_settings(RecorderSettings, recorder_node.settings_values(
        RecorderSettings, parser.parse_args([]))) == RecorderSettings()
    args = parser.parse_args(["--out", "data", "--topics", "--compression", "lz4"])
    assert (args.output_dir, args.topics, args.compression) == ("data", [], "lz4")

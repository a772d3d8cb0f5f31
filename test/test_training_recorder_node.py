"""`jepa record` as a ROS node: records what another process publishes over DDS; SIGKILL loses at most a chunk."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from jepa_world_model.dataset import load_episodes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000
SIZE = 32


def _frame(k: int) -> np.ndarray:
    """A distinct random frame per index k."""
    rng = np.random.default_rng(k)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return rgb


def _publish(node, image_pub, pose_pub, k: int) -> None:
    stamp_ns = T0 * 10**9 + k * 100_000_000
    image = Image(height=SIZE, width=SIZE, encoding="rgb8", step=SIZE * 3, data=_frame(k).tobytes())
    image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    pose = PoseStamped()
    pose.header.stamp = image.header.stamp
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.3 + 0.001 * k, 0.0, 0.1
    pose.pose.orientation.w = 1.0
    pose_pub.publish(pose)
    image_pub.publish(image)
    rclpy.spin_once(node, timeout_sec=0.01)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def ros_node():
    rclpy.init()
    node = rclpy.create_node("recorder_test_publisher")
    yield node
    node.destroy_node()
    rclpy.shutdown()


def test_recorder_node_records_over_dds_and_survives_sigkill(tmp_path, ros_node):
    out = tmp_path / "recordings"
    chunk = 40_000  # about 13 frames of 32x32 rgb8 per chunk
    proc = subprocess.Popen(
        [sys.executable, "-m", "jepa_ros.nodes.recorder_node", "--ros-args", "-p", f"output_dir:={out}",
         "-p", f"chunk_size:={chunk}", "-p", "flush_period:=600.0"],
        cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        node = ros_node
        image_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        pose_pub = node.create_publisher(PoseStamped, "/ee_pose", 10)
        client = node.create_client(Trigger, "/recorder/next_episode")
        assert client.wait_for_service(timeout_sec=30.0), "recorder service did not appear"
        _wait(lambda: node.count_subscribers("/camera/image_raw") > 0 and node.count_subscribers("/ee_pose") > 0,
              20.0, "recorder subscriptions")
        time.sleep(0.5)  # let discovery settle both ways

        for k in range(20):  # episode 0, closed through the service
            _publish(node, image_pub, pose_pub, k)
            time.sleep(0.01)
        time.sleep(0.3)
        future = client.call_async(Trigger.Request())
        rclpy.spin_until_future_complete(node, future, timeout_sec=10.0)
        assert future.result() is not None and future.result().success, "next_episode failed"
        first = out / "episode_0000.mcap"
        with Reader(first) as reader:  # complete file: the rosbags reader opens it through its summary
            counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/camera/image_raw"] >= 18 and counts["/ee_pose"] >= 18, counts

        second = out / "episode_0001.mcap"
        for k in range(20, 100):  # episode 1, cut short by SIGKILL
            _publish(node, image_pub, pose_pub, k)
            time.sleep(0.01)
        time.sleep(0.5)
        size_before_kill = second.stat().st_size
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

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

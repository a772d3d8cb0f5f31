"""sim_node as a separate OS process, driven over real DDS with rclpy."""
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

REPO = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT = 0.2
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _seconds(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


class Client:
    """Test-side rclpy node that records the latest message of every sim topic."""

    def __init__(self, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("test_sim_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.latest: dict = {}
        self.ee_history: list = []  # (stamp in s, EE position) of every /ee_pose message
        self.counts: dict = {}
        self.diagnostics: list = []
        for topic, kind, qos in [("/camera/image_raw", Image, qos_profile_sensor_data),
                                 ("/camera/camera_info", CameraInfo, qos_profile_sensor_data),
                                 ("/joint_states", JointState, 10), ("/ee_pose", PoseStamped, 10),
                                 ("/sim_node/goal_image", Image, LATCHED)]:
            self.node.create_subscription(kind, topic, self._recorder(topic), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.twist_pub = self.node.create_publisher(TwistStamped, "/servo_node/delta_twist_cmds", 10)
        self.traj_pub = self.node.create_publisher(
            JointTrajectory, "/joint_trajectory_controller/joint_trajectory", 10)
        self.goal_pub = self.node.create_publisher(PoseStamped, "/sim_node/goal_pose", 10)
        self.reset_client = self.node.create_client(Trigger, "/sim_node/reset")

    def _recorder(self, topic: str):
        def callback(msg) -> None:
            self.latest[topic] = msg
            self.counts[topic] = self.counts.get(topic, 0) + 1
            if topic == "/ee_pose":
                p = msg.pose.position
                self.ee_history.append((_seconds(msg.header.stamp), np.array([p.x, p.y, p.z])))
        return callback

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def ee_at(self, t: float) -> np.ndarray:
        """EE position from the first pose stamped at or after ``t`` (waits for it)."""
        assert self.spin_until(lambda: self.ee_history and self.ee_history[-1][0] >= t, 3.0)
        return next(p for stamp, p in self.ee_history if stamp >= t)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics += [s for s in msg.status if s.name == "jepa_ros: sim_node"]

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def reset(self) -> None:
        assert self.reset_client.wait_for_service(timeout_sec=5.0)
        future = self.reset_client.call_async(Trigger.Request())
        assert self.spin_until(future.done, 5.0) and future.result().success
        self.spin_for(0.2)

    def twist(self, linear, frame: str = "base_link") -> None:
        msg = TwistStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = frame
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
        self.twist_pub.publish(msg)

    def trajectory(self, names, positions, seconds: float) -> None:
        msg = JointTrajectory(joint_names=list(names))
        msg.points = [JointTrajectoryPoint(positions=[float(v) for v in positions],
                                           time_from_start=Duration(sec=int(seconds),
                                                                    nanosec=int((seconds % 1) * 1e9)))]
        self.traj_pub.publish(msg)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@contextlib.contextmanager
def running_sim(log_path: Path, domain_id: int, *params: str):
    """Start sim_node (``-p`` params) in its own process on ``domain_id``; yield a Client once data flows."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "jepa_ros.nodes.sim_node", "--ros-args"]
    for param in params:
        command += ["-p", param]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    c = Client(domain_id)
    try:
        started = c.spin_until(lambda: {"/camera/image_raw", "/ee_pose", "/joint_states"} <= set(c.latest), 30.0)
        assert started, f"sim_node produced no data; log:\n{log_path.read_text()}"
        yield c
    finally:
        c.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"sim_node exited with {process.returncode}; log:\n{log_path.read_text()}"


def _domain_id() -> int:
    value = os.environ.get("ROS_DOMAIN_ID")
    assert value, "test/conftest.py must set ROS_DOMAIN_ID"
    return int(value)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("sim_node") / "sim_node.log"
    with running_sim(log_path, _domain_id(), "camera_rate:=10.0", f"command_timeout:={COMMAND_TIMEOUT}") as c:
        yield c


def _age(stamp, node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9 - _seconds(stamp)


def test_publishes_camera_and_state(client):
    client.counts["/camera/image_raw"] = 0
    client.spin_for(1.0)
    assert 4 <= client.counts["/camera/image_raw"] <= 15  # camera_rate 10 Hz
    image = client.latest["/camera/image_raw"]
    assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 64, 64, 192)
    assert len(image.data) == 64 * 64 * 3 and np.frombuffer(bytes(image.data), np.uint8).std() > 20
    assert 0.0 <= _age(image.header.stamp, client.node) < 1.0
    info = client.latest["/camera/camera_info"]
    assert (info.width, info.height) == (64, 64) and info.k[0] > 0 and info.header.frame_id == image.header.frame_id
    joints = client.latest["/joint_states"]
    assert list(joints.name) == ["base_yaw", "shoulder_pitch", "elbow_pitch"] and len(joints.position) == 3
    assert 0.0 <= _age(joints.header.stamp, client.node) < 0.5
    pose = client.latest["/ee_pose"]
    assert pose.header.frame_id == "base_link" and 0.0 <= _age(pose.header.stamp, client.node) < 0.5


def test_twist_moves_ee_then_stops_after_timeout(client):
    # Judged on the poses' stamps (node clock = this machine's clock), so the test's own lag does not matter.
    client.reset()
    velocity = np.array([0.06, -0.04, -0.05])
    t_first = client.now()
    while client.now() - t_first < 1.0:
        client.twist(velocity)
        t_last = client.now()
        client.spin_for(0.05)
    moved = client.ee_at(t_last) - client.ee_at(t_first)
    expected = velocity * (t_last - t_first)
    assert np.dot(moved, expected) / (np.linalg.norm(moved) * np.linalg.norm(expected)) > 0.97
    assert np.linalg.norm(moved) == pytest.approx(np.linalg.norm(expected), rel=0.25)
    # Without the timeout the arm would go on for 1 s more (8.8 cm); it stops about COMMAND_TIMEOUT after the
    # last command (slack for DDS/scheduling delays under load) and then stays put.
    t_end = t_last + 1.0
    final = client.ee_at(t_end)
    assert np.linalg.norm(final - client.ee_at(t_last)) < np.linalg.norm(velocity) * (COMMAND_TIMEOUT + 0.25)
    settled = [p for stamp, p in client.ee_history if t_last + COMMAND_TIMEOUT + 0.3 <= stamp <= t_end]
    assert settled and max(np.linalg.norm(p - final) for p in settled) < 1e-3


def test_joint_trajectory_reaches_last_point(client):
    client.reset()
    target = [0.3, 0.7, 1.4]
    client.trajectory(["elbow_pitch", "base_yaw", "shoulder_pitch"], [target[2], target[0], target[1]], 0.8)
    client.spin_for(1.3)
    client.counts["/joint_states"] = 0
    assert client.spin_until(lambda: client.counts["/joint_states"] > 0, 2.0)
    assert np.allclose(client.latest["/joint_states"].position, target, atol=0.01)


def _still(client: Client, start: float, end: float) -> bool:
    """True when every EE pose stamped in [start, end] is within 1 mm of the first of them."""
    assert client.spin_until(lambda: client.ee_history[-1][0] >= end, 3.0)
    window = [p for stamp, p in client.ee_history if start <= stamp <= end]
    return len(window) >= 5 and max(np.linalg.norm(p - window[0]) for p in window) < 1e-3


def test_malformed_commands_are_rejected_and_stop_the_arm(client):
    client.reset()
    client.trajectory(["base_yaw", "shoulder_pitch", "elbow_pitch"], [1.5, 1.0, 1.0], 3.0)
    client.spin_for(0.5)
    t_nan = client.now()
    assert not _still(client, t_nan - 0.3, t_nan)  # the trajectory is under way
    client.twist([math.nan, 0.0, 0.0])  # malformed: rejected, and the arm stops
    client.spin_for(0.6)
    assert _still(client, t_nan + 0.3, t_nan + 0.6)
    t_bad = client.now()
    client.trajectory(["base_yaw", "wrist"], [0.5, 0.5], 0.5)  # wrong joint names
    client.trajectory(["base_yaw", "shoulder_pitch", "elbow_pitch"], [0.5, 0.5], 0.5)  # wrong length
    client.trajectory(["base_yaw", "shoulder_pitch", "elbow_pitch"], [0.5, 0.5, -1.0], 0.5)  # beyond a limit
    client.twist([0.1, 0.0, 0.0], frame="camera")  # unknown frame
    client.spin_for(0.8)
    assert _still(client, t_bad, t_bad + 0.8)
    client.diagnostics.clear()
    assert client.spin_until(lambda: client.diagnostics, 3.0)
    status = client.diagnostics[-1]
    assert status.level == DiagnosticStatus.WARN and "rejected" in status.message


def test_goal_image_on_request(client):
    client.reset()
    goal = PoseStamped()
    goal.header.frame_id = "base_link"
    goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = 0.4, 0.15, 0.1
    client.goal_pub.publish(goal)
    assert client.spin_until(lambda: "/sim_node/goal_image" in client.latest, 5.0)
    image = client.latest["/sim_node/goal_image"]
    assert (image.encoding, image.width, image.height) == ("rgb8", 64, 64)
    current = bytes(client.latest["/camera/image_raw"].data)
    difference = np.abs(np.frombuffer(bytes(image.data), np.uint8).astype(int)
                        - np.frombuffer(current, np.uint8).astype(int))
    assert difference.sum() > 1000  # the arm is drawn somewhere else
    # Latched: a subscriber that joins later still gets it.
    late = []
    client.node.create_subscription(Image, "/sim_node/goal_image", late.append, LATCHED)
    assert client.spin_until(lambda: late, 5.0)
    assert bytes(late[0].data) == bytes(image.data)


def test_diagnostics_report_fps_and_command_age(client):
    client.diagnostics.clear()
    assert client.spin_until(lambda: len(client.diagnostics) >= 2, 4.0)
    values = {kv.key: kv.value for kv in client.diagnostics[-1].values}
    assert float(values["rendered_fps"]) > 5.0
    assert values["last_command_age"] != "never" and float(values["last_command_age"]) >= 0.0
    assert float(values["real_time_factor"]) > 0.8


def test_publish_clock_stamps_with_simulated_time(tmp_path):
    other_domain = _domain_id() % 200 + 1  # its own domain: the module's sim_node is still running
    with running_sim(tmp_path / "sim_node.log", other_domain, "publish_clock:=true", "image_size:=32",
                     "camera_rate:=5.0") as c:
        clocks = []
        c.node.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec + 1e-9 * m.clock.nanosec), 10)
        assert c.spin_until(lambda: clocks, 5.0)
        first = clocks[-1]
        c.spin_for(1.0)
        assert clocks[-1] - first == pytest.approx(1.0, abs=0.25)  # simulated time runs in real time
        assert clocks == sorted(clocks) and clocks[-1] < 60.0  # it starts at zero, not at the wall time
        image = c.latest["/camera/image_raw"]
        assert (image.width, image.height) == (32, 32)
        stamp = _seconds(image.header.stamp)
        assert 0.0 < stamp <= clocks[-1] + 0.05

"""sim_node with the Franka scene (task grasp) in its own OS process, driven over real DDS with rclpy: joint states
with the finger joints, the end-effector pose with its orientation, twists (linear and angular), the gripper
command topic and its refusals, the 128 px camera, the cube's pose, resets and goal images."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from jepa_common import frames, topics
from jepa_ros.ros_util import latched_qos, reliable_qos, sensor_qos
from jepa_sim.franka_sim import ARM_JOINT_NAMES, CUBE_HALF, FINGER_JOINT_NAMES, FINGER_MAX
from test.support.nodes import Driver, NodeProcess, latest_status, ros_args, wait_until

pytestmark = pytest.mark.nodes

STATUS = "jepa_ros: sim_node"
WANTED = [(topics.CAMERA, Image, sensor_qos()), (topics.CAMERA_INFO, CameraInfo, sensor_qos()),
          (topics.JOINT_STATES, JointState, reliable_qos()), (topics.EE_POSE, PoseStamped, reliable_qos()),
          (topics.OBJECT_POSE, PoseStamped, reliable_qos()), ("/sim_node/goal_image", Image, latched_qos())]


class FrankaClient:
    """The latest message of every sim topic, the diagnostics, and publishers of the commands."""

    def __init__(self) -> None:
        self.driver = Driver()
        node = self.driver.node
        self.latest: dict = {}
        for topic, kind, qos in WANTED:
            node.create_subscription(kind, topic, lambda msg, t=topic: self.latest.__setitem__(t, msg), qos)
        self.diagnostics = self.driver.collect(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.twist_pub = node.create_publisher(TwistStamped, topics.SERVO_TWIST, reliable_qos())
        self.gripper_pub = node.create_publisher(Float64, topics.GRIPPER_COMMAND, reliable_qos())
        self.goal_object_pub = node.create_publisher(PoseStamped, "/sim_node/goal_object_pose", reliable_qos())

    def ee(self) -> np.ndarray:
        p = self.latest[topics.EE_POSE].pose.position
        return np.array([p.x, p.y, p.z])

    def fingers(self) -> np.ndarray:
        joints = self.latest[topics.JOINT_STATES]
        return np.array([joints.position[list(joints.name).index(n)] for n in FINGER_JOINT_NAMES])

    def twist(self, linear, angular=(0.0, 0.0, 0.0)) -> None:
        msg = TwistStamped()
        msg.header.stamp = self.driver.stamp()
        msg.header.frame_id = frames.BASE
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in angular)
        self.twist_pub.publish(msg)

    def rejected_gripper_commands(self) -> int | None:
        status = latest_status(self.diagnostics, STATUS)
        return None if status is None or "rejected_gripper_commands" not in status[2] else \
            int(status[2]["rejected_gripper_commands"])

    def reset(self) -> str:
        response = self.driver.call(Trigger, "/sim_node/reset", Trigger.Request(), timeout=10.0)
        assert response.success
        time.sleep(0.3)
        return response.message

    def close(self) -> None:
        self.driver.close()


@pytest.fixture(scope="module")
def franka():
    process = NodeProcess.module("jepa_ros.nodes.sim_node", ros_args("sim.yaml", task="grasp", camera_rate=5.0,
                                                                     seed=3))
    client = FrankaClient()
    try:
        started = wait_until(lambda: {topics.CAMERA, topics.EE_POSE, topics.JOINT_STATES, topics.OBJECT_POSE}
                             <= set(client.latest), 60.0)
        assert started, f"sim_node produced no data; log:\n{process.output()}"
        yield client, process
    finally:
        client.close()
        code = process.stop()
        output = process.output()
        process.cleanup()
    assert code == 0, f"sim_node exited with {code}; log:\n{output}"


def test_publishes_finger_joints_oriented_pose_cube_and_a_128_px_image(franka):
    client, _ = franka
    joints = client.latest[topics.JOINT_STATES]
    assert list(joints.name) == [*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES] and len(joints.position) == 9
    assert client.fingers() == pytest.approx([FINGER_MAX, FINGER_MAX], abs=2e-3)  # starts open
    pose = client.latest[topics.EE_POSE]
    assert pose.header.frame_id == frames.BASE
    o = pose.pose.orientation
    assert math.isclose(o.w ** 2 + o.x ** 2 + o.y ** 2 + o.z ** 2, 1.0, abs_tol=1e-6)
    assert 1.0 - 2.0 * (o.x ** 2 + o.y ** 2) < -0.95  # the gripper's z axis points down: a real orientation
    cube = client.latest[topics.OBJECT_POSE].pose.position
    assert cube.z == pytest.approx(CUBE_HALF, abs=3e-3)
    assert wait_until(lambda: topics.CAMERA_INFO in client.latest, 10.0)
    image = client.latest[topics.CAMERA]
    assert (image.encoding, image.width, image.height) == ("rgb8", 128, 128)
    assert np.frombuffer(bytes(image.data), np.uint8).std() > 20
    info = client.latest[topics.CAMERA_INFO]
    assert (info.width, info.height) == (128, 128) and info.k[0] > 0


def test_a_plus_x_twist_moves_the_end_effector_in_plus_x_then_it_stops(franka):
    client, _ = franka
    client.reset()
    start = client.ee()
    timer = client.driver.every(0.03, lambda: client.twist((0.05, 0.0, 0.0)))
    time.sleep(1.2)
    timer.cancel()
    time.sleep(0.5)
    moved = client.ee() - start
    assert moved[0] > 0.03, moved
    assert abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01, moved
    stopped = client.ee()
    time.sleep(0.5)
    assert np.linalg.norm(client.ee() - stopped) < 2e-3  # the twist timed out


def _yaw(pose: PoseStamped) -> float:
    o = pose.pose.orientation
    return math.atan2(2.0 * (o.w * o.z + o.x * o.y), 1.0 - 2.0 * (o.y * o.y + o.z * o.z))


def test_the_angular_part_of_a_twist_turns_the_gripper(franka):
    client, _ = franka
    client.reset()
    start, yaw = client.ee(), _yaw(client.latest[topics.EE_POSE])
    timer = client.driver.every(0.03, lambda: client.twist((0.0, 0.0, 0.0), (0.0, 0.0, 0.4)))
    time.sleep(1.2)
    timer.cancel()
    time.sleep(0.5)
    turned = math.remainder(_yaw(client.latest[topics.EE_POSE]) - yaw, 2.0 * math.pi)
    assert abs(turned) > 0.25, turned  # about the vertical: a quaternion yaw of the flipped gripper
    assert np.linalg.norm(client.ee() - start) < 0.01


def test_place_object_and_place_ee_stage_a_scene(franka):
    client, _ = franka
    client.reset()
    node = client.driver.node
    place_object = node.create_publisher(PoseStamped, "/sim_node/place_object", reliable_qos())
    place_ee = node.create_publisher(PoseStamped, "/sim_node/place_ee", reliable_qos())

    def pose(x: float, y: float, z: float) -> PoseStamped:
        msg = PoseStamped()
        msg.header.frame_id = frames.BASE
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
        msg.pose.orientation.w = 1.0
        return msg

    def cube_xy() -> np.ndarray:
        p = client.latest[topics.OBJECT_POSE].pose.position
        return np.array([p.x, p.y])

    client.driver.wait_for_subscribers(place_ee)
    assert wait_until(lambda: place_ee.publish(pose(0.40, 0.10, 0.25)) or
                      np.linalg.norm(client.ee() - [0.40, 0.10, 0.25]) < 2e-3, 10.0, 0.5), client.ee()
    client.driver.wait_for_subscribers(place_object)
    assert wait_until(lambda: place_object.publish(pose(0.55, -0.05, 0.0)) or
                      np.linalg.norm(cube_xy() - [0.55, -0.05]) < 2e-3, 10.0, 0.5), cube_xy()
    time.sleep(0.3)
    assert client.latest[topics.OBJECT_POSE].pose.position.z == pytest.approx(CUBE_HALF, abs=3e-3)
    assert np.linalg.norm(client.ee() - [0.40, 0.10, 0.25]) < 3e-3  # held there


def test_a_gripper_command_closes_the_fingers_and_a_nan_one_is_refused_and_counted(franka):
    client, _ = franka
    client.reset()
    client.driver.wait_for_subscribers(client.gripper_pub)
    client.gripper_pub.publish(Float64(data=1.0))
    assert wait_until(lambda: np.all(client.fingers() < 0.005), 5.0), client.fingers()
    assert wait_until(lambda: client.rejected_gripper_commands() == 0, 5.0)
    client.gripper_pub.publish(Float64(data=float("nan")))
    client.gripper_pub.publish(Float64(data=1.5))
    assert wait_until(lambda: client.rejected_gripper_commands() == 2, 5.0), client.rejected_gripper_commands()
    time.sleep(0.3)
    assert np.all(client.fingers() < 0.005)  # still closed: the refused commands changed nothing
    client.gripper_pub.publish(Float64(data=0.0))
    assert wait_until(lambda: np.all(client.fingers() > FINGER_MAX - 0.005), 5.0), client.fingers()


def test_reset_draws_new_starts_and_goal_object_pose_renders_a_goal_image(franka):
    client, _ = franka
    first = client.reset()
    second = client.reset()
    assert first != second and "cube at" in first
    client.latest.pop("/sim_node/goal_image", None)
    cube = client.latest[topics.OBJECT_POSE].pose.position
    goal = PoseStamped()
    goal.header.frame_id = frames.BASE
    goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = cube.x, cube.y, CUBE_HALF + 0.10
    goal.pose.orientation.w = 1.0
    client.driver.wait_for_subscribers(client.goal_object_pub)
    assert wait_until(lambda: client.goal_object_pub.publish(goal) or "/sim_node/goal_image" in client.latest,
                      10.0, 0.5)
    image = client.latest["/sim_node/goal_image"]
    assert (image.width, image.height) == (128, 128)
    now = np.frombuffer(bytes(client.latest[topics.CAMERA].data), np.uint8)
    assert np.abs(np.frombuffer(bytes(image.data), np.uint8).astype(int) - now).mean() > 1.0

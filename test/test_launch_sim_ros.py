"""sim.launch.xml through the real ROS 2 launch system (launch_pytest). Runs only where ROS 2 launch is installed;
its sibling test_closed_loop.py starts the same launch file's nodes as OS processes and runs everywhere."""
import time

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="ROS 2 launch (launch_pytest) is not installed; it is not installable from PyPI. "
    "test_closed_loop.py checks the same launch file here")
import launch  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from jepa_msgs.msg import Embedding, Plan  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import AnyLaunchDescriptionSource  # noqa: E402


@launch_pytest.fixture
def sim_stack():
    """The built-in simulation stack, exactly as `ros2 launch jepa_ros sim.launch.xml` starts it."""
    path = f"{get_package_share_directory('jepa_ros')}/launch/sim.launch.xml"
    return launch.LaunchDescription([IncludeLaunchDescription(AnyLaunchDescriptionSource(path)),
                                     launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=sim_stack)
def test_embeddings_flow_from_the_launched_sim():
    rclpy.init()
    try:
        node = rclpy.create_node("launch_check")
        got: list[Embedding] = []
        node.create_subscription(Embedding, "/jepa/embedding", got.append, 10)
        node.create_subscription(Plan, "/jepa/plan", lambda _: None, 10)
        deadline = time.monotonic() + 90
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert got, "no embedding from the launched stack"
        assert got[0].header.stamp.sec > 0 and len(got[0].data) == got[0].shape[0] * got[0].shape[1]
        assert list(got[0].state_names) == ["x", "y", "z"]
    finally:
        rclpy.shutdown()

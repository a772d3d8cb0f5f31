"""sim.launch.xml through the real ROS 2 launch system (launch_pytest). Runs only where ROS 2 launch is installed;
its sibling test_closed_loop.py starts the same launch file's nodes as OS processes and runs everywhere.

Run it with the pytest your ROS distro ships (8.x: ``python3 -m pytest test/ros/test_launch_sim_ros.py`` after
``source install/setup.bash``, or ``colcon test``): launch_testing releases without the pytest 8/9 hook fix
(ros2/launch#972 and its backports) fail at plugin registration under pytest 9, before any test is collected.
The test uses nothing newer than pytest 7 and judges a steady stream, not the first message.
"""
import time

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="ROS 2 launch (launch_pytest) is not installed; it is not installable from PyPI. "
    "test_closed_loop.py checks the same launch file here")
import launch  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from jepa_msgs.msg import Embedding  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import AnyLaunchDescriptionSource  # noqa: E402

from jepa_common import topics  # noqa: E402

pytestmark = pytest.mark.nodes

STREAM = 5          # embeddings with state in a row that count as a steady stream
TIMEOUT = 120.0     # [s] model loading and the first frames on a loaded machine


@launch_pytest.fixture
def sim_stack():
    """The built-in simulation stack, exactly as `ros2 launch jepa_ros sim.launch.xml` starts it."""
    path = f"{get_package_share_directory('jepa_ros')}/launch/sim.launch.xml"
    return launch.LaunchDescription([IncludeLaunchDescription(AnyLaunchDescriptionSource(path)),
                                     launch_pytest.actions.ReadyToTest()])


def _spin_until(node, context, condition, timeout: float) -> bool:
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    executor.remove_node(node)
    return condition()


@pytest.mark.launch(fixture=sim_stack)
def test_embeddings_flow_from_the_launched_sim():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("launch_check", context=context)
        got: list[Embedding] = []
        node.create_subscription(Embedding, topics.EMBEDDING, got.append, 10)

        def steady() -> bool:
            # the first embeddings may come before the sim's first state: count only those with the state
            with_state = [m for m in got if list(m.state_names) == ["x", "y", "z"]]
            return len(with_state) >= STREAM

        assert _spin_until(node, context, steady, TIMEOUT), f"{len(got)} embeddings, fewer than {STREAM} with state"
        for msg in got[-STREAM:]:
            assert msg.header.stamp.sec > 0 and len(msg.data) == msg.shape[0] * msg.shape[1]
            assert len(msg.state) == len(msg.state_names)
        # the rest of the stack is up: the planner publishes plans, the controller runs
        assert _spin_until(node, context, lambda: node.count_publishers(topics.PLAN) > 0, 30.0)
        assert _spin_until(node, context, lambda: "controller_node" in node.get_node_names(), 30.0)
    finally:
        rclpy.try_shutdown(context=context)

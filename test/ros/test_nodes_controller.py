"""Controller node over real DDS, output adapters: each controller is its own OS process.

The test process plays the robot (publishes /ee_pose or /joint_states) and the planner (publishes /jepa/plan)
and reads the commands. Timing is judged on the controller's own command stamps and message counts.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from jepa_msgs.msg import Plan
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from jepa_common import frames, topics
from jepa_ros.ros_util import OK, WARN, reliable_qos, stamp_seconds
from test.support.nodes import (CONTROLLER_STATUS, HOME_Q, Driver, NodeProcess, Robot, cleanup_all, latest_status,
                                     make_plan, moving, ros_args, set_bool, stamped_after, twist_vector,
                                     wait_for_service, wait_status, wait_until, wildcard_params)

pytestmark = pytest.mark.nodes

RATE = 20.0
PERIOD = 1.0 / RATE
JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch"]
# These tests count set-points: a scheduling gap of the test robot's 50 Hz state stream on a loaded machine must
# not cause a stale-state hold (the hold itself has its own tests in test_nodes_controller_hostile.py).
STATE_AGE = 0.5


@pytest.fixture
def driver():
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def processes():
    started: list[NodeProcess] = []
    yield started
    cleanup_all(started)


def settled(messages, start: float) -> bool:
    """Motion happened after `start` and at least 5 zero commands followed the last motion."""
    late = stamped_after(messages, start)
    moved = [i for i, m in enumerate(late) if moving(m)]
    return bool(moved) and len(late) - moved[-1] - 1 >= 5


def test_twist_output_executes_each_plan_once(driver, processes):
    twists = driver.collect(TwistStamped, topics.SERVO_TWIST, reliable_qos(100))
    diagnostics = driver.collect(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(50))
    robot = Robot(driver)
    # A long plan_timeout: this test pauses between plans (the watchdog has its own tests).
    process = NodeProcess.module("jepa_ros.nodes.controller_node", ros_args(
        "controller.yaml", rate=RATE, step_duration=0.25, plan_timeout=30.0, motion_state_age=STATE_AGE))
    processes.append(process)
    wait_for_service(driver, "/controller_node/arm", process)
    plans = driver.publisher(Plan, topics.PLAN, reliable_qos(5))
    driver.wait_for_subscribers(plans)
    assert wait_until(lambda: len(twists) >= 3, 20.0), process.output()
    assert not any(moving(m) for m in twists.messages), "a disarmed controller sends zero twists"
    level, message, _ = wait_status(diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: float(v["state_age"]) < 1.0)
    assert level == WARN and "disarmed" in message

    # A plan from before arming is not executed, and arming alone moves nothing.
    plans.publish(make_plan(driver, [[0.02, 0.0, 0.0]], sequence=100))
    response = set_bool(driver, "/controller_node/arm", True)
    assert response.success, response.message
    start = driver.now()
    assert not wait_until(lambda: any(moving(m) for m in stamped_after(twists.messages, start)), 0.3)

    names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw"]
    plan = make_plan(driver, [[0.02, -0.01, 0.0, 0.0, 0.0, 0.1], [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]], names=names,
                     units=["m"] * 3 + ["rad"] * 3, sequence=1)
    plans.publish(plan)
    assert wait_until(lambda: settled(twists.messages, start), 10.0)
    motion = [m for m in stamped_after(twists.messages, start) if moving(m)]
    # step_duration 0.25 s at 20 Hz: exactly 5 cycles, integrating to the FIRST row's displacement.
    assert len(motion) == 5
    total = sum(twist_vector(m) for m in motion) * PERIOD
    np.testing.assert_allclose(total[:3], [0.02, -0.01, 0.0], atol=1e-9)
    np.testing.assert_allclose(total[3:], [0.0, 0.0, 0.1], atol=1e-9)  # a yaw increment turns about z
    assert all(m.header.frame_id == frames.BASE for m in motion)
    stamps = [stamp_seconds(m.header.stamp) for m in twists.messages]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "every command gets a fresh, increasing stamp"

    # The same plan again (same sequence and stamp) is not executed twice.
    mark = driver.now()
    plans.publish(plan)
    # Malformed plans and plans of another action space are rejected and counted, and move nothing.
    bad = make_plan(driver, [[0.01, 0.0, 0.0]], sequence=2)
    bad.actions = bad.actions[:2]
    plans.publish(bad)
    plans.publish(make_plan(driver, [[0.01, 0.0]], names=["a0", "a1"], sequence=3))
    plans.publish(make_plan(driver, [[0.01, 0.0, 0.0]], units=["mm", "m", "m"], sequence=4))
    status = wait_status(diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: v.get("rejected_plans") == "3")
    assert status[2]["rejected_plans"] == "3", (status, process.output())
    assert "unit 'mm'" in status[2]["last_rejection"]
    assert not any(moving(m) for m in stamped_after(twists.messages, mark))
    assert status[2]["executed_plans"] == "1"

    # Workspace: at the floor of the box (z = 0.03 in config/controller.yaml) a downward command is cut, x passes.
    robot.position = [0.3, 0.0, 0.03]
    time.sleep(0.1)
    mark = driver.now()
    plans.publish(make_plan(driver, [[0.01, 0.0, -0.02]], sequence=5))
    assert wait_until(lambda: settled(twists.messages, mark), 10.0)
    motion = [twist_vector(m) for m in stamped_after(twists.messages, mark) if moving(m)]
    assert all(v[2] == 0.0 for v in motion) and sum(v[0] for v in motion) * PERIOD == pytest.approx(0.01)
    level, _, values = latest_status(diagnostics, CONTROLLER_STATUS)
    assert level in (OK, WARN) and values["armed"] == "True"
    assert process.alive()
    robot.stop()


def test_joint_outputs_follow_joint_plans(driver, processes):
    """joint_trajectory and position_commands controllers (namespaced, side by side) execute one joint plan."""
    params = wildcard_params("controller.yaml")
    trajectories = driver.collect(JointTrajectory, topics.JOINT_TRAJECTORY,
                                  reliable_qos(100))
    commands = driver.collect(Float64MultiArray, "/pc/controller_node/commands", reliable_qos(100))
    robot = Robot(driver, joints=True)
    common = dict(rate=RATE, step_duration=1.0, plan_timeout=30.0, motion_state_age=STATE_AGE)
    started = [
        NodeProcess.module("jepa_ros.nodes.controller_node", ros_args(
            params, {"__ns": "/jt", "~/joint_trajectory": topics.JOINT_TRAJECTORY},
            output="joint_trajectory", **common)),
        NodeProcess.module("jepa_ros.nodes.controller_node", ros_args(
            params, {"__ns": "/pc"}, output="position_commands", **common)),
        # A joint output whose joint limits do not match its joints refuses to start, saying why.
        NodeProcess.module("jepa_ros.nodes.controller_node", ros_args(
            "controller.yaml", output="position_commands", joint_names=["a", "b"])),
    ]
    processes.extend(started)
    wait_for_service(driver, "/jt/controller_node/arm", started[0])
    wait_for_service(driver, "/pc/controller_node/arm", started[1])
    plans = driver.publisher(Plan, topics.PLAN, reliable_qos(5))
    driver.wait_for_subscribers(plans, count=2)
    diagnostics = driver.collect(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(50))

    def has_state(ns: str) -> bool:
        arrays = [a for a in diagnostics.messages if a.status[0].hardware_id == f"/{ns}/controller_node"]
        return any(kv.key == "state_age" and float(kv.value) < 1.0 for a in arrays for kv in a.status[0].values)

    for ns in ("jt", "pc"):
        assert wait_until(lambda: has_state(ns), 20.0)
        assert set_bool(driver, f"/{ns}/controller_node/arm", True).success
    assert len(trajectories) == 0 and len(commands) == 0, (trajectories.messages, commands.messages)

    def trajectory_positions(msg):
        assert list(msg.joint_names) == JOINTS
        assert len(msg.points) == 1 and msg.points[0].time_from_start.nanosec == int(PERIOD * 1e9)
        return np.array(msg.points[0].positions)

    def sent():
        return ([trajectory_positions(m) for m in trajectories.messages],
                [np.array(m.data) for m in commands.messages])

    plans.publish(make_plan(driver, [[0.01, 0.0, 0.0]], sequence=1))  # Cartesian plan: refused by joint outputs
    order = ["elbow_pitch", "base_yaw", "shoulder_pitch"]
    plans.publish(make_plan(driver, [[0.1, 0.2, -0.05]], names=order, units=["rad"] * 3, sequence=2))
    # step_duration 1 s at 20 Hz: 20 set-points, the last exactly at the measured start + the displacement.
    assert wait_until(lambda: len(trajectories) >= 20 and len(commands) >= 20, 15.0), started[0].output()
    time.sleep(0.3)
    for points in sent():
        assert len(points) == 20
        np.testing.assert_allclose(points[-1], np.add(HOME_Q, [0.2, -0.05, 0.1]), atol=1e-9)
        steps = np.diff(np.vstack([HOME_Q, *points]), axis=0)
        assert np.all(steps[:, 0] > 0) and np.all(steps[:, 1] < 0)  # monotone progress, no jump back
        assert np.abs(steps).max() <= 1.5 * PERIOD + 1e-9            # max_joint_speed (yaml: 1.5 rad/s)

    # Disarming during a step sends one hold command at the measured position, then nothing.
    plans.publish(make_plan(driver, [[0.1, 0.2, 0.0]], names=order, units=["rad"] * 3, sequence=3))
    assert wait_until(lambda: len(trajectories) >= 23 and len(commands) >= 23, 10.0)
    for ns in ("jt", "pc"):
        assert set_bool(driver, f"/{ns}/controller_node/arm", False).success
    time.sleep(0.3)
    counts = (len(trajectories), len(commands))
    for points in sent():
        np.testing.assert_allclose(points[-1], HOME_Q)
        assert sum(np.allclose(p, HOME_Q) for p in points[20:]) == 1
    assert list(trajectories.messages[-1].points[0].velocities) == [0.0, 0.0, 0.0]
    time.sleep(0.3)
    assert (len(trajectories), len(commands)) == counts, "nothing is sent while disarmed"
    robot.stop()

    assert started[2].proc.wait(30) == 2
    assert "joint_lower has 3 values for 2 joint_names" in started[2].output()

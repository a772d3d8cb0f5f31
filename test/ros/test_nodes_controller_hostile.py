"""The controller under hostile or faulty input, over real DDS (issue 13: no single message disables a safety check).

Each test would fail on the controller before the fix (commit 1fef3f0): a pose or plan stamped in the future, a
state stream that stops while plans keep coming, decelerations beyond the acceleration limit, NaN energies, and a
continuous mode that coasted until the plan watchdog. Stops are judged on the controller's own command stamps.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from jepa_common import frames, topics
from jepa_control.arm_controller import ControllerSettings
from jepa_ros.ros_util import reliable_qos, stamp_seconds
from test.support.nodes import (CONTROLLER_STATUS, ControllerBench, FollowingRobot, Robot, make_plan, set_bool,
                                     stamped_after, twist_vector, wait_status, wait_until)

pytestmark = pytest.mark.nodes

DEFAULTS = ControllerSettings()
MOTION_STATE_AGE = DEFAULTS.motion_state_age
PERIOD = DEFAULTS.period
ACCEL_STEP = DEFAULTS.max_linear_accel * PERIOD     # the largest change of a command per period


def counts(bench: ControllerBench, key: str) -> int:
    status = bench.status()
    return int(status[2][key]) if status else 0


def wait_count(bench: ControllerBench, key: str, at_least: int) -> None:
    status = wait_status(bench.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: int(v[key]) >= at_least)
    assert status and int(status[2][key]) >= at_least, bench.report()


@pytest.fixture(scope="class")
def continuous():
    """Continuous mode with the shipped 0.1 s step; a plan watchdog far away, a short state watchdog."""
    b = ControllerBench(mode="continuous", plan_timeout=10.0, state_timeout=0.5)
    yield b
    b.close()


@pytest.fixture
def cont(continuous):
    continuous.feed(False)
    continuous.robot.start()
    set_bool(continuous.driver, ControllerBench.ARM, False)
    yield continuous
    continuous.feed(False)


class TestContinuousBench:
    """Tests sharing one continuous-mode controller (torn down before the tests that start their own)."""

    def test_one_pose_stamped_an_hour_ahead_does_not_switch_the_state_watchdog_off(self, cont):
        b = cont
        b.feed(True)
        armed = b.arm()
        assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()
        future = counts(b, "future_stamps")
        hostile = b.driver.publisher(PoseStamped, topics.EE_POSE, reliable_qos(5))
        b.driver.wait_for_subscribers(hostile)
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = b.driver.stamp(b.driver.now() + 3600.0), frames.BASE
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = b.robot.position
        hostile.publish(msg)
        wait_count(b, "future_stamps", future + 1)
        after = b.driver.now()
        assert wait_until(lambda: b.moving_after(after + 0.3), 10.0), "normal poses must still count"

        b.robot.stop()
        time.sleep(0.05)
        b.assert_stopped_after(b.robot.last_stamp + MOTION_STATE_AGE)
        status = wait_status(b.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: "state stale" in msg)
        assert "state stale" in status[1] and status[2]["armed"] == "False", b.report()
        assert float(status[2]["state_age"]) >= 0.0
        b.driver.node.destroy_publisher(hostile)


    def test_a_plan_stamped_in_the_future_is_refused_and_later_plans_still_run(self, cont):
        b = cont
        b.feed(True)                                   # 0.005 m per 0.1 s step: 0.05 m/s
        armed = b.arm()
        assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()
        rejected = counts(b, "rejected_plans")
        published = b.driver.now()
        b.plans.publish(make_plan(b.driver, [[0.05, 0.0, 0.0]], sequence=10**9, stamp=published + 1.0))
        wait_count(b, "rejected_plans", rejected + 1)
        assert "in the future" in b.status()[2]["last_rejection"]
        assert wait_until(lambda: b.moving_after(published + 0.5), 10.0), "later plans must still run"
        fastest = max(twist_vector(m)[0] for m in stamped_after(b.twists.messages, published))
        assert fastest <= 0.05 + 1e-6, "the future plan (0.5 m/s) must not run"


    def test_plans_with_nan_or_inf_energies_are_rejected_never_executed(self, cont):
        b = cont
        armed = b.arm()
        rejected = counts(b, "rejected_plans")
        b.plans.publish(make_plan(b.driver, [[0.01, 0.0, 0.0]], sequence=b.next_sequence(), energy=math.nan))
        plan = make_plan(b.driver, [[0.01, 0.0, 0.0]], sequence=b.next_sequence())
        plan.energies = np.array([math.inf], dtype=np.float32)
        b.plans.publish(plan)
        wait_count(b, "rejected_plans", rejected + 2)
        assert "Plan.energies contains NaN or Inf" in b.status()[2]["last_rejection"]
        time.sleep(0.3)
        assert not b.moving_after(armed) and b.status()[2]["armed"] == "True"


    def test_continuous_commands_end_with_the_step_of_the_last_plan(self, cont):
        b = cont
        b.feed(True)
        armed = b.arm()
        assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()
        time.sleep(0.5)
        b.feed(False)
        time.sleep(0.2)
        last_plan = max(stamp_seconds(p.header.stamp) for p in b.seen_plans.messages)
        # step 0.1 s + a ramp of one period + delivery: everything stamped 0.6 s after the last plan is zero (before
        # the fix it coasted at the last velocity until the plan watchdog, here 10 s).
        b.assert_stopped_after(last_plan + 0.6)
        assert b.status()[2]["armed"] == "True"


def test_a_stale_state_stops_motion_within_motion_state_age_and_bounds_the_excursion():
    b = ControllerBench(lambda driver: FollowingRobot(driver, [0.20, 0.0, 0.2]), plan_timeout=30.0)
    try:
        b.feed(True, row=(0.05, 0.0, 0.0))          # 0.5 m/s toward the +x face of the box (0.47)
        b.arm()
        assert wait_until(lambda: b.robot.position_at(b.driver.now())[0] > 0.30, 10.0), b.report()
        b.robot.stop()                              # the pose stream stops; the arm keeps following commands
        time.sleep(0.05)
        last_state = b.robot.last_stamp
        b.assert_stopped_after(last_state + MOTION_STATE_AGE)
        status = wait_status(b.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: "state stale" in msg)
        assert "state stale" in status[1], b.report()
        # README: worst-case excursion outside the box
        bound = min(DEFAULTS.max_axis_speed, DEFAULTS.max_linear_speed) * (
            DEFAULTS.motion_state_age + DEFAULTS.max_future_stamp + PERIOD)
        assert b.robot.position_at(b.driver.now())[0] <= DEFAULTS.workspace_max[0] + bound

        # With fresh states the box holds the arm at the face, however long the plans push.
        b.robot.start()
        b.arm()
        assert wait_until(lambda: b.robot.position_at(b.driver.now())[0] > 0.46, 10.0), b.report()
        time.sleep(1.0)
        x = b.robot.position_at(b.driver.now())[0]
        assert DEFAULTS.workspace_max[0] - 0.01 < x <= DEFAULTS.workspace_max[0] + bound, x
    finally:
        b.close()


def test_decelerations_obey_the_acceleration_limit_at_step_ends_and_at_the_box():
    # motion_state_age 0.5 s: a loaded test machine must not cause stale-state holds (immediate stops) here.
    b = ControllerBench(lambda driver: FollowingRobot(driver, [0.25, 0.0, 0.2]), plan_timeout=30.0,
                        motion_state_age=0.5)
    try:
        armed = b.arm()
        b.plans.publish(make_plan(b.driver, [[0.05, 0.0, 0.0]], sequence=b.next_sequence()))  # 0.5 m/s step
        assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()
        time.sleep(0.5)
        b.feed(True, row=(0.05, 0.0, 0.0))          # then push into the face of the box
        assert wait_until(lambda: b.robot.position_at(b.driver.now())[0] > 0.46, 10.0), b.report()
        time.sleep(1.0)
        b.feed(False)
        velocities = np.array([v for _, v in b.robot.commands])
        changes = np.abs(np.diff(velocities, axis=0))
        assert velocities[:, 0].max() == pytest.approx(0.5)
        assert changes.max() <= ACCEL_STEP * (1 + 1e-6), (changes.max(), b.report())
        assert b.robot.position_at(b.driver.now())[0] <= DEFAULTS.workspace_max[0] + 0.01
    finally:
        b.close()


def test_one_joint_state_stamped_an_hour_ahead_does_not_switch_the_state_watchdog_off():
    b = ControllerBench(lambda driver: Robot(driver, joints=True), output="position_commands", mode="continuous",
                        step_duration=1.0, plan_timeout=30.0, state_timeout=0.5)
    try:
        commands = b.driver.collect(Float64MultiArray, "/controller_node/commands", reliable_qos(100))
        b.feed(True, row=(0.01, 0.0, 0.0), names=("base_yaw", "shoulder_pitch", "elbow_pitch"),
               units=("rad",) * 3)
        b.arm()
        assert wait_until(lambda: len(commands) >= 5, 10.0), b.report()
        future = counts(b, "future_stamps")
        hostile = b.driver.publisher(JointState, topics.JOINT_STATES, reliable_qos(5))
        b.driver.wait_for_subscribers(hostile)
        msg = JointState(name=["base_yaw", "shoulder_pitch", "elbow_pitch"], position=[0.0, 0.43, 2.04])
        msg.header.stamp = b.driver.stamp(b.driver.now() + 3600.0)
        hostile.publish(msg)
        wait_count(b, "future_stamps", future + 1)
        b.robot.stop()
        # The joint outputs carry no stamps: judged on arrival, with margins far beyond both watchdogs.
        status = wait_status(b.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: "state stale" in msg)
        assert "state stale" in status[1], b.report()
        time.sleep(0.5)
        count = len(commands)
        time.sleep(0.5)
        assert len(commands) == count, "a stopped joint controller sends nothing"
    finally:
        b.close()

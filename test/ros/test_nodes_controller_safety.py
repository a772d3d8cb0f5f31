"""Controller safety over real DDS: e-stop, plan watchdog (a planner process killed and restarted), stale state.

One controller process (continuous mode with a step longer than plan_timeout: it keeps moving while plans are
fresh, so every stop is visible) serves the tests of this module; each test starts disarmed with the e-stop clear.
Stops are judged on the controller's own command stamps: no command stamped after the moment the input went stale
(or the e-stop was handled) moves.
"""
from __future__ import annotations

import time

import pytest
from std_msgs.msg import Bool

from jepa_common import topics
from jepa_ros.ros_util import ERROR, latched_qos, stamp_seconds
from test.support.nodes import (CONTROLLER_STATUS, ControllerBench, NodeProcess, moving, set_bool,
                                     stamped_after, wait_status, wait_until)

pytestmark = pytest.mark.nodes

PLAN_TIMEOUT = 0.5
STATE_TIMEOUT = 0.3
ARM, ESTOP = ControllerBench.ARM, ControllerBench.ESTOP


@pytest.fixture(scope="module")
def bench():
    b = ControllerBench(mode="continuous", step_duration=1.0, plan_timeout=PLAN_TIMEOUT,
                        state_timeout=STATE_TIMEOUT)
    yield b
    b.close()


@pytest.fixture
def fresh(bench):
    """Each test starts disarmed, e-stop clear, robot state flowing, no plans."""
    bench.feed(False)
    bench.robot.start()
    set_bool(bench.driver, ESTOP, False)
    set_bool(bench.driver, ARM, False)
    yield bench
    bench.feed(False)


def arm_until_moving(b: ControllerBench, attempts: int = 3) -> float:
    """Arm and wait until the arm moves; returns when it was armed. Re-arms after a "state stale" stop that came
    first: the robot state is published by a thread of this test process, which a loaded machine can starve for
    STATE_TIMEOUT (the state watchdog itself is test_stale_state_stops_and_blocks_arming's subject)."""
    for _ in range(attempts):
        armed = b.driver.now()
        assert set_bool(b.driver, ARM, True).success
        if wait_until(lambda: b.moving_after(armed), 10.0):
            return armed
        assert "state stale" in str(b.status()), b.report()
    raise AssertionError(f"no motion after {attempts} arms: {b.report()}")


def test_estop_stops_at_once_and_latches(fresh):
    b = fresh
    b.feed(True)
    arm_until_moving(b)

    requested = b.driver.now()
    assert set_bool(b.driver, ESTOP, True).success
    answered = b.driver.now()
    time.sleep(0.5)  # plans keep coming meanwhile
    first_stop = next(m for m in stamped_after(b.twists.messages, requested) if not moving(m))
    # The stop is sent while the request is handled (not at a later cycle) and nothing moves afterwards.
    assert stamp_seconds(first_stop.header.stamp) <= answered
    b.assert_stopped_after(stamp_seconds(first_stop.header.stamp) - 1e-9)
    response = set_bool(b.driver, ARM, True)
    assert not response.success and "e-stop" in response.message

    # A false on the latched topic does not clear it; only the service does, and clearing does not re-arm.
    topic = b.driver.publisher(Bool, topics.ESTOP, latched_qos())
    b.driver.wait_for_subscribers(topic)
    topic.publish(Bool(data=False))
    time.sleep(0.2)
    assert not set_bool(b.driver, ARM, True).success
    status = wait_status(b.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: lv == ERROR)
    assert status[0] == ERROR and "e-stop" in status[1]
    assert set_bool(b.driver, ESTOP, False).success
    cleared = b.driver.now()
    assert not wait_until(lambda: b.moving_after(cleared), 0.3)
    assert set_bool(b.driver, ARM, True).success
    assert wait_until(lambda: b.moving_after(cleared), 10.0)

    # A true on the latched topic engages it as well.
    published = b.driver.now()
    topic.publish(Bool(data=True))
    assert wait_until(lambda: any(not moving(m) for m in stamped_after(b.twists.messages, published)), 10.0)
    first_stop = next(m for m in stamped_after(b.twists.messages, published) if not moving(m))
    b.assert_stopped_after(stamp_seconds(first_stop.header.stamp) - 1e-9)
    assert not set_bool(b.driver, ARM, True).success
    b.driver.node.destroy_publisher(topic)


def test_planner_crash_stops_and_restart_needs_rearm(fresh):
    b = fresh
    planner_args = ["-m", "test.support.nodes", "planner", "--rate", "10", "--dx", "0.005"]
    planner = NodeProcess(planner_args)
    b.processes.append(planner)
    count = len(b.seen_plans)
    assert wait_until(lambda: len(b.seen_plans) >= count + 2, 30.0), planner.output()
    arm_until_moving(b)

    planner.kill()
    time.sleep(0.2)  # plans in flight arrive
    stale_at = max(stamp_seconds(p.header.stamp) for p in b.seen_plans.messages) + PLAN_TIMEOUT
    b.assert_stopped_after(stale_at)
    assert any(moving(m) for m in b.twists.messages if stale_at - 0.3 < stamp_seconds(m.header.stamp) <= stale_at)
    status = wait_status(b.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: lv == ERROR)
    assert "plan stale" in status[1] and status[2]["armed"] == "False"

    # The planner comes back: fresh plans arrive, but the arm stays still until someone re-arms.
    count = len(b.seen_plans)
    restarted = b.driver.now()
    planner = NodeProcess(planner_args)
    b.processes.append(planner)
    assert wait_until(lambda: len(b.seen_plans) >= count + 5, 30.0), planner.output()
    assert not b.moving_after(restarted)
    status = wait_status(b.diagnostics, CONTROLLER_STATUS,
                         lambda lv, msg, v: v["plan_age"] != "none" and float(v["plan_age"]) < PLAN_TIMEOUT)
    assert float(status[2]["plan_age"]) < PLAN_TIMEOUT and status[2]["armed"] == "False"
    rearmed = b.driver.now()
    assert set_bool(b.driver, ARM, True).success
    assert wait_until(lambda: b.moving_after(rearmed), 10.0)
    planner.kill()


def test_stale_state_stops_and_blocks_arming(fresh):
    b = fresh
    b.feed(True)
    arm_until_moving(b)
    b.robot.stop()
    time.sleep(0.05)
    b.assert_stopped_after(b.robot.last_stamp + STATE_TIMEOUT)
    status = wait_status(b.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: "state stale" in msg)
    assert status[0] == ERROR and "state stale" in status[1] and status[2]["armed"] == "False"
    response = set_bool(b.driver, ARM, True)
    assert not response.success and "no fresh state" in response.message
    # State back: still disarmed (plans keep coming) until re-armed.
    b.robot.start()
    back = b.driver.now()
    assert not wait_until(lambda: b.moving_after(back), 0.4)
    assert set_bool(b.driver, ARM, True).success
    assert wait_until(lambda: b.moving_after(back), 10.0)

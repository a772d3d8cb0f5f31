"""Controller safety over real DDS: e-stop, plan watchdog (a planner process killed and restarted), stale state.

One controller process (continuous mode: it keeps moving while plans are fresh, so every stop is visible) serves
the tests of this module; each test starts disarmed with the e-stop clear. Stops are judged on the controller's
own command stamps: no command stamped after the moment the input went stale (or the e-stop was handled) moves.
"""
from __future__ import annotations

import itertools
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from jepa_msgs.msg import Plan
from std_msgs.msg import Bool

from jepa_ros.ros_util import ERROR, latched_qos, reliable_qos, stamp_seconds
from test.test_nodes_support import (CONTROLLER_STATUS, Driver, NodeProcess, Robot, cleanup_all, latest_status,
                                     make_plan, moving, ros_args, set_bool, stamped_after, wait_for_service,
                                     wait_status, wait_until)

PLAN_TIMEOUT = 0.5
STATE_TIMEOUT = 0.3
ARM, ESTOP = "/controller_node/arm", "/controller_node/estop"


class Bench:
    """The controller process plus the test side: robot state, plan publisher, command and status collectors."""

    def __init__(self):
        self.driver = Driver()
        self.twists = self.driver.collect(TwistStamped, "/servo_node/delta_twist_cmds", reliable_qos(100))
        self.diagnostics = self.driver.collect(DiagnosticArray, "/diagnostics", reliable_qos(50))
        self.seen_plans = self.driver.collect(Plan, "/jepa/plan", reliable_qos(50))
        self.robot = Robot(self.driver)
        self.processes = [NodeProcess.module("jepa_ros.nodes.controller_node", ros_args(
            "controller.yaml", mode="continuous", plan_timeout=PLAN_TIMEOUT, state_timeout=STATE_TIMEOUT))]
        wait_for_service(self.driver, ARM, self.processes[0])
        self.plans = self.driver.publisher(Plan, "/jepa/plan", reliable_qos(5))
        self.driver.wait_for_subscribers(self.plans)
        # Up and receiving the robot state (arming needs it).
        assert wait_status(self.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: float(v["state_age"]) < 1.0)
        self._sequence = itertools.count(1)
        self.feeder = None

    def feed(self, on: bool) -> None:
        """Publish fresh plans [0.005, 0, 0] at 10 Hz from the test process (on) or stop (off)."""
        if on and self.feeder is None:
            self.feeder = self.driver.every(0.1, lambda: self.plans.publish(
                make_plan(self.driver, [[0.005, 0.0, 0.0]], sequence=next(self._sequence))))
        elif not on and self.feeder is not None:
            self.feeder.cancel()
            self.driver.node.destroy_timer(self.feeder)
            self.feeder = None

    def moving_after(self, t: float) -> bool:
        return any(moving(m) for m in stamped_after(self.twists.messages, t))

    def assert_stopped_after(self, t: float) -> None:
        """Commands stamped after `t` exist (wait for them) and none of them moves."""
        assert wait_until(lambda: len(stamped_after(self.twists.messages, t + 0.2)) > 0, 10.0)
        late = stamped_after(self.twists.messages, t)
        assert late and not any(moving(m) for m in late), [m.twist.linear.x for m in late]

    def report(self) -> str:
        """The controller's latest status and log, for assertion messages."""
        return f"{latest_status(self.diagnostics, CONTROLLER_STATUS)}\n{self.processes[0].output()[-3000:]}"

    def close(self) -> None:
        self.feed(False)
        cleanup_all(self.processes)
        self.driver.close()


@pytest.fixture(scope="module")
def bench():
    b = Bench()
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


def test_estop_stops_at_once_and_latches(fresh):
    b = fresh
    b.feed(True)
    armed = b.driver.now()
    assert set_bool(b.driver, ARM, True).success
    assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()

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
    topic = b.driver.publisher(Bool, "/jepa/estop", latched_qos())
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
    planner_args = ["-m", "test.test_nodes_support", "planner", "--rate", "10", "--dx", "0.005"]
    planner = NodeProcess(planner_args)
    b.processes.append(planner)
    count = len(b.seen_plans)
    assert wait_until(lambda: len(b.seen_plans) >= count + 2, 30.0), planner.output()
    armed = b.driver.now()
    assert set_bool(b.driver, ARM, True).success
    assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()

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
    armed = b.driver.now()
    assert set_bool(b.driver, ARM, True).success
    assert wait_until(lambda: b.moving_after(armed), 10.0), b.report()
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

"""MoveIt Servo start-up over real DDS: the controller against a stand-in Servo (test/support/peers/servo_peer.py) that
offers MoveIt's start-up service of each release with MoveIt's service type and, like Servo, takes twists only
after start-up. moveit_msgs is not installable here: the stand-in interface package (only
srv/ServoCommandType.srv) is built once per session by test/support/fixtures/moveit_stub.py and put on the child
processes' paths; the test process itself never imports it.
"""
from __future__ import annotations

import importlib.util

import pytest
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import String

from jepa_control.servo_startup import CALL_TIMEOUT
from jepa_ros.ros_util import WARN, reliable_qos
from test.support.fixtures.moveit_stub import build_moveit_msgs_stub, stub_env
from test.support.peers.servo_peer import EVENTS_QOS
from test.support.nodes import (CONTROLLER_STATUS, ControllerBench, NodeProcess, moving, ros_args, set_bool,
                                     wait_status, wait_until)


@pytest.fixture(scope="module")
def moveit_prefix():
    return build_moveit_msgs_stub()


@pytest.fixture
def with_moveit_msgs(moveit_prefix, monkeypatch):
    """Child processes started in this test can import the moveit_msgs stand-in."""
    for name, value in stub_env(moveit_prefix).items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("distro, call", [("humble", "start_servo"), ("jazzy", "switch_command_type 1")])
def test_startup_is_retried_until_servo_accepts_then_twists_are_accepted(distro, call, with_moveit_msgs):
    bench = ControllerBench(servo_startup=distro, servo_retry=0.3, plan_timeout=30.0)
    try:
        driver = bench.driver
        accepted = driver.collect(TwistStamped, "/servo_node/accepted_twists", reliable_qos(200))
        refused = driver.collect(TwistStamped, "/servo_node/refused_twists", reliable_qos(200))
        events = driver.collect(String, "/servo_node/events", EVENTS_QOS)

        # No Servo yet: the status says what is missing, arming is refused, and nothing is sent.
        level, message, values = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                                             lambda lv, msg, v: "not available" in v["servo_startup_error"])
        assert level == WARN and values["servo_startup"] == "waiting" and "start-up" in message, bench.report()
        response = set_bool(driver, bench.ARM, True)
        assert not response.success and "MoveIt Servo start-up" in response.message, response.message
        assert len(bench.twists) == 0, "a command went out before Servo's start-up"

        # Servo comes up and refuses the first start-up call: the controller calls again until it succeeds.
        peer = NodeProcess.module("test.support.peers.servo_peer", ["--distro", distro, "--fail-first", "1"])
        bench.processes.append(peer)
        status = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                             lambda lv, msg, v: v["servo_startup"] == "done", timeout=60.0)
        assert status and status[2]["servo_startup"] == "done", (bench.report(), peer.output())
        assert int(status[2]["servo_startup_attempts"]) >= 2
        assert wait_until(lambda: len(events) >= 2, 10.0), peer.output()
        calls = [m.data for m in events.messages]
        assert calls[0] == f"{call} success=False" and calls[-1] == f"{call} success=True", calls

        bench.arm()
        bench.feed(True)
        assert wait_until(lambda: any(moving(m) for m in accepted.messages), 15.0), (bench.report(), peer.output())
        assert not refused.messages, f"{len(refused)} twists refused by Servo:\n{peer.output()}"

        # Servo restarts (and forgets its command type): the controller disarms, starts Servo again, re-arms.
        peer.stop()
        status = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                             lambda lv, msg, v: v["servo_startup"] == "waiting" and v["armed"] == "False",
                             timeout=30.0)
        assert status and status[2]["servo_startup"] == "waiting" and status[2]["armed"] == "False", bench.report()
        assert "went away after start-up" in bench.processes[0].output()   # the controller's log says why
        restarted = NodeProcess.module("test.support.peers.servo_peer", ["--distro", distro])
        bench.processes.append(restarted)
        status = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                             lambda lv, msg, v: v["servo_startup"] == "done", timeout=60.0)
        assert status and status[2]["servo_startup"] == "done", (bench.report(), restarted.output())
        before = len(accepted)
        bench.arm()
        assert wait_until(lambda: any(moving(m) for m in accepted.messages[before:]), 15.0), bench.report()
        assert not refused.messages, f"{len(refused)} twists refused by the restarted Servo"
    finally:
        bench.close()


def test_jazzy_startup_without_moveit_msgs_is_a_clear_startup_error():
    if importlib.util.find_spec("moveit_msgs") is not None:
        pytest.skip("moveit_msgs is installed here")
    process = NodeProcess.module("jepa_ros.nodes.controller_node",
                                 ros_args("controller.yaml", servo_startup="jazzy"))
    try:
        assert process.proc.wait(60) == 2, process.output()
        assert "servo_startup=jazzy needs moveit_msgs" in process.output()
    finally:
        process.cleanup()


def test_an_unanswered_startup_call_is_given_up_and_called_again():
    bench = ControllerBench(servo_startup="humble", servo_retry=0.3)
    try:
        peer = NodeProcess.module("test.support.peers.servo_peer", ["--distro", "humble", "--stall", str(CALL_TIMEOUT + 2)])
        bench.processes.append(peer)
        status = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                             lambda lv, msg, v: "no answer" in v["servo_startup_error"], timeout=30.0)
        assert status and status[2]["servo_startup"] in ("waiting", "calling"), (bench.report(), peer.output())
        status = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                             lambda lv, msg, v: v["servo_startup"] == "done", timeout=30.0)
        assert status and int(status[2]["servo_startup_attempts"]) == 2, (bench.report(), peer.output())
        bench.arm()
    finally:
        bench.close()

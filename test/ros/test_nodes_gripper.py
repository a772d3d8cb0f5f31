"""The controller's gripper output over real DDS: each gripper rule against one hostile message.

The controller runs as its own process (twist output, gripper_output topic or action); the test side plays the arm
(/ee_pose), the gripper's measured finger joint (/joint_states) and the planner (7-D V-JEPA 2-AC plans
dx..dyaw, dgripper). Closedness in [0, 1], 1 = closed. The action form talks to a stand-in GripperCommand server
(test/support/fixtures/gripper_action_server.py) in a child process that imports the control_msgs stand-in built by
test/support/fixtures/moveit_stub.py; the test process itself never imports control_msgs.
"""
from __future__ import annotations

import importlib.util
import math
import time

import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from jepa_common import topics
from jepa_control.arm_controller import ControllerSettings
from jepa_common.gripper import finger_position
from jepa_ros.ros_util import reliable_qos
from test.support.fixtures.gripper_action_server import RECEIVED_QOS
from test.support.fixtures.moveit_stub import build_control_msgs_stub, stub_env
from test.support.nodes import (CONTROLLER_STATUS, ControllerBench, NodeProcess, make_plan, ros_args, set_bool,
                                wait_status, wait_until)

pytestmark = pytest.mark.nodes

EE7 = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
EE7_UNITS = ("m", "m", "m", "rad", "rad", "rad", "1")
FINGER = "finger_joint1"
DEFAULTS = ControllerSettings()
OPEN, CLOSED = DEFAULTS.gripper_open_position, DEFAULTS.gripper_closed_position
GRIPPER_PARAMS = {"gripper_joint": FINGER, "plan_timeout": 30.0}


class GripperBench(ControllerBench):
    """A ControllerBench whose test side also publishes the measured finger joint (closedness ``measured``) at
    50 Hz and collects the gripper commands on ``gripper_topic``."""

    def __init__(self, gripper_topic: str = topics.GRIPPER_COMMAND, measured: float = 0.0, **params):
        super().__init__(**{**GRIPPER_PARAMS, **params})
        self.measured = measured
        self.gripper = self.driver.collect(Float64, gripper_topic, reliable_qos(200))
        finger = self.driver.publisher(JointState, topics.JOINT_STATES, reliable_qos(5))
        self.finger_timer = self.driver.every(0.02, lambda: finger.publish(JointState(
            header=self._header(), name=[FINGER], position=[finger_position(self.measured, OPEN, CLOSED)])))
        assert wait_status(self.diagnostics, CONTROLLER_STATUS,
                           lambda lv, msg, v: v.get("gripper_measured") not in (None, "none")), self.report()

    def _header(self):
        from std_msgs.msg import Header
        return Header(stamp=self.driver.stamp())

    def plan7(self, dgripper: float, dx: float = 0.005):
        """Publish one fresh 7-D plan."""
        row = [dx, 0.0, 0.0, 0.0, 0.0, 0.0, dgripper]
        self.plans.publish(make_plan(self.driver, [row], names=EE7, units=EE7_UNITS,
                                     sequence=self.next_sequence()))

    def count(self, key: str) -> int:
        status = self.status()
        return int(status[2][key]) if status else 0

    def wait_count(self, key: str, at_least: int) -> None:
        status = wait_status(self.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: int(v[key]) >= at_least)
        assert status and int(status[2][key]) >= at_least, self.report()

    def values_since(self, index: int) -> list[float]:
        return [m.data for m in self.gripper.messages[index:]]


@pytest.fixture(scope="class")
def topic_bench():
    bench = GripperBench()
    yield bench
    bench.close()


@pytest.fixture
def bench(topic_bench):
    """The shared bench, disarmed with the e-stop clear and the fingers measured open."""
    b = topic_bench
    set_bool(b.driver, b.ESTOP, False)
    set_bool(b.driver, b.ARM, False)
    b.measured = 0.0
    time.sleep(0.2)
    yield b


class TestTopicBench:
    """Tests sharing one controller with gripper_output topic (torn down before the tests that start their own)."""

    def test_a_plan_while_disarmed_gives_no_gripper_command(self, bench):
        before = len(bench.gripper)
        plans = bench.count("rejected_plans") + bench.count("executed_plans")
        bench.plan7(0.5)
        time.sleep(1.0)
        assert bench.count("executed_plans") + bench.count("rejected_plans") == plans, bench.report()
        assert len(bench.gripper) == before, bench.values_since(before)


    def test_a_valid_7d_plan_while_armed_gives_a_twist_and_a_gripper_command(self, bench):
        before = len(bench.gripper)
        armed = bench.arm()
        bench.plan7(0.5)
        assert wait_until(lambda: bench.moving_after(armed), 10.0), bench.report()
        assert wait_until(lambda: 0.5 in bench.values_since(before), 10.0), (bench.values_since(before), bench.report())
        values = bench.values_since(before)
        steps = [b - a for a, b in zip([0.0] + values, values)]
        assert all(0.0 <= s <= DEFAULTS.max_gripper_speed * DEFAULTS.period + 1e-9 for s in steps), values


    @pytest.mark.parametrize("value, reason", [(math.nan, "NaN or Inf"), (3.0, "outside [-1, 1]")])
    def test_a_plan_with_a_bad_gripper_value_is_refused_whole(self, bench, value, reason):
        bench.arm()
        before, rejected = len(bench.gripper), bench.count("rejected_plans")
        after = bench.driver.now()
        bench.plan7(value, dx=0.02)
        bench.wait_count("rejected_plans", rejected + 1)
        assert reason in bench.status()[2]["last_rejection"], bench.report()
        time.sleep(0.5)
        assert len(bench.gripper) == before, bench.values_since(before)
        assert not bench.moving_after(after), "the arm part of a refused plan moved"


    def test_an_estop_while_closing_holds_and_never_opens(self, bench):
        bench.arm()
        before = len(bench.gripper)
        bench.measured = 0.1                        # the fingers lag behind the command (or squeeze an object)
        bench.plan7(1.0)                            # close: the command ramps up for about 1 s
        assert wait_until(lambda: any(v >= 0.3 for v in bench.values_since(before)), 10.0), bench.report()
        set_bool(bench.driver, bench.ESTOP, True)
        time.sleep(0.5)
        values = bench.values_since(before)
        held = values[-1]
        assert 0.3 <= held < 1.0, values
        assert all(b >= a for a, b in zip(values, values[1:])), f"the gripper command opened: {values}"
        status = wait_status(bench.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: v["estop"] == "True")
        assert status and float(status[2]["gripper_command"]) == pytest.approx(held, abs=1e-4), bench.report()
        count = len(bench.gripper)
        time.sleep(0.5)
        assert len(bench.gripper) == count, "gripper commands after the hold while e-stopped"


def test_the_dry_run_shows_gripper_commands_on_the_preview_topic():
    bench = GripperBench(gripper_topic="/controller_node/gripper_preview", dry_run=True)
    try:
        actuator = bench.driver.collect(Float64, topics.GRIPPER_COMMAND, reliable_qos(50))
        bench.arm()
        bench.plan7(0.2)
        assert wait_until(lambda: 0.2 in [m.data for m in bench.gripper.messages], 10.0), bench.report()
        assert len(actuator) == 0
    finally:
        bench.close()


@pytest.fixture(scope="module")
def control_msgs_prefix():
    return build_control_msgs_stub()


def test_the_gripper_action_reaches_a_gripper_command_server(control_msgs_prefix, monkeypatch):
    for name, value in stub_env(control_msgs_prefix).items():
        monkeypatch.setenv(name, value)   # child processes started here import the control_msgs stand-in
    server = NodeProcess.module("test.support.fixtures.gripper_action_server", [])
    bench = None
    try:
        bench = GripperBench(gripper_topic="/unused", gripper_output="action")
        bench.processes.append(server)
        received = bench.driver.collect(Float64, f"{topics.GRIPPER_ACTION}/received", RECEIVED_QOS)
        bench.arm()
        bench.plan7(0.5)
        goal = finger_position(0.5, OPEN, CLOSED)
        assert wait_until(lambda: any(abs(m.data - goal) < 1e-9 for m in received.messages), 20.0), \
            (bench.report(), server.output())
        positions = [m.data for m in received.messages]   # closing: from open (0.04 m) toward closed (0 m)
        assert all(goal - 1e-9 <= p < OPEN for p in positions), positions
    finally:
        if bench is not None:
            bench.close()
        else:
            server.cleanup()


def test_the_gripper_action_without_control_msgs_is_a_clear_startup_error():
    if importlib.util.find_spec("control_msgs") is not None:
        pytest.skip("control_msgs is installed here")
    process = NodeProcess.module("jepa_ros.nodes.controller_node",
                                 ros_args("controller.yaml", gripper_output="action"))
    try:
        assert process.proc.wait(60) == 2, process.output()
        assert "gripper_output=action needs control_msgs" in process.output()
    finally:
        process.cleanup()

"""The gripper rules without DDS (jepa_control.gripper and its use in ArmController): one test per rule.

Closedness in [0, 1], 1 = closed; a plan's dgripper is the change of it (V-JEPA 2-AC's 7-D actions).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from jepa_common.settings import SettingsError, make_settings
from jepa_control.arm_controller import ArmController, ControllerSettings, PlanInput
from jepa_common.gripper import closedness, finger_position
from jepa_control.gripper import Gripper, check_delta

pytestmark = pytest.mark.unit

DT = 0.05
EE7 = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
EE7_UNITS = ("m", "m", "m", "rad", "rad", "rad", "1")
HOME = [0.3, 0.0, 0.2]
FINGER = "finger_joint1"


def gripper(low=0.0, high=1.0, speed=1.0) -> Gripper:
    return Gripper(low, high, speed, DT, max_age=1.0)


def plan7(dgripper: float, sequence: int = 1, dx: float = 0.005) -> PlanInput:
    row = np.array([[dx, 0.0, 0.0, 0.0, 0.0, 0.0, dgripper]], dtype=np.float32)
    return PlanInput(actions=row, action_names=EE7, action_units=EE7_UNITS, energies=np.array([0.5]), energy=0.5,
                     sequence=sequence)


def controller(**overrides) -> ArmController:
    params = {"gripper_joint": FINGER, **overrides}
    return ArmController(make_settings(ControllerSettings, params))


def feed(ctl: ArmController, now: float, gripper_closedness: float | None = 0.0) -> None:
    """A fresh arm state and, unless None, a fresh measured gripper (Franka finger joint units)."""
    ctl.on_state(HOME, now, now)
    if gripper_closedness is not None and ctl.gripper is not None:
        s = ctl.settings
        position = finger_position(gripper_closedness, s.gripper_open_position, s.gripper_closed_position)
        assert ctl.on_gripper_state(["fr3_joint1", FINGER], [0.1, position], now, now)


def armed(**overrides) -> ArmController:
    ctl = controller(**overrides)
    feed(ctl, 0.0)
    assert ctl.arm(0.0)[0]
    return ctl


def run(ctl: ArmController, start: float, cycles: int, measured: float | None = 0.0) -> list:
    """Commands of ``cycles`` control periods from ``start``, fresh states each period."""
    commands = []
    for i in range(cycles):
        now = start + i * DT
        feed(ctl, now, measured)
        commands.append(ctl.cycle(now))
    return commands


# ------------------------------------------------------------------------------------------------ the rules
def test_closedness_convention_one_is_closed():
    assert closedness(0.04, 0.04, 0.0) == 0.0 and closedness(0.0, 0.04, 0.0) == 1.0
    assert finger_position(0.5, 0.04, 0.0) == pytest.approx(0.02)


def test_a_non_finite_or_out_of_range_dgripper_has_a_reason():
    for bad in (math.nan, math.inf, -math.inf):
        assert "NaN or Inf" in check_delta(bad)
    assert "outside [-1, 1]" in check_delta(1.5) and "outside [-1, 1]" in check_delta(-1.01)
    assert check_delta(1.0) == "" and check_delta(-0.3) == ""


def test_no_target_while_disarmed():
    g = gripper()
    g.measure(0.2, 0.0)
    assert g.plan(0.5, armed=False, now=0.0) == ""
    assert g.target is None and g.cycle() is None


def test_the_target_is_the_measured_closedness_plus_dgripper_clipped():
    g = gripper()
    g.measure(0.8, 0.0)
    assert g.plan(0.5, armed=True, now=0.0) == ""
    assert g.target == 1.0                      # 0.8 + 0.5 clipped to the range
    g.measure(0.4, 0.1)
    assert g.plan(-0.1, armed=True, now=0.1) == "" and g.target == pytest.approx(0.3)


def test_an_unknown_gripper_position_refuses_the_plan():
    g = gripper()
    assert "gripper position unknown" in g.plan(0.3, armed=True, now=0.0)
    g.measure(0.0, 0.0)
    assert "gripper position unknown" in g.plan(0.3, armed=True, now=5.0)   # the measurement is too old


def test_the_command_changes_by_at_most_max_speed_per_second():
    g = gripper(speed=1.0)
    g.measure(0.0, 0.0)
    g.plan(1.0, armed=True, now=0.0)
    values = [g.cycle() for _ in range(25)]
    steps = np.diff([0.0] + values)
    assert np.all(steps <= 1.0 * DT + 1e-12) and np.all(steps >= 0.0)
    assert values[0] == pytest.approx(DT) and values[-1] == 1.0   # reaches the target after 1 s, then stays


def test_commands_stay_inside_a_configured_sub_range():
    g = gripper(low=0.1, high=0.7, speed=100.0)
    g.measure(0.0, 0.0)
    g.plan(1.0, armed=True, now=0.0)
    assert g.target == 0.7 and max(g.cycle() for _ in range(5)) == 0.7
    g.plan(-1.0, armed=True, now=0.0)
    assert g.target == 0.1 and min(g.cycle() for _ in range(5)) == 0.1
    with pytest.raises(ValueError):
        Gripper(0.5, 0.5, 1.0, DT, 1.0)


def test_a_stop_holds_the_measured_position_while_opening():
    g = gripper()
    g.measure(1.0, 0.0)
    g.plan(-1.0, armed=True, now=0.0)           # opening
    for _ in range(4):
        g.cycle()                               # commanded 0.8
    g.measure(0.9, 0.2)                         # the fingers lag behind
    assert g.hold(0.2) == pytest.approx(0.9)    # where the fingers are: no further opening
    assert g.cycle() is None and g.hold(0.25) is None   # sent once; nothing until the next armed plan


def test_a_stop_while_closing_never_opens():
    g = gripper()
    g.measure(0.0, 0.0)
    g.plan(1.0, armed=True, now=0.0)            # closing
    for _ in range(10):
        g.cycle()                               # commanded 0.5
    g.measure(0.3, 0.5)                         # fingers behind, or squeezing an object
    assert g.hold(0.5) == pytest.approx(0.5)    # the last command: holding 0.3 would loosen the grip


def test_a_stop_without_a_fresh_measurement_holds_the_last_command():
    g = gripper()
    g.measure(0.0, 0.0)
    g.plan(1.0, armed=True, now=0.0)
    for _ in range(6):
        g.cycle()
    g.measure(0.9, 0.1)                         # then no measurement for longer than max_age
    assert g.hold(3.0) == pytest.approx(0.3)


# ----------------------------------------------------------------------------------- in the arm controller
def test_a_7d_plan_while_armed_gives_a_twist_and_a_gripper_command():
    ctl = armed()
    feed(ctl, 0.05)
    assert ctl.on_plan(plan7(0.5), 0.05, 0.05), ctl.last_rejection
    commands = run(ctl, 0.05, 4)
    assert commands[0].velocity[0] > 0.0 and commands[0].gripper == pytest.approx(DT)
    assert [c.gripper for c in commands] == pytest.approx([DT, 2 * DT, 3 * DT, 4 * DT])
    assert ctl.gripper.target == pytest.approx(0.5)


def test_plans_without_dgripper_give_no_gripper_command():
    ctl = armed()
    xyz = PlanInput(actions=np.array([[0.005, 0.0, 0.0]], dtype=np.float32), action_names=("dx", "dy", "dz"),
                    action_units=("m",) * 3, energies=np.array([0.5]), energy=0.5, sequence=1)
    assert ctl.on_plan(xyz, 0.0, 0.0)
    assert all(c.gripper is None for c in run(ctl, 0.0, 5))


def test_a_7d_plan_while_disarmed_gives_no_gripper_command():
    ctl = controller()
    feed(ctl, 0.0)
    assert not ctl.on_plan(plan7(0.5), 0.0, 0.0)
    assert all(c.gripper is None for c in run(ctl, 0.0, 5))
    assert ctl.gripper.target is None


@pytest.mark.parametrize("stop", ["estop", "disarm", "watchdog"])
def test_a_stop_while_closing_holds_once_and_never_opens(stop):
    ctl = armed()
    feed(ctl, 0.0)
    assert ctl.on_plan(plan7(1.0), 0.0, 0.0)
    commands = run(ctl, 0.0, 8, measured=0.2)    # commanded 0.4, the fingers measure 0.2
    assert commands[-1].gripper == pytest.approx(0.4)
    now = 0.4
    if stop == "estop":
        held = ctl.estop(True, "test", now)
    elif stop == "disarm":
        held = ctl.disarm("test", now)
    else:
        ctl.on_state(HOME, now, now)             # the plan stops coming: the plan watchdog fires
        held = ctl.cycle(now + ctl.settings.plan_timeout + 0.1)
    assert held.stop and held.gripper == pytest.approx(0.4)
    assert not ctl.armed
    after = run(ctl, 2.0, 5, measured=0.2)
    assert all(c.gripper is None for c in after)  # one hold, then nothing while disarmed
    assert ctl.gripper.commanded == pytest.approx(0.4)


def test_a_stop_while_opening_holds_the_measured_position():
    ctl = armed()
    feed(ctl, 0.0, 1.0)
    assert ctl.on_plan(plan7(-1.0), 0.0, 0.0)
    run(ctl, 0.0, 4, measured=0.95)              # commanded 0.8, fingers at 0.95
    assert ctl.estop(True, "test", 0.2).gripper == pytest.approx(0.95)


@pytest.mark.parametrize("value, reason", [(math.nan, "NaN or Inf"), (math.inf, "NaN or Inf"),
                                           (1.5, "outside [-1, 1]"), (-2.0, "outside [-1, 1]")])
def test_a_plan_with_a_bad_gripper_value_is_refused_whole(value, reason):
    ctl = armed()
    assert not ctl.on_plan(plan7(value), 0.0, 0.0)
    assert reason in ctl.last_rejection and ctl.counts["rejected_plans"] == 1
    assert ctl.step is None and ctl.gripper.target is None
    assert all(not c.velocity.any() and c.gripper is None for c in run(ctl, 0.0, 3))


def test_an_unknown_gripper_position_refuses_the_whole_plan():
    ctl = controller(gripper_joint="")
    feed(ctl, 0.0, None)
    assert ctl.arm(0.0)[0]
    assert not ctl.on_plan(plan7(0.5), 0.0, 0.0)
    assert "gripper position unknown" in ctl.last_rejection and ctl.step is None


def test_dgripper_without_a_gripper_output_and_unknown_names_are_refused():
    ctl = armed(gripper_output="none")
    assert not ctl.on_plan(plan7(0.5), 0.0, 0.0) and "gripper_output is none" in ctl.last_rejection
    ctl = armed()
    odd = PlanInput(actions=np.zeros((1, 4), np.float32), action_names=("dx", "dy", "dz", "dwrist"),
                    energies=np.array([0.5]), energy=0.5)
    assert not ctl.on_plan(odd, 0.0, 0.0) and "['dwrist']" in ctl.last_rejection
    wrong_unit = PlanInput(actions=np.zeros((1, 7), np.float32), action_names=EE7,
                           action_units=EE7_UNITS[:6] + ("m",), energies=np.array([0.5]), energy=0.5, sequence=2)
    assert not ctl.on_plan(wrong_unit, 0.0, 0.0) and "'dgripper' has unit 'm'" in ctl.last_rejection


def test_the_status_shows_the_gripper():
    ctl = armed()
    ctl.on_plan(plan7(0.5), 0.0, 0.0)
    run(ctl, 0.0, 2)
    values = ctl.status(0.1)[2]
    assert values["gripper_target"] == "0.5000" and values["gripper_command"] == "0.1000"
    assert values["gripper_measured"] == "0.0000"


def test_gripper_settings_are_checked():
    with pytest.raises(SettingsError, match="gripper_min"):
        make_settings(ControllerSettings, {"gripper_min": 0.8, "gripper_max": 0.2})
    with pytest.raises(SettingsError, match="open and closed must differ"):
        make_settings(ControllerSettings, {"gripper_open_position": 0.0})
    with pytest.raises(SettingsError, match="gripper_action"):
        make_settings(ControllerSettings, {"gripper_output": "action", "gripper_action": "gripper_cmd"})

"""jepa_control.arm_controller.ArmController without DDS: one test per rule of the controller.

A simulated arm follows the twist commands exactly (position += velocity * period) and reports its position
with a chosen delay, so that the box, the acceleration limits and the stale-state rules are checked on the
trajectory the commands produce.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from jepa_common import topics
from jepa_control.arm_controller import (ActionMappingError, ArmController, ControllerSettings, PlanInput,
                                  cartesian_displacement, joint_displacement)
from jepa_common.settings import SettingsError, make_settings

pytestmark = pytest.mark.unit

DT = 0.05            # 20 Hz, the default rate
XYZ = ("dx", "dy", "dz")
JOINTS = ("base_yaw", "shoulder_pitch", "elbow_pitch")
HOME = [0.3, 0.0, 0.2]
HOME_Q = [0.0, 0.43, 2.04]


def plan(rows, names=XYZ, units=None, sequence=1, energies=None, energy=0.5) -> PlanInput:
    """A plan as the node passes it on: float32 actions, as in jepa_msgs/Plan."""
    rows = np.asarray(rows, dtype=np.float32)
    units = ("m",) * len(names) if units is None else tuple(units)
    energies = np.full(rows.shape[0], 0.5) if energies is None else np.asarray(energies, dtype=np.float64)
    return PlanInput(actions=rows, action_names=tuple(names), action_units=units, energies=energies,
                     energy=energy, sequence=sequence)


def controller(**overrides) -> ArmController:
    messages: list[tuple[str, str]] = []
    ctl = ArmController(make_settings(ControllerSettings, overrides), log=lambda lv, msg, _: messages.append((lv, msg)))
    ctl.messages = messages
    return ctl


class Arm:
    """Follows twist commands exactly; remembers its trajectory to report delayed positions."""

    def __init__(self, position=HOME):
        self.times = [0.0]
        self.positions = [np.asarray(position, dtype=np.float64)]

    @property
    def position(self) -> np.ndarray:
        return self.positions[-1]

    def at(self, t: float) -> np.ndarray:
        """The position at time t (linear between cycles; before the start: the start)."""
        history = np.array(self.positions)
        return np.array([np.interp(t, self.times, history[:, i]) for i in range(history.shape[1])])

    def follow(self, t: float, velocity: np.ndarray) -> None:
        self.times.append(t + DT)
        self.positions.append(self.position + np.asarray(velocity[:3]) * DT)


def armed(ctl: ArmController, arm: Arm | None = None, t: float = 0.0) -> ArmController:
    ctl.on_state(arm.position if arm else HOME, t, t)
    ok, message = ctl.arm(t)
    assert ok, message
    return ctl


def drive(ctl: ArmController, arm: Arm, t0: float, seconds: float, rows=None, plan_every: float = 0.1,
          lag: float = 0.0, skew: float = 0.0, state: bool = True, sequence_start: int = 1):
    """Run cycles from t0 for `seconds`: fresh plans of `rows` every `plan_every` s (None: no plans), the arm's
    position measured `lag` s ago and stamped `skew` s late (a clock ahead), unless `state` is False.
    Returns [(t, command)] and the time after the last cycle."""
    out = []
    steps = int(round(seconds / DT))
    every = int(round(plan_every / DT))
    for k in range(steps):
        t = t0 + k * DT
        if state:
            ctl.on_state(arm.at(t - lag), t - lag + skew, t)
        if rows is not None and k % every == 0:
            ctl.on_plan(plan(rows, sequence=sequence_start + k), t, t)
        command = ctl.cycle(t)
        arm.follow(t, command.velocity)
        out.append((t, command))
    return out, t0 + steps * DT


def velocities(commands) -> np.ndarray:
    return np.array([c.velocity for _, c in commands])


# ------------------------------------------------------------------------------------------------ settings
def test_defaults_are_the_shipped_values_and_bad_settings_are_refused():
    s = ControllerSettings()
    assert (s.rate, s.mode, s.plan_timeout, s.state_timeout, s.output) == (20.0, "step", 1.5, 1.0, "twist")
    assert s.period == pytest.approx(DT) and not s.joint_space
    with pytest.raises(SettingsError, match="joint_lower has 3 values for 2 joint_names"):
        make_settings(ControllerSettings, {"output": "position_commands", "joint_names": ["a", "b"]})
    with pytest.raises(SettingsError, match="motion_state_age 2.0 s must not exceed state_timeout"):
        make_settings(ControllerSettings, {"motion_state_age": 2.0})
    with pytest.raises(SettingsError, match="needs 3 values"):
        make_settings(ControllerSettings, {"workspace_min": [0.0, 0.0]})
    with pytest.raises(SettingsError, match="mode"):
        make_settings(ControllerSettings, {"mode": "coast"})


def test_action_mapping_refuses_what_it_cannot_interpret():
    linear, rotation = cartesian_displacement(["dz", "dyaw"], ["m", "rad"], np.array([0.01, 0.1]))
    np.testing.assert_allclose(linear, [0, 0, 0.01])
    np.testing.assert_allclose(rotation, [0, 0, 0.1])
    with pytest.raises(ActionMappingError, match=r"\['a0'\] are not end-effector displacements"):
        cartesian_displacement(["dx", "a0"], [], np.zeros(2))
    with pytest.raises(ActionMappingError, match="unit 'mm'"):
        cartesian_displacement(["dx"], ["mm"], np.zeros(1))
    np.testing.assert_allclose(joint_displacement(["elbow_pitch", "base_yaw", "shoulder_pitch"], [],
                                                  np.array([3.0, 1.0, 2.0]), JOINTS), [1.0, 2.0, 3.0])
    with pytest.raises(ActionMappingError, match="joint names"):
        joint_displacement(["base_yaw"], [], np.zeros(1), JOINTS)


# ------------------------------------------------------------------------------------------- arm, e-stop
def test_starts_disarmed_and_arming_needs_a_fresh_state_and_a_clear_estop():
    ctl = controller()
    assert not ctl.armed and not ctl.cycle(0.0).velocity.any()
    ok, message = ctl.arm(0.0)
    assert not ok and "no fresh state" in message
    ctl.on_state(HOME, 10.0, 10.0)
    assert not ctl.arm(11.5)[0]                       # state older than state_timeout (1.0 s)
    ctl.estop(True, "button", 10.0)
    ok, message = ctl.arm(10.1)
    assert not ok and "e-stop engaged (button)" in message
    ctl.estop(False, "button", 10.1)
    assert ctl.arm(10.1) == (True, "armed: waiting for a new plan")
    assert ctl.status(10.1)[:2] == ("warn", "armed, waiting for a plan")


def test_arming_forgets_older_plans_and_each_plan_runs_once():
    ctl = controller()
    ctl.on_state(HOME, 0.0, 0.0)
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=1), 0.0, 0.0)      # disarmed: kept, not executed
    armed(ctl, t=0.01)
    assert not ctl.cycle(0.05).velocity.any()
    assert ctl.on_plan(plan([[0.01, 0, 0]], sequence=2), 0.06, 0.06)
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=2), 0.06, 0.07)    # the same plan again
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=3), 0.05, 0.07)    # older than the last one
    assert ctl.counts["executed_plans"] == 1 and ctl.counts["rejected_plans"] == 0


def test_arming_again_while_armed_keeps_the_step_in_progress():
    """`~/arm true` on an armed, moving controller must not cut the step (a stop past the acceleration limit)."""
    arm = Arm([0.30, 0.0, 0.2])
    ctl = armed(controller(plan_timeout=10.0), arm)
    moving, t = drive(ctl, arm, 0.0, 0.1, rows=[[0.04, 0, 0]], plan_every=1.0)
    before = velocities(moving)[-1]
    assert before[0] > 0.1
    assert ctl.arm(t) == (True, "already armed")
    after, _ = drive(ctl, arm, t, 0.05)
    assert velocities(after)[0][0] >= before[0] - 5.0 * DT * (1 + 1e-6)    # within the accel limit, not zero


def test_estop_stops_at_once_latches_and_only_the_service_clears_it():
    arm = Arm()
    ctl = armed(controller(mode="continuous", step_duration=1.0), arm)
    ctl.on_plan(plan([[0.2, 0, 0]]), 0.0, 0.0)
    drive(ctl, arm, 0.0, 0.3)
    assert ctl.velocity[0] > 0
    stop = ctl.estop_topic(True, topics.ESTOP, 0.3)
    assert stop.stop and not stop.velocity.any() and not ctl.armed        # sent now, not at the next cycle
    assert ctl.estop_topic(False, topics.ESTOP, 0.31) is None and ctl.estop_state.engaged
    assert not ctl.arm(0.31)[0]
    assert ctl.status(0.31)[0] == "error"
    ctl.estop(False, "~/estop", 0.32)
    assert not ctl.armed and ctl.arm(0.32)[0]                            # clearing does not re-arm


# ----------------------------------------------------------------------------------------- step execution
def test_step_mode_integrates_exactly_to_the_first_action_and_then_stops():
    arm = Arm()
    ctl = armed(controller(step_duration=0.25), arm)
    names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw")
    ctl.on_plan(plan([[0.02, -0.01, 0.0, 0.0, 0.0, 0.1], [0.5, 0.5, 0.5, 0, 0, 0]], names=names,
                     units=("m",) * 3 + ("rad",) * 3), 0.0, 0.0)
    commands, _ = drive(ctl, arm, 0.0, 1.0)
    v = velocities(commands)
    moving = np.flatnonzero(np.abs(v).sum(axis=1) > 0)
    np.testing.assert_array_equal(moving, np.arange(5))                    # 0.25 s at 20 Hz: five cycles
    np.testing.assert_allclose(v.sum(axis=0) * DT, [0.02, -0.01, 0.0, 0.0, 0.0, 0.1], atol=1e-8)


def test_a_step_that_needs_ramps_brakes_in_time_and_never_overshoots_its_displacement():
    arm = Arm()
    ctl = armed(controller(), arm)   # 0.05 m in 0.1 s = 0.5 m/s, reached at 5 m/s^2 only after 2 cycles
    ctl.on_plan(plan([[0.05, 0, 0]]), 0.0, 0.0)
    commands, _ = drive(ctl, arm, 0.0, 0.5)
    vx = velocities(commands)[:, 0]
    np.testing.assert_allclose(vx[:4], [0.25, 0.5, 0.25, 0.0])
    assert np.abs(np.diff(np.concatenate([[0.0], vx]))).max() <= 5.0 * DT * (1 + 1e-6)
    assert arm.position[0] - HOME[0] == pytest.approx(0.05)


def test_continuous_mode_holds_a_plans_velocity_only_for_its_step_then_ramps_down():
    arm = Arm([0.15, 0.0, 0.2])
    ctl = armed(controller(mode="continuous", step_duration=0.1, plan_timeout=10.0), arm)
    commands, t = drive(ctl, arm, 0.0, 0.5, rows=[[0.04, 0, 0]])          # 0.4 m/s, plans every 0.1 s
    assert velocities(commands)[-6:, 0] == pytest.approx([0.4] * 6)        # smooth across plans
    after, _ = drive(ctl, arm, t, 1.0)                                     # plans stop
    vx = velocities(after)[:, 0]
    # the last plan came at t - 0.1 s: its velocity lasted its step (two cycles), then it ramps down at 5 m/s^2
    np.testing.assert_allclose(vx[:3], [0.15, 0.0, 0.0])
    assert ctl.armed and not vx[1:].any()


def test_decelerations_obey_the_acceleration_limit_at_step_ends_box_faces_and_reversals():
    arm = Arm([0.30, 0.0, 0.2])
    ctl = armed(controller(plan_timeout=10.0), arm)
    rows = iter([[[0.05, 0, 0]]] * 3 + [[[-0.05, 0, 0]]] * 2 + [[[0.05, 0.02, 0]]] * 10)
    commands = []
    t = 0.0
    for k, row in enumerate(rows):
        segment, t = drive(ctl, arm, t, 0.2, rows=row, plan_every=0.2, sequence_start=10 * k)
        commands += segment
    tail, _ = drive(ctl, arm, t, 0.5)
    v = velocities(commands + tail)
    steps = np.abs(np.diff(np.vstack([np.zeros(6), v]), axis=0))
    assert steps[:, :3].max() <= 5.0 * DT * (1 + 1e-6), steps.max(axis=0)
    assert v[:, 0].max() == pytest.approx(0.5) and v[:, 0].min() < 0       # it did speed up and reverse
    positions = np.array(arm.positions)
    assert positions[:, 0].max() <= 0.47 + 1e-9                            # braked onto the face, not through
    assert positions[-1, 0] == pytest.approx(0.47, abs=1e-3) and not v[-1].any()


def test_the_box_last_resort_and_the_stops_are_the_only_immediate_decelerations():
    arm = Arm([0.30, 0.0, 0.2])
    ctl = armed(controller(mode="continuous", step_duration=1.0), arm)
    ctl.on_plan(plan([[0.5, 0, 0]]), 0.0, 0.0)
    drive(ctl, arm, 0.0, 0.1)
    assert ctl.velocity[0] == pytest.approx(0.5)
    ctl.on_state([0.47, 0.0, 0.2], 0.1, 0.1)        # the arm is measured on the face: no room to brake
    assert ctl.cycle(0.1).velocity[0] == 0.0
    assert not ctl.disarm("test", 0.15).velocity.any()


# ---------------------------------------------------------------------------------------------- rejections
@pytest.mark.parametrize("bad, field", [
    (dict(rows=[[math.nan, 0, 0]]), "actions"),
    (dict(rows=[[0.01, 0, 0]], energies=[math.inf]), "energies"),
    (dict(rows=[[0.01, 0, 0]], energy=math.nan), "energy"),
])
def test_plans_with_nan_or_inf_anywhere_are_rejected_and_counted(bad, field):
    arm = Arm()
    ctl = armed(controller(), arm)
    assert not ctl.on_plan(plan(**bad), 0.0, 0.0)
    assert ctl.counts["rejected_plans"] == 1 and f"Plan.{field} contains NaN or Inf" in ctl.last_rejection
    commands, _ = drive(ctl, arm, 0.0, 0.3)
    assert not velocities(commands).any() and ctl.counts["executed_plans"] == 0


def test_plans_of_another_action_space_or_unit_are_rejected():
    ctl = armed(controller())
    assert not ctl.on_plan(plan([[0.01, 0.0]], names=("a0", "a1")), 0.0, 0.0)
    assert not ctl.on_plan(plan([[0.01, 0, 0]], units=("mm", "m", "m")), 0.0, 0.0)
    assert ctl.counts["rejected_plans"] == 2 and "unit 'mm'" in ctl.last_rejection


# ------------------------------------------------------------------------------------------------- time
def test_a_plan_stamped_in_the_future_is_refused_and_cannot_hold_the_plan_watchdog():
    arm = Arm()
    ctl = armed(controller(plan_timeout=0.5), arm)
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=1), 3600.0, 0.0)
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=2), 0.2, 0.0)      # beyond max_future_stamp 0.1 s
    assert ctl.counts["future_stamps"] == 2 and "in the future" in ctl.last_rejection
    # within the tolerance it counts as received now, and later (older-stamped) plans still run
    assert ctl.on_plan(plan([[0.01, 0, 0]], sequence=3), 0.09, 0.0)
    assert ctl.on_plan(plan([[0.01, 0, 0]], sequence=4), 0.095, 0.04)
    drive(ctl, arm, 0.0, 0.5)
    assert ctl.armed
    drive(ctl, arm, 0.5, 0.1)
    assert not ctl.armed and "plan stale" in ctl.fault                       # 0.5 s after its receipt


def test_one_state_stamped_an_hour_ahead_does_not_switch_the_state_watchdog_off():
    arm = Arm()
    ctl = armed(controller(mode="continuous", step_duration=1.0, plan_timeout=10.0), arm)
    assert not ctl.on_state(HOME, 3600.0, 0.0)
    assert ctl.counts["future_stamps"] == 1 and ctl.counts["ignored_state"] == 1
    commands, t = drive(ctl, arm, 0.0, 0.5, rows=[[0.01, 0, 0]])
    assert velocities(commands)[-1, 0] > 0                                  # normal states keep it going
    # one state stamped a little ahead (within max_future_stamp) counts at its receipt, not at its stamp
    ctl.on_state(arm.position, t + 0.09, t)
    assert ctl.state_age(t) == 0.0
    last_state = t
    commands, _ = drive(ctl, arm, t, 1.5, rows=[[0.01, 0, 0]], state=False)
    moving = [tc for tc, c in commands if c.velocity.any()]
    assert max(moving) <= last_state + 0.1 + 1e-9                          # motion_state_age
    assert not ctl.armed and "state stale" in ctl.fault


def test_the_latest_state_counts_not_the_newest_stamp_ever_seen():
    ctl = controller()
    ctl.on_state(HOME, 10.0, 10.0)
    ctl.on_state(HOME, 9.0, 10.0)          # a late message (another publisher): the state is now 1 s old
    assert ctl.state_age(10.0) == pytest.approx(1.0)
    assert not ctl.on_state([math.nan, 0, 0], 10.0, 10.0) and ctl.counts["ignored_state"] == 1
    assert not ctl.on_joint_state(["a"], [0.0], 10.0, 10.0)


# ------------------------------------------------------------------------------------------ stale state
def test_no_motion_while_the_state_is_older_than_motion_state_age():
    arm = Arm()
    ctl = armed(controller(mode="continuous", step_duration=1.0, plan_timeout=10.0), arm)
    commands, t = drive(ctl, arm, 0.0, 0.2, rows=[[0.5, 0, 0]])            # 0.5 m/s
    assert ctl.velocity[0] == pytest.approx(0.5)
    held, t = drive(ctl, arm, t, 0.3, rows=[[0.5, 0, 0]], lag=0.15)        # states arrive 0.15 s old
    assert all(c.stop and not c.velocity.any() for _, c in held)          # an immediate stop
    assert ctl.armed and ctl.counts["stale_state_holds"] == 1
    assert ctl.status(t)[1].startswith("armed, holding")
    resumed, _ = drive(ctl, arm, t, 0.1, rows=[[0.5, 0, 0]])
    assert velocities(resumed)[:, 0][0] == pytest.approx(0.25)             # ramps up again from zero


def test_worst_case_excursion_outside_the_box_is_bounded_by_the_readme_formula():
    """E = min(max_axis_speed, max_linear_speed) * (motion_state_age + max_future_stamp + 1/rate) per axis."""
    s = ControllerSettings()
    bound = min(s.max_axis_speed, s.max_linear_speed) * (s.motion_state_age + s.max_future_stamp + s.period)
    worst = 0.0
    for age in (0.0, 0.05, 0.0999):                  # the age the controller sees, up to motion_state_age
        for skew in (0.0, 0.0999):                   # a state clock ahead, up to max_future_stamp
            arm = Arm([0.20, 0.0, 0.2])
            ctl = armed(controller(mode="continuous", step_duration=1.0, plan_timeout=10.0), arm)
            drive(ctl, arm, 0.0, 2.0, rows=[[0.5, 0, 0]], lag=age + skew, skew=skew)
            assert ctl.counts["stale_state_holds"] == 0
            worst = max(worst, np.array(arm.positions)[:, 0].max() - s.workspace_max[0])
    assert 0.5 * bound < worst <= bound, (worst, bound)


# ----------------------------------------------------------------------------------------- watchdogs
def test_watchdogs_stop_and_disarm_and_a_returning_input_needs_rearming():
    arm = Arm()
    ctl = armed(controller(mode="continuous", step_duration=1.0, plan_timeout=0.5), arm)
    ctl.on_plan(plan([[0.2, 0, 0]]), 0.0, 0.0)
    commands, t = drive(ctl, arm, 0.0, 1.0)                                 # no new plan after t = 0
    stops = [tc for tc, c in commands if tc > 0.5]
    assert stops and all(not c.velocity.any() for tc, c in commands if tc > 0.5)
    assert not ctl.armed and ctl.status(t)[:2] == ("error", ctl.fault + "; re-arm to resume")
    commands, t = drive(ctl, arm, t, 0.5, rows=[[0.2, 0, 0]])               # the planner is back
    assert not velocities(commands).any()
    assert ctl.arm(t)[0]


# ------------------------------------------------------------------------------------------- joint outputs
def test_joint_outputs_send_set_points_one_hold_on_a_stop_and_nothing_while_stopped():
    ctl = controller(output="position_commands", step_duration=1.0, plan_timeout=30.0)
    assert ctl.cycle(0.0).positions is None
    ctl.on_joint_state(["gripper", "elbow_pitch", "base_yaw", "shoulder_pitch"], [0.7, 2.04, 0.0, 0.43], 0.0, 0.0)
    assert ctl.arm(0.0)[0]
    order = ("elbow_pitch", "base_yaw", "shoulder_pitch")
    assert not ctl.on_plan(plan([[0.01, 0, 0]]), 0.0, 0.0)                 # Cartesian plan refused
    assert ctl.on_plan(plan([[0.1, 0.2, -0.05]], names=order, units=("rad",) * 3, sequence=2), 0.0, 0.0)
    points = []
    for k in range(30):
        ctl.on_joint_state(list(JOINTS), HOME_Q, k * DT, k * DT)
        command = ctl.cycle(k * DT)
        if command.positions is not None:
            points.append(command.positions)
    assert len(points) == 20                                               # no hold at the end of the step
    np.testing.assert_allclose(points[-1], np.add(HOME_Q, [0.2, -0.05, 0.1]), atol=1e-8)
    ctl.on_plan(plan([[0.1, 0.2, 0.0]], names=order, units=("rad",) * 3, sequence=3), 1.5, 1.5)
    assert ctl.cycle(1.5).positions is not None
    hold = ctl.disarm("test", 1.55)
    assert hold.stop and np.allclose(hold.positions, HOME_Q)               # the measured position
    assert ctl.cycle(1.6).positions is None and ctl.disarm("again", 1.6).positions is None


def test_the_push_controller_file_keeps_every_plan_rule_with_its_3_s_plan_timeout():
    """config/controller.yaml + controller_push.yaml, as launch/sim_push.launch.xml layers them: one plan stamped
    an hour ahead and one older than the 3 s timeout are refused, and a plan stream that stops still disarms."""
    import yaml

    config = Path(__file__).resolve().parents[2] / "config"
    values: dict = {}
    for name in ("controller.yaml", "controller_push.yaml"):
        values.update(yaml.safe_load((config / name).read_text())["controller_node"]["ros__parameters"] or {})
    arm = Arm()
    ctl = armed(controller(**values), arm)
    assert ctl.settings.plan_timeout == 3.0 and ctl.settings.mode == "step"
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=1), 3600.0, 0.0)
    assert not ctl.on_plan(plan([[0.01, 0, 0]], sequence=2), 0.0, 3.01)
    assert "3.010 s old" in ctl.last_rejection and ctl.armed
    assert ctl.on_plan(plan([[0.01, 0, 0]], sequence=3), 3.0, 3.05)
    drive(ctl, arm, 3.05, 2.9)
    assert ctl.armed                                                         # 2.95 s after its camera frame
    drive(ctl, arm, 5.95, 0.2)
    assert not ctl.armed and "plan stale" in ctl.fault


def test_a_joint_state_whose_names_and_positions_differ_in_length_is_refused_and_counted():
    """sensor_msgs/JointState: name and position have the same length; 4 names with 3 positions is malformed even
    when the controller's joints are among the first three."""
    ctl = controller(output="position_commands")
    names = ["elbow_pitch", "base_yaw", "shoulder_pitch", "gripper"]
    assert not ctl.on_joint_state(names, [2.04, 0.0, 0.43], 0.0, 0.0)
    assert ctl.counts["ignored_state"] == 1 and ctl.state_age(0.0) == math.inf
    assert ctl.on_joint_state(names, [2.04, 0.0, 0.43, 0.7], 0.0, 0.0)

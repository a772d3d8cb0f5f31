"""The real-arm rules without DDS: MoveIt Servo start-up bookkeeping (jepa_control.servo_startup), the base-frame
check, the arming block and the dry-run settings of jepa_control.arm_controller."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_common import frames
from jepa_control.arm_controller import ArmController, ControllerSettings, PlanInput
from jepa_control.servo_startup import CALL_TIMEOUT, ServoStartup, StartupCall, startup_call
from jepa_common.settings import SettingsError, make_settings

pytestmark = pytest.mark.unit

HOME = [0.3, 0.0, 0.2]


def jazzy(retry: float = 1.0, dry_run: bool = False) -> ServoStartup:
    return ServoStartup(startup_call("jazzy", "/servo_node"), retry, dry_run)


def test_each_distro_names_moveits_service_and_type():
    assert startup_call("humble", "/arm/servo_node") == StartupCall("/arm/servo_node/start_servo",
                                                                    "std_srvs/srv/Trigger")
    assert startup_call("jazzy", "/servo_node") == StartupCall("/servo_node/switch_command_type",
                                                               "moveit_msgs/srv/ServoCommandType")
    assert startup_call("none", "/servo_node") is None
    with pytest.raises(ValueError, match="servo_startup='iron'"):
        startup_call("iron", "/servo_node")


def test_nothing_to_start_or_a_dry_run_is_ready_at_once():
    assert ServoStartup(None, 1.0).ready and ServoStartup(None, 1.0).blocker() == ""
    skipped = jazzy(dry_run=True)
    assert skipped.ready and skipped.state == "skipped (dry run)" and not skipped.due(0.0)


def test_startup_blocks_until_a_call_succeeds_and_retries_after_each_failure():
    startup = jazzy(retry=0.5)
    assert not startup.ready and startup.due(0.0)
    startup.unavailable(0.0)
    assert "not available" in startup.blocker() and not startup.due(0.4) and startup.due(0.5)
    startup.attempt(0.5)
    assert not startup.due(0.6) and not startup.ready            # one call at a time
    startup.result(False, "", 0.6)
    assert "answered failure" in startup.blocker() and not startup.due(1.0) and startup.due(1.1)
    startup.attempt(1.1)
    startup.result(True, "", 1.2)
    assert startup.ready and startup.blocker() == "" and startup.attempts == 2 and not startup.due(10.0)
    # Servo goes away (and forgets its command type): start again
    assert startup.lost(11.0) and not startup.ready and startup.due(11.0) and "went away" in startup.blocker()
    assert not startup.lost(11.1)


def test_an_unanswered_call_is_given_up():
    startup = jazzy()
    startup.attempt(0.0)
    assert not startup.timed_out(CALL_TIMEOUT) and startup.timed_out(CALL_TIMEOUT + 0.01)
    startup.give_up(CALL_TIMEOUT + 0.01)
    assert "no answer" in startup.blocker() and startup.due(CALL_TIMEOUT + 1.01) and not startup.ready


def test_status_warns_while_waiting_and_keeps_errors():
    startup = jazzy()
    level, message, values = startup.status("warn", "disarmed", {"armed": False})
    assert level == "warn" and "MoveIt Servo start-up" in message and values["servo_startup"] == "waiting"
    assert startup.status("error", "e-stop engaged", {})[:2] == ("error", "e-stop engaged")
    startup.attempt(0.0)
    startup.result(True, "", 0.1)
    assert startup.status("ok", "armed, executing", {})[:2] == ("ok", "armed, executing")


def controller(**overrides) -> ArmController:
    return ArmController(make_settings(ControllerSettings, overrides))


def test_arming_is_refused_while_something_blocks_the_actuator():
    ctl = controller()
    ctl.on_state(HOME, 0.0, 0.0)
    assert ctl.arm(0.0, "MoveIt Servo start-up not done") == (False, "MoveIt Servo start-up not done")
    assert not ctl.armed and ctl.arm(0.0)[0]


def test_a_pose_in_another_frame_is_refused_and_stops_an_armed_arm():
    ctl = controller()
    assert ctl.on_pose(HOME, frames.BASE, 0.0, 0.0) is None and ctl.arm(0.0)[0]
    ctl.on_plan(PlanInput(actions=np.array([[0.02, 0.0, 0.0]]), action_names=("dx", "dy", "dz")), 0.0, 0.0)
    assert ctl.cycle(0.0).velocity.any()
    stop = ctl.on_pose([0.9, 0.9, 0.9], "world", 0.01, 0.01)
    assert stop is not None and stop.stop and not stop.velocity.any() and not ctl.armed
    assert ctl.counts["wrong_frame"] == 1 and "'world'" in ctl.last_rejection
    level, message, _ = ctl.status(0.02)
    assert level == "error" and message.startswith("wrong frame")
    assert not ctl.cycle(0.05).velocity.any()
    # the refused pose was not taken as the state: the last good one still is
    assert ctl.state_age(0.05) == pytest.approx(0.05)
    # disarmed: refused and counted, nothing to stop
    assert ctl.on_pose(HOME, "", 0.06, 0.06) is None and ctl.counts["wrong_frame"] == 2


def test_dry_run_says_so_in_the_status():
    level, message, values = controller(dry_run=True).status(0.0)
    assert message.startswith("DRY RUN") and values["dry_run"] is True


@pytest.mark.parametrize("overrides, match", [
    ({"servo_startup": "humble", "output": "joint_trajectory"}, "needs output twist"),
    ({"servo_node": "servo_node"}, "fully qualified"),
    ({"servo_node": "/servo_node/"}, "fully qualified"),
    ({"frame_id": ""}, "frame_id is empty"),
])
def test_inconsistent_arm_settings_are_refused(overrides, match):
    with pytest.raises(SettingsError, match=match):
        make_settings(ControllerSettings, overrides)


def test_arming_with_only_wrong_frame_poses_says_why_the_state_is_missing():
    ctl = controller()
    ctl.on_pose(HOME, "world", 0.0, 0.0)
    ok, message = ctl.arm(0.0)
    assert not ok and "no fresh state" in message and "'world'" in message

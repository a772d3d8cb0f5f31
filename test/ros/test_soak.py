"""`jepa soak`: the command checker on hand-made command streams (no DDS), and a short soak of the real stack."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from jepa_control.command_audit import Command, Gate, Limits, Pose, check_commands, controller_limits, stop_intervals
from jepa_ros.soak.chaos import Incarnation, memory_report
from jepa_ros.soak.hostile import HOSTILE_KINDS, HOSTILE_TOPICS, hostile_message, png_bomb

LIMITS = Limits(dt=0.05, plan_timeout=1.5, state_timeout=1.0, max_axis_speed=0.5, max_linear_speed=0.5,
                max_angular_speed=1.0, max_linear_accel=5.0, max_angular_accel=8.0,
                box_low=(0.13, -0.22, 0.03), box_high=(0.47, 0.22, 0.32), motion_state_age=0.1)
ARMED = [Gate(0.0, True, "armed", settled=0.01)]


def poses(start=(0.3, 0.0, 0.2), until=3.0, velocity=(0.0, 0.0, 0.0)):
    """Genuine poses at 50 Hz moving at a constant velocity."""
    return [Pose(t, tuple(np.asarray(start) + t * np.asarray(velocity))) for t in np.arange(0.0, until, 0.02)]


def plans(until=3.0):
    """A plan every 0.3 s."""
    return list(np.arange(0.0, until, 0.3))


def ramp(peak=0.2, t0=1.0, cycles=8):
    """x-velocity commands every control period: zero, up to `peak` and back down within the accel limit."""
    step = LIMITS.max_linear_accel * LIMITS.dt  # 0.25 m/s per period
    speeds = [0.0] * 4 + [min(peak, step * (i + 1)) for i in range(cycles)]
    speeds += [max(0.0, speeds[-1] - step * (i + 1)) for i in range(4)] + [0.0] * 4
    return [Command(t0 + i * LIMITS.dt, (v, 0.0, 0.0)) for i, v in enumerate(speeds)]


def kinds(violations):
    return sorted({v.kind for v in violations})


def test_a_clean_sequence_has_no_violation():
    assert check_commands(ramp(), poses(), plans(), ARMED, LIMITS) == []


def test_speed_limits_per_axis_and_norm():
    commands = ramp()
    commands[6] = Command(commands[6].t, (0.2, 0.0, 0.0), (0.0, 0.0, 1.5))  # angular norm 1.5 > 1.0
    norm = 0.45  # each axis under 0.5, the norm 0.78 over it
    commands += [Command(commands[-1].t + LIMITS.dt * (i + 1), (v, v, v)) for i, v in
                 enumerate((0.2, norm, norm, 0.2, 0.0))]
    violations = check_commands(commands, poses(), plans(), ARMED, LIMITS)
    assert kinds(violations) == ["accel", "speed"]
    assert {round(v.t, 3) for v in violations if v.kind == "speed"} == {
        round(commands[6].t, 3), round(commands[-4].t, 3), round(commands[-3].t, 3)}


def test_an_acceleration_jump_is_detected_but_an_immediate_stop_after_an_estop_is_not():
    jump = [Command(1.0, (0.0, 0.0, 0.0)), Command(1.05, (0.4, 0.0, 0.0)), Command(1.1, (0.4, 0.0, 0.0))]
    violations = check_commands(jump, poses(), plans(), ARMED, LIMITS)
    assert [(v.kind, round(v.t, 2)) for v in violations] == [("accel", 1.05)]
    # a step that ends with an abrupt stop (no e-stop, fresh inputs): the deceleration breaks the limit
    fast = ramp(peak=0.4)
    assert check_commands(fast, poses(), plans(), ARMED, LIMITS) == []
    abrupt = fast[:10] + [Command(fast[9].t + LIMITS.dt, (0.0, 0.0, 0.0))]
    assert kinds(check_commands(abrupt, poses(), plans(), ARMED, LIMITS)) == ["accel"]
    # the same stop right after an e-stop is immediate by design
    estop = ARMED + [Gate(abrupt[-1].t - 0.01, False, "e-stop by /jepa/estop")]
    assert check_commands(abrupt, poses(), plans(), estop, LIMITS) == []


def test_the_documented_immediate_stops_are_not_acceleration_violations():
    fast = ramp(peak=0.4)[:10]
    stop_t = fast[-1].t + LIMITS.dt
    abrupt = fast + [Command(stop_t, (0.0, 0.0, 0.0))]
    # stale-state hold: the pose stream paused for more than motion_state_age before the stop
    gap = [q for q in poses() if not stop_t - 0.15 < q.t <= stop_t]
    assert check_commands(abrupt, gap, plans(), ARMED, LIMITS) == []
    # the box's last resort: the arm is closer to the face ahead than braking needs
    at_face = [Pose(q.t, (0.465, 0.0, 0.2)) for q in poses()]
    assert "accel" not in kinds(check_commands(abrupt, at_face, plans(), ARMED, LIMITS))


def test_a_command_leaving_the_box_is_detected_and_one_moving_back_is_not():
    near_face = poses(start=(0.465, 0.0, 0.2))
    out = [Command(1.0 + i * LIMITS.dt, (v, 0.0, 0.0)) for i, v in enumerate((0.0, 0.25, 0.5, 0.5))]
    violations = check_commands(out, near_face, plans(), ARMED, LIMITS)
    assert kinds(violations) == ["box"]
    assert all(v.t >= 1.05 for v in violations)
    outside = poses(start=(0.50, 0.0, 0.2))  # already outside (+ tolerance): only motion back inside is allowed
    back = [Command(1.0 + i * LIMITS.dt, (v, 0.0, 0.0)) for i, v in enumerate((0.0, -0.1, -0.1, 0.0))]
    assert kinds(check_commands(back, outside, plans(), ARMED, LIMITS)) == ["outside_box"]
    further = [Command(1.0 + i * LIMITS.dt, (v, 0.0, 0.0)) for i, v in enumerate((0.0, 0.1, 0.1, 0.0))]
    assert kinds(check_commands(further, outside, plans(), ARMED, LIMITS)) == ["box", "outside_box"]


def test_motion_while_estopped_or_disarmed_is_detected():
    commands = ramp(t0=1.0)
    gates = ARMED + [Gate(0.8, False, "e-stop by ~/estop")]
    violations = check_commands(commands, poses(), plans(), gates, LIMITS)
    assert kinds(violations) == ["stopped"]
    assert "e-stop by ~/estop" in violations[0].detail
    # cleared and re-armed before the motion: fine
    rearmed = gates + [Gate(0.9, True, "armed", settled=0.92)]
    assert check_commands(commands, poses(), plans(), rearmed, LIMITS) == []
    # never armed at all
    assert kinds(check_commands(commands, poses(), plans(), [], LIMITS)) == ["stopped"]
    # a disarm the controller reports itself counts, unless an arm request was in flight
    reported = ARMED + [Gate(0.95, False, "controller reports: disarmed", from_diagnostics=True)]
    assert kinds(check_commands(commands, poses(), plans(), reported, LIMITS)) == ["stopped"]
    in_flight = [Gate(0.94, True, "armed", settled=0.96)] + reported[1:]
    assert check_commands(commands, poses(), plans(), in_flight, LIMITS) == []


def test_motion_with_stale_state_or_plan_is_detected():
    commands = ramp(t0=2.5)
    stale_state = check_commands(commands, poses(until=1.0), plans(until=3.0), ARMED, LIMITS)
    assert "state_stale" in kinds(stale_state)
    stale_plan = check_commands(commands, poses(until=3.5), plans(until=0.5), ARMED, LIMITS)
    assert kinds(stale_plan) == ["plan_stale"]


def test_stop_intervals_start_disarmed_and_follow_the_gates():
    gates = [Gate(1.0, True, "armed", settled=1.01), Gate(2.0, False, "e-stop"), Gate(3.0, True, "armed")]
    assert stop_intervals(gates, margin=0.1, dt=0.05) == [
        (-np.inf, 1.0, "not armed yet"), (2.1, 3.0, "e-stop")]
    # a stop answered by an arm within the margin, and a reported disarm just before an arm, stop nothing later
    quick = [Gate(1.0, True, "armed"), Gate(2.0, False, "disarm"), Gate(2.05, True, "armed", settled=2.06),
             Gate(2.9, False, "controller reports: disarmed", from_diagnostics=True), Gate(3.0, True, "armed")]
    assert stop_intervals(quick, margin=0.1, dt=0.05) == [
        (-np.inf, 1.0, "not armed yet"), (2.9, 3.0, "controller reports: disarmed")]


def test_memory_growth_is_measured_after_the_warmup_of_each_process():
    first = Incarnation("planner_node", 10, started=0.0, samples=[(5.0, 500_000), (30.0, 100_000),
                                                                   (100.0, 110_000)])
    second = Incarnation("planner_node", 11, started=100.0, samples=[(130.0, 100_000), (140.0, 100_000)])
    young = Incarnation("sim_node", 12, started=0.0, samples=[(1.0, 100_000)])
    report = memory_report([first, second, young], warmup=20.0)
    assert report["planner_node"]["processes"] == 2
    assert report["planner_node"]["growth_pct"] == pytest.approx(10.0)
    assert report["planner_node"]["pid"] == 10
    assert report["sim_node"]["growth_pct"] is None


def test_the_png_bomb_is_small_and_decodes_huge():
    import io

    from PIL import Image
    data = png_bomb(3000, 2000)
    assert len(data) < 100_000
    assert Image.open(io.BytesIO(data)).size == (3000, 2000)


def test_the_limits_are_the_controller_settings_with_the_deployed_values():
    import yaml

    from jepa_control.arm_controller import ControllerSettings
    from jepa_ros.launch_runner.launch_file import SHARE_DIR
    from jepa_ros.soak.run import deployed_limits
    from jepa_common.settings import SettingsError, settings_fields
    defaults = controller_limits()
    assert defaults == Limits.from_settings(ControllerSettings())
    assert controller_limits({"rate": 50.0, "workspace_max": [0.4, 0.2, 0.3]}) == dataclasses.replace(
        defaults, dt=1.0 / 50.0, box_high=(0.4, 0.2, 0.3))
    with pytest.raises(SettingsError, match="max_speed"):
        controller_limits({"max_speed": 1.0})
    deployed = yaml.safe_load((SHARE_DIR / "config" / "controller.yaml").read_text())
    expected = {f.name: f.default for f in settings_fields(ControllerSettings)}
    expected.update(deployed["controller_node"]["ros__parameters"] or {})
    limits = deployed_limits()
    assert limits.box_low == tuple(expected["workspace_min"]) and limits.box_high == tuple(expected["workspace_max"])
    assert limits.dt == pytest.approx(1.0 / expected["rate"])
    assert (limits.state_timeout, limits.plan_timeout) == (expected["state_timeout"], expected["plan_timeout"])
    assert (limits.max_linear_accel, limits.motion_state_age) == (expected["max_linear_accel"],
                                                                   expected["motion_state_age"])


def test_every_hostile_kind_builds_a_message_for_its_topic():
    from jepa_msgs.msg import Embedding
    from sensor_msgs.msg import Image
    rng = np.random.default_rng(0)
    embedding = Embedding(model_id="m", shape=[2, 3], data=np.arange(6, dtype=np.float32), state_names=["x"],
                          state=[0.3])
    image = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    needs = {"embedding_future", "embedding_nan", "embedding_wrong_shape", "image_future", "compressed_valid",
             "pose_future", "pose_nan"}
    for kind in HOSTILE_KINDS:
        key, msg = hostile_message(kind, 1000.0, rng, embedding=embedding, image=image, position=(0.3, 0.0, 0.2))
        assert key == kind.split("_")[0] and key in HOSTILE_TOPICS, kind
        assert type(msg).__name__ == {"plan": "Plan", "embedding": "Embedding", "image": "Image",
                                      "compressed": "CompressedImage", "pose": "PoseStamped"}[key], kind
        if kind.endswith("_future") or kind == "plan_future_far":
            assert msg.header.stamp.sec > 2000, kind
        if kind in needs:
            assert hostile_message(kind, 1000.0, rng) is None, kind
    assert hostile_message("plan_nan_actions", 1000.0, rng)[1].header.stamp.sec == 1000
    with pytest.raises(ValueError, match="unknown hostile kind"):
        hostile_message("sneaky", 1000.0, rng)


def test_soak_options_show_their_defaults_and_write_under_the_current_directory():
    import argparse
    from pathlib import Path

    from jepa_ros.soak.run import add_arguments
    parser = argparse.ArgumentParser(prog="jepa soak")
    add_arguments(parser)
    args = parser.parse_args([])
    assert args.json == Path("artifacts") / "soak" / "soak.json" and args.logs == Path("artifacts") / "soak" / "logs"
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert options and all("(default: " in a.help for a in options), [a.dest for a in options]
    assert "(default: artifacts/soak/soak.json)" in " ".join(parser.format_help().split())


@pytest.mark.timeout(900)
def test_a_one_minute_soak_reports_and_nothing_crashes(tmp_path):
    from jepa_ros.launch_runner.stack import wait_until
    from test.support.nodes import NodeProcess

    report_path = tmp_path / "soak.json"
    process = NodeProcess.module("jepa_ros.cli", [
        "soak", "--minutes", "1", "--seed", "3", "--warmup", "10", "--kill-every", "20", "--hostile-every", "0.5",
        "--estop-every", "15", "--max-budget", "8", "--json", str(report_path), "--logs", str(tmp_path / "logs")])
    try:
        assert wait_until(lambda: not process.alive(), 840.0, 1.0), f"soak did not finish:\n{process.output()}"
        output = process.output()
        assert process.proc.returncode in (0, 1), output
        report = json.loads(report_path.read_text())
    finally:
        process.cleanup()
    assert report["crashes"] == [], output
    assert process.proc.returncode == (0 if report["ok"] else 1)
    assert set(report) >= {"crashes", "kills", "violations", "goals", "memory", "hostile_messages", "commands",
                           "limits", "ok"}
    assert report["kills"], "no peer was killed"
    assert {k["node"] for k in report["kills"]} <= {"planner_node", "perception_node", "sim_node"}
    assert sum(report["hostile_messages"].values()) >= 30
    assert report["commands"]["recorded"] > 500 and report["poses"] > 1000
    goals = report["goals"]
    assert goals["sent"] >= 1 and goals["sent"] == goals["ended"] + goals["orphaned"] + goals["not_ended"]
    assert set(report["memory"]) == {"sim_node", "perception_node", "planner_node", "controller_node",
                                     "perception_compressed"}
    assert report["memory"]["controller_node"]["growth_pct"] is not None
    assert report["violations"]["total"] == sum(report["violations"]["by_kind"].values())
    assert (tmp_path / "soak.npz").exists()

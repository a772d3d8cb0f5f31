"""`jepa soak`: the whole sim stack under hostile conditions, every actuator command checked.

The stack of `launch/sim.launch.xml` (plus a second perception node that decodes CompressedImage frames, the
target of decompression bombs) runs for ``--minutes`` while the soak

- sends random ReachGoal goals (goal images rendered by the sim, as `jepa eval` does) one after the other,
- kills (SIGKILL or SIGINT) and restarts random peers (planner, perception, sim) at random times,
- interleaves hostile messages on the real topics (malformed and non-finite plans, stamps far in the future or
  past, future embeddings and poses, camera frames of wrong sizes and encodings, a PNG that decodes to 6000x6000),
- engages and clears the e-stop and disarms/re-arms the controller,

and records every command on /servo_node/delta_twist_cmds and the state on /ee_pose. At the end every command is
checked (:func:`jepa_control.command_audit.check_commands`) against the controller's limits (speed per axis and
norm, acceleration between consecutive commands except immediate stops), the workspace box (the latest pose plus
one period of the commanded motion stays inside the box + tolerance, or moves back toward it) and the watchdog /
e-stop rules (no motion while e-stopped or disarmed, or with a state or plan older than its timeout), all judged on
stamps with a margin.
The report (printed, and ``--json``) lists crashes (a node that died without being killed by the soak),
violations, goals sent / ended / not ended, and memory growth per node; the exit code is 1 on any crash,
violation or goal that did not end.

The parts: :mod:`jepa_control.command_audit` (the checker, ROS-free), :mod:`jepa_ros.soak.hostile` (the hostile
messages), :mod:`jepa_ros.soak.recorder` (the soak's rclpy node: recording, hostile publishers, controller
services), :mod:`jepa_ros.soak.chaos` (goals, kills, restarts, e-stops, memory); this module runs them and writes
the report. The launch file and the controller's deployed settings are read from `jepa_common.package_data`;
the report and logs go under ``artifacts/soak/`` of the current directory unless ``--json`` / ``--logs`` say.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from jepa_control.command_audit import Command, Gate, Limits, Pose, Violation, check_commands, controller_limits
from jepa_common import topics
from jepa_common.package_data import config_file, launch_file
from jepa_ros.soak.chaos import Soak, memory_report
from jepa_ros.soak.hostile import COMPRESSED_TOPIC, bomb

LAUNCH_FILE = launch_file("sim.launch.xml")
CONTROLLER_YAML = config_file("controller.yaml")
COMPRESSED_NODE = "perception_compressed"
MAX_LISTED = 200         # violations kept per kind in the report (all are counted)


def deployed_limits(path: Path = CONTROLLER_YAML) -> Limits:
    """The deployed controller's limits: the controller_node section of ``path`` over the ControllerSettings
    defaults (checked like the node checks them)."""
    import yaml

    section = (yaml.safe_load(path.read_text()) or {}).get("controller_node", {}).get("ros__parameters") or {}
    return controller_limits(section)


# ------------------------------------------------------------------------------------------------ the report
def summarise(soak: Soak, violations: list[Violation], limits: Limits, args, duration: float,
              commands: list[Command], poses: list[Pose], gates: list[Gate]) -> dict:
    """The JSON report; times in seconds since the soak started."""
    t0_ros = soak.t0
    counts = Counter(v.kind for v in violations)
    listed: list[dict] = []
    per_kind: Counter = Counter()
    for v in violations:
        per_kind[v.kind] += 1
        if per_kind[v.kind] <= MAX_LISTED:
            listed.append(v.to_dict(t0_ros))
    goals = soak.goals
    by_reason = Counter(g.reason for g in goals if g.outcome == "ended")
    memory = memory_report(soak.incarnations, args.warmup)
    kills = [{k: v for k, v in kill.items() if k != "monotonic"} for kill in soak.kills]
    crashes = [{k: v for k, v in crash.items() if k != "monotonic"} for crash in soak.crashes]
    for name, entry in memory.items():
        entry["kills"] = sum(k["node"] == name for k in kills)
        entry["crashes"] = sum(c["node"] == name for c in soak.crashes)
    not_ended = [dataclasses.asdict(g) for g in goals if g.outcome == "not ended"]
    report = {
        "command": "jepa soak " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["soak"] else "jepa soak",
        "minutes": args.minutes, "seed": args.seed, "duration_s": round(duration, 1),
        "limits": dataclasses.asdict(limits), "margin_s": args.margin if args.margin is not None else 2 * limits.dt,
        "box_tolerance_m": args.box_tolerance,
        "crashes": crashes,
        "kills": kills,
        "restart_failures": soak.restart_failures,
        "goal_loop_errors": soak.goal_loop_errors,
        "violations": {"total": len(violations), "by_kind": dict(counts), "listed": listed},
        "goals": {"sent": len(goals), "ended": sum(g.outcome == "ended" for g in goals),
                  "orphaned": sum(g.outcome.startswith("orphaned") for g in goals), "not_ended": len(not_ended),
                  "orphaned_by": dict(Counter(g.outcome for g in goals if g.outcome.startswith("orphaned"))),
                  "by_reason": dict(by_reason), "no_goal_image": soak.goal_image_failures,
                  "list": [dataclasses.asdict(g) for g in goals]},
        "memory": memory,
        "hostile_messages": dict(soak.hostile),
        "estops": dict(soak.estops),
        "commands": {"recorded": len(commands), "moving": sum(c.moving for c in commands),
                     "gaps": sum(1 for a, b in zip(commands, commands[1:]) if b.t - a.t > 1.5 * limits.dt)},
        "poses": len(poses),
        "events": [[round(t - t0_ros, 3), what] for t, what in soak.events],
        "gates": [{"t": round(g.t - t0_ros, 3), "allow": g.allow, "reason": g.reason,
                   "from_diagnostics": g.from_diagnostics} for g in sorted(gates, key=lambda g: g.t)],
        "controller_diagnostics": dict(soak.soak.controller_values),
    }
    report["ok"] = not soak.crashes and not violations and not not_ended
    return report


def print_report(report: dict) -> None:
    """The report as a few tables."""
    print(f"\njepa soak: {report['duration_s']:.0f} s of chaos, seed {report['seed']}")
    print(f"{'node':<22}{'processes':>10}{'kills':>7}{'crashes':>9}{'RSS start MiB':>15}{'RSS end MiB':>13}"
          f"{'growth %':>10}{'over s':>8}")
    for name, m in report["memory"].items():
        print(f"{name:<22}{m['processes']:>10}{m['kills']:>7}{m['crashes']:>9}{m.get('start_mib', '-'):>15}"
              f"{m.get('end_mib', '-'):>13}{m['growth_pct'] if m['growth_pct'] is not None else '-':>10}"
              f"{m.get('over_s', '-'):>8}")
    g = report["goals"]
    print(f"goals: {g['sent']} sent, {g['ended']} ended {g['by_reason']}, {g['orphaned']} orphaned "
          f"{g['orphaned_by']}, {g['not_ended']} NOT ended; {g['no_goal_image']} attempts without a goal image")
    c = report["commands"]
    print(f"commands: {c['recorded']} recorded ({c['moving']} moving, {c['gaps']} gaps), {report['poses']} poses; "
          f"hostile messages: {sum(report['hostile_messages'].values())}; e-stops/disarms: {report['estops']}")
    v = report["violations"]
    print(f"violations: {v['total']} {v['by_kind']}")
    shown = Counter()
    for item in v["listed"]:
        shown[item["kind"]] += 1
        if shown[item["kind"]] <= 3:
            print(f"  t={item['t']:8.2f}s {item['kind']:<12} {item['detail']}  command={item['command']}")
    for crash in report["crashes"]:
        print(f"CRASH t={crash['t']}s {crash['node']} exit {crash['exit_code']}:\n{crash['log_tail']}")
    for failure in report["restart_failures"] + report["goal_loop_errors"]:
        print(f"soak problem: {failure}")
    print("PASS" if report["ok"] else "FAIL")


# ------------------------------------------------------------------------------------------------ the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa soak`."""
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="minutes of chaos (after start-up and warm-up) (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of goals, hostile messages, kills and e-stops (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=Path("artifacts") / "soak" / "soak.json",
                        help="report file; the recorded commands and poses go next to it as .npz "
                             "(default: %(default)s)")
    parser.add_argument("--logs", type=Path, default=Path("artifacts") / "soak" / "logs",
                        help="node logs folder (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds of plain goals before the chaos; memory is measured from then on "
                             "(default: %(default)s)")
    parser.add_argument("--kill-every", type=float, default=45.0,
                        help="mean seconds between peer kills (default: %(default)s)")
    parser.add_argument("--hostile-every", type=float, default=1.5,
                        help="mean seconds between hostile messages (default: %(default)s)")
    parser.add_argument("--estop-every", type=float, default=30.0,
                        help="mean seconds between e-stops/disarms (default: %(default)s)")
    parser.add_argument("--max-budget", type=int, default=15,
                        help="goals get 5..this many control steps (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=None,
                        help="slack on every time rule [s] (default: two control periods)")
    parser.add_argument("--box-tolerance", type=float, default=0.01,
                        help="slack on the workspace box [m] (default: %(default)s)")
    parser.add_argument("--encoder", default="default",
                        help="encoder: 'default', preset, checkpoint dir, .pt, HF id or dir (default: %(default)s)")
    parser.add_argument("--predictor", default="default",
                        help="predictor: 'default', preset, checkpoint dir or official .pt (default: %(default)s)")
    parser.add_argument("--device", default=None,
                        help="torch device of the nodes: auto, cpu, cuda, ... (default: the launch file's)")


def compressed_spec(stack) -> object:
    """A second perception node that decodes CompressedImage frames from COMPRESSED_TOPIC (bomb target); its
    embeddings go to /soak/compressed_embedding, away from the planner."""
    base = stack.specs["perception_node"]
    params = dict(base.params, compressed="true", image_topic=COMPRESSED_TOPIC)
    return dataclasses.replace(base, name=COMPRESSED_NODE, param_files=[], params=params,
                               remaps=[(topics.EMBEDDING, "/soak/compressed_embedding")])


def wait_for_stack(stack, client, timeout: float = 180.0) -> None:
    """Wait until the stack's interfaces are up; RuntimeError with the node's last output if one exits first."""
    deadline = time.monotonic() + timeout
    while True:
        dead = stack.dead()
        if dead:
            raise RuntimeError(f"{dead[0]} exited during start-up; last output:\n{stack.log_tail(dead[0])}")
        try:
            client.wait_until_ready(timeout=5.0)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def save_record(path: Path, commands: list[Command], poses: list[Pose], plan_times: list[float]) -> None:
    """Every command (t, vx, vy, vz, wx, wy, wz), pose (t, x, y, z) and plan time as arrays in an .npz file."""
    np.savez_compressed(path, commands=np.array([(c.t, *c.linear, *c.angular) for c in commands]).reshape(-1, 7),
                        poses=np.array([(p.t, *p.position) for p in poses]).reshape(-1, 4),
                        plan_times=np.asarray(plan_times, dtype=np.float64))


def main(args: argparse.Namespace) -> int:
    """Run `jepa soak`."""
    import rclpy

    from jepa_episodes.tasks.reach import REACH
    from jepa_ros.episodes.node_driver import NodeDriver
    from jepa_ros.soak.recorder import SoakNode
    from jepa_ros.launch_runner.stack import Stack, isolate_ros_graph

    limits = deployed_limits()
    targets = REACH.sample(max(50, int(args.minutes * 30)), args.seed)
    bomb()
    print(f"ROS_DOMAIN_ID={isolate_ros_graph()}; node logs in {args.logs}", flush=True)
    launch_args = {"encoder": args.encoder, "predictor": args.predictor}
    if args.device:
        launch_args["device"] = args.device
    stack = Stack(LAUNCH_FILE, arguments=launch_args, log_dir=args.logs)
    stack.specs[COMPRESSED_NODE] = compressed_spec(stack)
    rclpy.init()
    soak_node = client = None
    try:
        with stack:
            soak_node = SoakNode()
            client = NodeDriver()
            try:
                wait_for_stack(stack, client)
            except (RuntimeError, TimeoutError) as exc:
                print(f"jepa soak: the stack did not come up: {exc}", file=sys.stderr)
                return 1
            soak = Soak(stack, soak_node, client, args)
            goal_thread = threading.Thread(target=soak.goal_loop, args=(targets,), daemon=True)
            goal_thread.start()
            soak.sleep(args.warmup)
            soak.sample_memory()
            print(f"[soak] warm-up done; {args.minutes:g} min of chaos", flush=True)
            started = time.monotonic()
            try:
                soak.run(60.0 * args.minutes)
            except KeyboardInterrupt:
                print("[soak] interrupted: ending the running goal, then the report", flush=True)
            soak.finish(goal_thread)
            duration = time.monotonic() - started
            stack.stop_all()
            commands, poses, plan_times, gates = soak_node.snapshot()
    finally:
        if client is not None:
            client.close()
        if soak_node is not None:
            soak_node.close()
        rclpy.try_shutdown()
    violations = check_commands(commands, poses, plan_times, gates, limits, args.margin, args.box_tolerance)
    report = summarise(soak, violations, limits, args, duration, commands, poses, gates)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    save_record(args.json.with_suffix(".npz"), commands, poses, plan_times)
    print_report(report)
    print(f"report -> {args.json}")
    return 0 if report["ok"] else 1

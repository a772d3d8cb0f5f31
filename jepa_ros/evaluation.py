"""`jepa eval`: closed-loop reach episodes on the built-in simulation, through the real nodes over DDS.

`run_episodes` is the one episode loop: `jepa eval` and `jepa demo` both run it (the demo adds pictures through its
callbacks). The episode protocol (targets, step budget, success radius) is the offline reach loop's
(`jepa_planner.offline_reach`), so both judge a reach the same way.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jepa_planner.offline_reach import DEFAULT_BUDGET, SUCCESS_RADIUS
from jepa_ros.launch_xml import REPO_ROOT

__all__ = ["DEFAULT_BUDGET", "SUCCESS_RADIUS", "add_stack_arguments", "run_episodes", "sample_targets", "summarise"]

#: (index, target, client) before an episode starts (the sim is reset and the controller armed)
BeforeEpisode = Callable[[int, np.ndarray, Any], None]
#: (index, EpisodeResult, client) after an episode ended
AfterEpisode = Callable[[int, Any, Any], None]


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that `jepa eval` and `jepa demo` share: the step budget and the stack's launch arguments
    (left out, a launch argument keeps launch/sim.launch.xml's default)."""
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help=f"control steps allowed per episode (default: {DEFAULT_BUDGET})")
    parser.add_argument("--encoder", default=None,
                        help="encoder source: preset, checkpoint, .pt, HF dir (default: the shipped sim model)")
    parser.add_argument("--predictor", default=None,
                        help="predictor source: preset or checkpoint dir (default: the shipped sim model)")
    parser.add_argument("--device", default=None,
                        help="torch device of the nodes: auto, cpu, cuda, ... (default: the launch file's, auto)")


def stack_arguments(args: argparse.Namespace) -> dict[str, str]:
    """Launch arguments for launch/sim.launch.xml from the options of :func:`add_stack_arguments`."""
    return {name: getattr(args, name) for name in ("encoder", "predictor", "device")
            if getattr(args, name) is not None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa eval`."""
    parser.add_argument("--episodes", type=int, default=20, help="number of reach episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the goal targets")
    add_stack_arguments(parser)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "artifacts" / "eval.json", help="result file")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="ReachGoal energy tolerance that ends an episode as reached (<= 0: the planner's "
                             "default_tolerance; tiny, e.g. 1e-6: always use the whole budget)")
    parser.add_argument("--logs", type=Path, default=REPO_ROOT / "artifacts" / "logs", help="node logs folder")


def sample_targets(episodes: int, seed: int) -> np.ndarray:
    """Reachable end-effector targets drawn from the sim's documented workspace with `seed`."""
    from jepa_sim.arm_sim import ArmSim

    rng = np.random.default_rng(seed)
    with ArmSim(image_size=16) as sim:
        return np.stack([sim.sample_target(rng) for _ in range(episodes)])


def summarise(results: list, task: str = "reach", **extra) -> dict:
    """The JSON summary of a list of EpisodeResult."""
    successes = sum(r.success for r in results)
    reached = [r.steps_to_reach for r in results if r.success and r.steps_to_reach is not None]
    plan_ms = [ms for r in results for ms in r.plan_ms]
    return {
        "task": task,
        "episodes": len(results),
        "successes": successes,
        "success_rate": successes / len(results) if results else 0.0,
        # steps until the end effector was first observed within the success radius (successful episodes)
        "median_steps": statistics.median(reached) if reached else None,
        "median_plan_ms": statistics.median(plan_ms) if plan_ms else None,
        "median_final_distance": statistics.median([r.final_distance for r in results]) if results else None,
        "success_radius_m": SUCCESS_RADIUS,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version()},
        **extra,
        "results": [r.to_dict() for r in results],
    }


def run_episodes(targets: np.ndarray, budget: int, *, arguments: dict[str, str], log_dir: Path,
                 tolerance: float = 0.0, before_episode: BeforeEpisode | None = None,
                 on_episode: AfterEpisode | None = None, on_step=None) -> list:
    """Bring the sim stack up (launch/sim.launch.xml with `arguments`), run one reach episode per target from the
    home pose, bring it down; returns the EpisodeResults. Stops early, with the node's last output on stderr,
    when a node dies. `on_step(step, energy, distance, plan_ms)` is called for every control step."""
    import rclpy

    from jepa_ros.reach_client import ReachClient
    from jepa_ros.stack import Stack, isolate_ros_graph

    results = []
    print(f"ROS_DOMAIN_ID={isolate_ros_graph()}; node logs in {log_dir}", flush=True)
    rclpy.init()
    try:
        with Stack(arguments=arguments, log_dir=log_dir) as stack:
            client = ReachClient(success_radius=SUCCESS_RADIUS)
            try:
                client.wait_until_ready(timeout=120.0)
                for index, target in enumerate(targets):
                    client.reset_sim()
                    client.arm(True)
                    if before_episode is not None:
                        before_episode(index, target, client)
                    result = client.run_episode(target, budget, tolerance, alive=lambda: not stack.dead(),
                                                on_step=on_step)
                    results.append(result)
                    if on_episode is not None:
                        on_episode(index, result, client)
                    if stack.dead():
                        dead = ", ".join(stack.dead())
                        print(f"stopping: {dead} exited; last output:\n{stack.log_tail(stack.dead()[0])}",
                              file=sys.stderr)
                        break
            finally:
                client.close()
    finally:
        rclpy.try_shutdown()
    return results


def main(args: argparse.Namespace) -> int:
    """Run `jepa eval`."""
    targets = sample_targets(args.episodes, args.seed)

    def report(index: int, result, _client) -> None:
        mark = "ok  " if result.success else "FAIL"
        print(f"[{mark}] episode {index + 1}/{len(targets)}: {result.steps} steps, final distance "
              f"{100 * result.final_distance:.1f} cm ({result.reason})", flush=True)

    results = run_episodes(targets, args.budget, arguments=stack_arguments(args), log_dir=args.logs,
                           tolerance=args.tolerance, on_episode=report)
    summary = summarise(results, seed=args.seed, budget=args.budget, tolerance=args.tolerance,
                        requested_episodes=args.episodes)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"success rate {summary['success_rate']:.2f} ({summary['successes']}/{summary['episodes']}), "
          f"median steps {summary['median_steps']}, median planning {summary['median_plan_ms']} ms -> {args.json}")
    return 0 if len(results) == args.episodes else 1

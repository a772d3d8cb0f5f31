"""`jepa eval`: closed-loop reach or push episodes on the built-in simulation, through the real nodes over DDS.

`run_episodes` (reach) and `run_push_episodes` (push, `--task push`) are the episode loops: `jepa eval` and `jepa
demo` both run them (the demo adds pictures through its callbacks). The episode protocols are the offline loops'
(`jepa_episodes.offline_reach`, `jepa_episodes.offline_push`), so both judge an episode the same way.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from jepa_episodes.offline_push import PUSH_BUDGETS
from jepa_episodes.offline_reach import DEFAULT_BUDGET, SUCCESS_RADIUS
from jepa_common.package_data import launch_file

TASKS = ("reach", "push")
#: the launch file of each task
LAUNCH_FILES = {"reach": launch_file("sim.launch.xml"), "push": launch_file("sim_push.launch.xml")}
#: how the goal images of a push episode are made (the JSON says it)
PUSH_GOAL_IMAGES = {2: "rendered goal scenes: 'behind' = puck at its start, end effector behind it on the line to "
                       "the target; 'target' = puck at the target, end effector touching it from behind (where that "
                       "push leaves it)", 1: "rendered goal scene 'target': puck at the target, end effector "
                       "touching it from behind"}

__all__ = ["DEFAULT_BUDGET", "SUCCESS_RADIUS", "StackError", "add_stack_arguments", "run_episodes", "sample_targets",
           "summarise"]

#: (index, target, client) before an episode starts (the sim is reset and the controller armed)
BeforeEpisode = Callable[[int, np.ndarray, Any], None]
#: (index, EpisodeResult, client) after an episode ended
AfterEpisode = Callable[[int, Any, Any], None]


class StackError(RuntimeError):
    """The stack could not run the episodes (the message is the one line to show, e.g. why a node exited)."""


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that `jepa eval` and `jepa demo` share: the step budget and the stack's launch arguments
    (left out, a launch argument keeps launch/sim.launch.xml's default)."""
    parser.add_argument("--task", choices=TASKS, default="reach",
                        help="reach: end effector to a goal image (launch/sim.launch.xml); push: puck to where the "
                             "goal images show it (launch/sim_push.launch.xml, model push_default) "
                             "(default: %(default)s)")
    parser.add_argument("--goal-images", type=int, choices=(1, 2), default=2,
                        help="push: 2 = 'behind the puck' then 'puck at the target', 1 = only the latter "
                             "(default: %(default)s)")
    parser.add_argument("--budget", type=int, default=None,
                        help=f"control steps allowed per episode (default: {DEFAULT_BUDGET} for reach; push: "
                             f"{'+'.join(map(str, PUSH_BUDGETS[2]))} for two goal images, {PUSH_BUDGETS[1][0]} for "
                             f"one; a given push budget is split 2:3 between two images)")
    parser.add_argument("--encoder", default=None,
                        help="encoder: 'default', preset, checkpoint dir, .pt, HF id or dir (default: the encoder "
                             "saved with --predictor; without --predictor the shipped sim model, 'default')")
    parser.add_argument("--predictor", default=None,
                        help="predictor: 'default', preset, checkpoint dir (e.g. a `jepa train --out` folder) or "
                             "official .pt (default: the shipped sim model, 'default')")
    parser.add_argument("--device", default=None,
                        help="torch device of the nodes: auto, cpu, cuda, ... (default: the launch file's, auto)")


def stack_arguments(args: argparse.Namespace) -> dict[str, str]:
    """Launch arguments for launch/sim.launch.xml from the options of :func:`add_stack_arguments`.

    A predictor without an encoder gets the encoder saved with it (both nodes load that one); StackError when
    the predictor holds no encoder and names none."""
    from jepa_world_model.checkpoints.bundle import predictor_encoder
    from jepa_world_model.errors import WorldModelError

    chosen = {name: getattr(args, name) for name in ("encoder", "predictor", "device")
              if getattr(args, name) is not None}
    if "predictor" in chosen and "encoder" not in chosen:
        try:
            found = predictor_encoder(chosen["predictor"])
        except (WorldModelError, OSError) as exc:
            raise StackError(f"--predictor {chosen['predictor']}: {exc}") from None
        # the perception node takes a source name only: a reference with overrides is followed from the predictor
        chosen["encoder"] = chosen["predictor"] if found.overrides else found.source
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa eval`."""
    parser.add_argument("--episodes", type=int, default=20, help="number of reach episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the goal targets (default: %(default)s)")
    add_stack_arguments(parser)
    parser.add_argument("--json", type=Path, default=Path("artifacts") / "eval.json",
                        help="result file (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="ReachGoal energy tolerance that ends an episode as reached (default: %(default)s = "
                             "the planner's default_tolerance, i.e. the predictor's calibrated planning tolerance; "
                             "tiny, e.g. 1e-6: always use the whole budget; push: one per goal image, default "
                             "jepa_episodes.offline_push.PUSH_TOLERANCES)")
    parser.add_argument("--logs", type=Path, default=Path("artifacts") / "logs",
                        help="node logs folder (default: %(default)s)")


def push_budgets(budget: int | None, goal_images: int) -> tuple[int, ...]:
    """Step budgets per goal image of a push episode: `PUSH_BUDGETS`, or `budget` split 2:3 over two images."""
    if budget is None:
        return PUSH_BUDGETS[goal_images]
    if goal_images == 1:
        return (budget,)
    first = max(1, round(0.4 * budget))
    return first, max(1, budget - first)


def sample_push_tasks(episodes: int, seed: int) -> list:
    """Push tasks (`jepa_sim.push.sample_push_task`) drawn with `seed`, as the offline push loop draws them."""
    from jepa_sim.arm_sim import ArmSim
    from jepa_sim.push import sample_push_task

    rng = np.random.default_rng(seed)
    with ArmSim(image_size=16, task="push") as sim:
        return [sample_push_task(sim, rng) for _ in range(episodes)]


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


@contextmanager
def running_stack(make_client: Callable[[], Any], arguments: dict[str, str], log_dir: Path,
                  launch_file: Path = LAUNCH_FILES["reach"]) -> Iterator[tuple[Any, Any]]:
    """Bring a sim stack up (`launch_file` with `arguments`) and a ready client of it; yields (stack, client) and
    brings both down. StackError when a node exits while starting."""
    import rclpy

    from jepa_ros.episodes.reach_client import NodeExited
    from jepa_ros.launch_runner.stack import Stack, isolate_ros_graph

    print(f"ROS_DOMAIN_ID={isolate_ros_graph()}; node logs in {log_dir}", flush=True)
    rclpy.init()
    try:
        with Stack(launch_file, arguments=arguments, log_dir=log_dir) as stack:
            client = make_client()
            try:
                try:
                    client.wait_until_ready(timeout=120.0, alive=lambda: not stack.dead())
                except (NodeExited, TimeoutError):
                    if stack.dead():
                        raise StackError(stack.exit_reason(stack.dead()[0])) from None
                    raise
                yield stack, client
            finally:
                client.close()
    finally:
        rclpy.try_shutdown()


def _stop_if_dead(stack: Any) -> bool:
    """True (and the dead node's last output on stderr) when a node of `stack` exited."""
    if not stack.dead():
        return False
    print(f"stopping: {stack.exit_reason(stack.dead()[0])}; last output:\n{stack.log_tail(stack.dead()[0])}",
          file=sys.stderr)
    return True


def run_episodes(targets: np.ndarray, budget: int, *, arguments: dict[str, str], log_dir: Path,
                 tolerance: float = 0.0, before_episode: BeforeEpisode | None = None,
                 on_episode: AfterEpisode | None = None, on_step=None) -> list:
    """Bring the sim stack up (launch/sim.launch.xml with `arguments`), run one reach episode per target from the
    home pose, bring it down; returns the EpisodeResults. Stops early, with the node's last output on stderr,
    when a node dies. `on_step(step, energy, distance, plan_ms)` is called for every control step."""
    from jepa_ros.episodes.reach_client import ReachClient

    results = []
    with running_stack(lambda: ReachClient(success_radius=SUCCESS_RADIUS), arguments, log_dir) as (stack, client):
        for index, target in enumerate(targets):
            client.arm(False)  # re-armed after the reset: the plan watchdog starts afresh for every episode
            client.reset_sim()
            client.arm(True)
            if before_episode is not None:
                before_episode(index, target, client)
            result = client.run_episode(target, budget, tolerance, alive=lambda: not stack.dead(),
                                        on_step=on_step)
            results.append(result)
            if on_episode is not None:
                on_episode(index, result, client)
            if _stop_if_dead(stack):
                break
    return results


def run_push_episodes(tasks: list, budgets: tuple[int, ...], *, arguments: dict[str, str], log_dir: Path,
                      tolerances: tuple[float, ...] | None = None, before_episode: BeforeEpisode | None = None,
                      on_episode: AfterEpisode | None = None, on_step=None) -> list:
    """Bring the push stack up (launch/sim_push.launch.xml with `arguments`), run one push episode per task (one
    goal image per entry of `budgets`, each its own ReachGoal with its tolerance: `tolerances`, default
    `PUSH_TOLERANCES`), bring it down; returns the PushResults. `before_episode(index, task,
    client)` runs before the episode's start is set up; `on_step(step, energy, object_distance, plan_ms)`."""
    from jepa_ros.episodes.push_client import PushClient

    results = []
    with running_stack(PushClient, arguments, log_dir, LAUNCH_FILES["push"]) as (stack, client):
        for index, task in enumerate(tasks):
            if before_episode is not None:
                before_episode(index, task, client)
            result = client.run_push(task, budgets, tolerances, alive=lambda: not stack.dead(), on_step=on_step)
            results.append(result)
            if on_episode is not None:
                on_episode(index, result, client)
            if _stop_if_dead(stack):
                break
    return results


def push_summary(results: list, goal_images: int, **extra) -> dict:
    """`summarise` of PushResults plus the push numbers: object error, goal images and how they were made,
    failure classes."""
    from jepa_sim.push import FAILURES

    failures = {name: sum(r.outcome == name for r in results) for name in FAILURES}
    errors = [100 * r.final_object_distance for r in results]
    return summarise(results, task="push", median_object_error_cm=statistics.median(errors) if errors else None,
                     goal_images_per_episode=goal_images, goal_images=PUSH_GOAL_IMAGES[goal_images],
                     failures=failures, **extra)


def rounded(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A summary number for people: `digits` decimals (trailing zeros dropped), "n/a" for None."""
    if value is None:
        return "n/a"
    return f"{round(float(value), digits):g}{unit}"


def summary_line(summary: dict) -> str:
    """The one-line result of `jepa eval` / `jepa demo`, numbers rounded."""
    steps = rounded(summary["median_steps"])
    distance = summary["median_final_distance"]
    return (f"success rate {summary['success_rate']:.2f} ({summary['successes']}/{summary['episodes']}), median "
            f"steps to within {100 * summary['success_radius_m']:g} cm {steps}, median planning "
            f"{rounded(summary['median_plan_ms'], 0, ' ms')}, median final distance "
            f"{rounded(None if distance is None else 100 * distance, 2, ' cm')}")


def main(args: argparse.Namespace) -> int:
    """Run `jepa eval`; 2 when the stack cannot start (the reason in one line on stderr)."""
    push = args.task == "push"
    episodes = sample_push_tasks(args.episodes, args.seed) if push else sample_targets(args.episodes, args.seed)
    budgets = push_budgets(args.budget, args.goal_images) if push else (args.budget or DEFAULT_BUDGET,)

    def report(index: int, result, _client) -> None:
        mark = "ok  " if result.success else "FAIL"
        what = f"puck {100 * result.final_distance:.1f} cm from the target, {result.outcome}" if push else \
            f"final distance {100 * result.final_distance:.1f} cm"
        print(f"[{mark}] episode {index + 1}/{len(episodes)}: {result.steps} steps, {what} ({result.reason})",
              flush=True)

    try:
        if push:
            tolerances = (args.tolerance,) * len(budgets) if args.tolerance > 0 else None
            results = run_push_episodes(episodes, budgets, arguments=stack_arguments(args), log_dir=args.logs,
                                        tolerances=tolerances, on_episode=report)
        else:
            results = run_episodes(episodes, budgets[0], arguments=stack_arguments(args), log_dir=args.logs,
                                   tolerance=args.tolerance, on_episode=report)
    except StackError as exc:
        print(f"jepa eval: {exc}", file=sys.stderr)
        return 2
    common = dict(seed=args.seed, budget=sum(budgets), tolerance=args.tolerance, requested_episodes=args.episodes)
    summary = push_summary(results, args.goal_images, budgets=list(budgets), **common) if push else \
        summarise(results, **common)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    extra = f", median object error {rounded(summary['median_object_error_cm'], 2, ' cm')}, failures " \
            f"{ {k: v for k, v in summary['failures'].items() if v} }" if push else ""
    print(f"{summary_line(summary)}{extra} -> {args.json}")
    return 0 if len(results) == args.episodes else 1

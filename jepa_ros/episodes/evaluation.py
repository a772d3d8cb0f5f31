"""`jepa eval`: closed-loop episodes of a task on the built-in simulation, through the real nodes over DDS or, with
``--offline``, in-process (no ROS).

Rules: the episodes, budgets, tolerances and judgement are the task's (`jepa_episodes.tasks`), the protocol is the
episode runner's (`jepa_episodes.runner`) and the JSON is ``EpisodeSummary`` (`jepa_episodes.record`), whichever
driver runs them; `jepa demo` shares ``add_stack_arguments``, ``running_stack`` and ``run_on_nodes``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from jepa_episodes.record import episode_line, summary_line
from jepa_episodes.runner import run_episodes, summarise
from jepa_episodes.tasks import TASKS, Task, get_task
from jepa_episodes.tasks.push import BUDGETS as PUSH_BUDGETS
from jepa_episodes.tasks.reach import DEFAULT_BUDGET


#: the one line `jepa eval` / `jepa demo` print for a task without a shipped model and no --predictor
NO_MODEL = ("no shipped Franka model yet: pass --predictor <a 7-D predictor: a `jepa train --state-kind "
            "ee_pose_gripper` folder or an official vjepa2-ac .pt> (see docs/TRAINING.md)")


class StackError(RuntimeError):
    """The stack could not run the episodes (the message is the one line to show, e.g. why a node exited)."""


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that `jepa eval` and `jepa demo` share: the task, the step budget and the stack's launch
    arguments (left out, a launch argument keeps the task's launch file's default)."""
    parser.add_argument("--task", choices=list(TASKS), default="reach",
                        help="reach: end effector to a goal image (launch/sim.launch.xml); push: puck to where the "
                             "goal images show it (launch/sim_push.launch.xml, model push_default); grasp / "
                             "pick_place: the Franka lifts the cube / carries it onto the target "
                             "(launch/sim_grasp.launch.xml; no model is shipped: --predictor is required) "
                             "(default: %(default)s)")
    parser.add_argument("--goal-images", type=int, choices=(1, 2, 3), default=2,
                        help="push: 2 = 'behind the puck' then 'puck at the target', 1 = only the latter; "
                             "pick_place: 3 = 'lifted', 'above_target', 'placed', 2 = the last two, 1 = 'placed'; "
                             "a count the task does not make gives its first (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=None,
                        help=f"control steps allowed per episode (default: {DEFAULT_BUDGET} for reach; push: "
                             f"{'+'.join(map(str, PUSH_BUDGETS[2]))} for two goal images, {PUSH_BUDGETS[1][0]} for "
                             f"one; a given push budget is split 2:3 between two images; grasp 60; pick_place "
                             f"50+40+40 / 80+50 / 130 for 3 / 2 / 1 goal images, a given budget split in those "
                             f"proportions)")
    parser.add_argument("--encoder", default=None,
                        help="encoder: 'default', preset, checkpoint dir, .pt, HF id or dir (default: the encoder "
                             "saved with --predictor; without --predictor the task's shipped model)")
    parser.add_argument("--predictor", default=None,
                        help="predictor: 'default', preset, checkpoint dir (e.g. a `jepa train --out` folder) or "
                             "official .pt (default: the task's shipped model)")
    parser.add_argument("--device", default=None,
                        help="torch device of the models: auto (CUDA when available, else CPU), cpu, cuda, ... "
                             "(default: the launch file's / the planner's, auto)")
    parser.add_argument("--visualisation", choices=("true", "false"), default=None,
                        help="the planner's decoded pictures and planned path (default: the launch file's, true)")


def stack_arguments(args: argparse.Namespace) -> dict[str, str]:
    """Launch arguments from the options of :func:`add_stack_arguments`.

    A predictor without an encoder gets the encoder saved with it (both nodes load that one); StackError when
    the predictor holds no encoder and names none. On the Franka tasks the camera renders at least the encoder's
    input size (``image_size``, e.g. 256 for the official V-JEPA 2 encoders), so no frame is upscaled."""
    from jepa_episodes.offline import FRANKA_SIM_TASKS
    from jepa_sim.franka_sim import IMAGE_SIZE
    from jepa_world_model.checkpoints.bundle import encoder_for, predictor_encoder
    from jepa_world_model.errors import WorldModelError

    chosen = {name: getattr(args, name) for name in ("encoder", "predictor", "device", "visualisation")
              if getattr(args, name) is not None}
    if "predictor" in chosen and "encoder" not in chosen:
        try:
            found = predictor_encoder(chosen["predictor"])
        except (WorldModelError, OSError) as exc:
            raise StackError(f"--predictor {chosen['predictor']}: {exc}") from None
        # the perception node takes a source name only: a reference with overrides is followed from the predictor
        chosen["encoder"] = chosen["predictor"] if found.overrides else found.source
    if get_task(args.task).sim_task in FRANKA_SIM_TASKS and "predictor" in chosen:
        try:
            size = encoder_for(chosen["encoder"], chosen["predictor"]).input_size()
        except (WorldModelError, OSError) as exc:
            raise StackError(f"--encoder {chosen['encoder']}: {exc}") from None
        if size > IMAGE_SIZE:
            chosen["image_size"] = str(size)
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa eval`."""
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: %(default)s)")
    add_stack_arguments(parser)
    parser.add_argument("--json", type=Path, default=Path("artifacts") / "eval.json",
                        help="result file (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="ReachGoal energy tolerance that ends a goal image as reached (default: %(default)s = "
                             "the task's: reach the planner's default_tolerance, i.e. the predictor's calibrated "
                             "planning tolerance; push one per goal image, jepa_episodes.tasks.push.TOLERANCES; "
                             "tiny, e.g. 1e-6: always use the whole budget)")
    parser.add_argument("--logs", type=Path, default=Path("artifacts") / "logs",
                        help="node logs folder (default: %(default)s)")
    parser.add_argument("--offline", action="store_true",
                        help="run the same episodes in-process (MuJoCo + the planner's MPC loop, no ROS) instead "
                             "of through the nodes")
    parser.add_argument("--threads", type=int, default=1, help="--offline: torch CPU threads (default: %(default)s)")
    parser.add_argument("--settings", default="{}",
                        help="--offline: PlannerSettings overrides as JSON over the task's deployed settings, e.g. "
                             "'{\"samples\": 128}' (default: none)")


@contextmanager
def running_stack(task: Task, arguments: dict[str, str], log_dir: Path) -> Iterator[tuple[Any, Any]]:
    """Bring ``task``'s sim stack up (its launch file with ``arguments``) and a ready node driver of it; yields
    (stack, driver) and brings both down. StackError when a node exits while starting."""
    import rclpy

    from jepa_ros.episodes.node_driver import NodeDriver, NodeExited
    from jepa_ros.launch_runner.stack import Stack, isolate_ros_graph

    print(f"ROS_DOMAIN_ID={isolate_ros_graph()}; node logs in {log_dir}", flush=True)
    rclpy.init()
    try:
        with Stack(task.launch_file, arguments=arguments, log_dir=log_dir) as stack:
            driver = NodeDriver(task, alive=lambda: not stack.dead())
            try:
                try:
                    driver.wait_until_ready(timeout=120.0, alive=lambda: not stack.dead())
                except (NodeExited, TimeoutError):
                    if stack.dead():
                        raise StackError(stack.exit_reason(stack.dead()[0])) from None
                    raise
                yield stack, driver
            finally:
                driver.close()
    finally:
        rclpy.try_shutdown()


def _stop_if_dead(stack: Any) -> bool:
    """True (and the dead node's last output on stderr) when a node of ``stack`` exited."""
    if not stack.dead():
        return False
    print(f"stopping: {stack.exit_reason(stack.dead()[0])}; last output:\n{stack.log_tail(stack.dead()[0])}",
          file=sys.stderr)
    return True


def run_on_nodes(task: Task, episodes: list, budgets: tuple[int, ...], tolerances: tuple[float | None, ...], *,
                 arguments: dict[str, str], log_dir: Path, **callbacks: Any) -> list:
    """Bring the task's stack up, run the episodes through the node driver, bring it down; stops early, with the
    node's last output on stderr, when a node dies. ``callbacks``: ``runner.run_episodes``'s."""
    with running_stack(task, arguments, log_dir) as (stack, driver):
        return run_episodes(task, driver, episodes, budgets, tolerances, stop=lambda: _stop_if_dead(stack),
                            **callbacks)


def check_model(task: Task, predictor: str | None) -> str | None:
    """The one line to refuse with when ``task`` ships no model and no predictor is named, else None."""
    return NO_MODEL if not task.model and not predictor else None


def calibrated_tolerance(predictor: str | None) -> float | None:
    """The planning tolerance calibrated with ``predictor`` (None: none named, none stored, or unreadable: the stack
    refuses an unreadable one in one line when it loads it)."""
    from jepa_world_model.checkpoints.bundle import planning_tolerance
    from jepa_world_model.errors import WorldModelError

    try:
        return planning_tolerance(predictor) if predictor else None
    except (WorldModelError, OSError):
        return None


def main(args: argparse.Namespace) -> int:
    """Run `jepa eval`; 2 when the stack cannot start or no model is given (the reason in one line on stderr)."""
    task = get_task(args.task)
    problem = check_model(task, args.predictor)
    if problem:
        print(f"jepa eval: {problem}", file=sys.stderr)
        return 2
    count = task.goal_count(args.goal_images)
    budgets = task.budgets(args.budget, count)
    tolerances = task.tolerances(args.tolerance, count, calibrated_tolerance(args.predictor))
    episodes = task.sample(args.episodes, args.seed)

    def report(record: Any, _driver: Any) -> None:
        print(episode_line(record, len(episodes)), flush=True)

    started = time.monotonic()
    extra: dict[str, Any] = {"tolerance_option": args.tolerance}
    try:
        if args.offline:
            import torch

            from jepa_episodes.offline import run_offline

            torch.set_num_threads(args.threads)
            encoder = args.encoder
            if encoder is None and (args.predictor is not None or not task.model):  # the predictor's own
                encoder = stack_arguments(args)["encoder"]
            overrides = {**({"device": args.device} if args.device else {}), **json.loads(args.settings)}
            records, settings = run_offline(task, episodes, budgets, tolerances, encoder, args.predictor,
                                            overrides, on_episode=report)
            extra.update(planner_settings=settings, torch_threads=torch.get_num_threads())
        else:
            arguments = stack_arguments(args)
            records = run_on_nodes(task, episodes, budgets, tolerances, arguments=arguments, log_dir=args.logs,
                                   on_episode=report)
            extra["launch_arguments"] = arguments
    except StackError as exc:
        print(f"jepa eval: {exc}", file=sys.stderr)
        return 2
    extra["wall_s"] = round(time.monotonic() - started, 1)
    summary = summarise(task, "offline" if args.offline else "nodes", args.seed, args.episodes, count, records,
                        **extra).to_dict()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"{summary_line(summary)} -> {args.json}")
    return 0 if len(records) == args.episodes else 1

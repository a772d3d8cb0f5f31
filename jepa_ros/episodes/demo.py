"""`jepa demo` (what `make demo` runs): the whole stack plays a few episodes of a task on the built-in simulation.

Rules: the episodes are `jepa eval`'s (the same task definitions, runner, node driver and JSON schema); the demo
only adds step-by-step printing and a picture. Writes `artifacts/demo/summary.json` and `artifacts/demo/demo.png`
(per episode: start frame, goal image(s), final frame, energy and task-distance curves).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from jepa_episodes.record import EpisodeRecord, summary_line
from jepa_episodes.runner import summarise
from jepa_episodes.tasks import Task, get_task
from jepa_ros.episodes.evaluation import StackError, add_stack_arguments, run_on_nodes, stack_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa demo`."""
    parser.add_argument("--goals", type=int, default=3, help="number of episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the episodes (default: %(default)s)")
    add_stack_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("artifacts") / "demo",
                        help="output folder (default: %(default)s)")


def save_picture(path: Path, task: Task, episodes: list[dict]) -> None:
    """One row per episode: start, goal image(s) and final frames, then the energy and task-distance curves
    (step 0 is the start)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goals = len(episodes[0]["goals"])
    fig, axes = plt.subplots(len(episodes), goals + 4, figsize=(3 * (goals + 4), 3 * len(episodes)), squeeze=False)
    for row, episode in zip(axes, episodes):
        record: EpisodeRecord = episode["record"]
        titles = ["start"] + [f"goal image {i + 1}" if goals > 1 else "goal image" for i in range(goals)] + \
            [f"final ({100 * record.final_distance:.1f} cm)"]
        for ax, title, image in zip(row, titles, [episode["start"], *episode["goals"], episode["final"]]):
            ax.imshow(image)
            ax.set_title(title)
            ax.axis("off")
        row[-2].plot(range(1, len(record.energies) + 1), record.energies, marker=".")
        row[-2].set(title="energy to goal", xlabel="step")
        row[-1].plot(range(len(record.distances)), [100 * d for d in record.distances], marker=".")
        row[-1].axhline(100 * task.success_radius, color="green", linestyle="--", label="success radius")
        row[-1].set(title=f"{task.name} distance (cm)", xlabel="step")
        row[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Run the demo: `jepa eval`'s episodes through the nodes, printed step by step, plus the picture."""
    from rich.console import Console
    from rich.markup import escape

    from jepa_ros.msg_validation import image_to_array

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    task = get_task(args.task)
    count = task.goal_count(args.goal_images)
    budgets, tolerances = task.budgets(args.budget, count), task.tolerances(0.0, count)
    episodes = task.sample(args.goals, args.seed)
    console.print(f"[bold]jepa demo[/]: {args.goals} {task.name} episodes, {count} goal image(s), "
                  f"{'+'.join(map(str, budgets))} steps; starting nodes ...")
    pictures: list[dict] = []

    def before(index: int, episode: Any, driver: Any) -> None:
        console.print(f"[bold]{task.name} {index + 1}/{len(episodes)}[/]: {task.describe(episode)}")
        pictures.append({"start": driver.camera_image()})

    def on_step(record: EpisodeRecord) -> None:
        console.print(f"  step {record.steps:2d}  energy {record.energies[-1]:.4f}  distance "
                      f"{100 * record.distances[-1]:5.1f} cm  plan {record.plan_ms[-1]:5.0f} ms")

    def on_episode(record: EpisodeRecord, driver: Any) -> None:
        style = "green" if record.success else "red"
        console.print(f"  [{style}]{record.outcome}[/]: final distance {100 * record.final_distance:.1f} cm "
                      f"after {record.steps} steps ({record.reason})")
        pictures[record.index].update(record=record, goals=[image_to_array(g) for g in driver.last_goal_images],
                                      final=driver.camera_image())

    started = time.monotonic()
    try:
        records = run_on_nodes(task, episodes, budgets, tolerances, arguments=stack_arguments(args),
                               log_dir=args.out / "logs", before=before, on_step=on_step, on_episode=on_episode)
    except StackError as exc:
        console.print(f"[bold red]jepa demo[/]: {escape(str(exc))}", highlight=False)
        return 2
    summary = summarise(task, "nodes", args.seed, args.goals, count, records, demo=True,
                        wall_s=round(time.monotonic() - started, 1)).to_dict()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    finished = [p for p in pictures if "record" in p]
    if finished:
        save_picture(args.out / "demo.png", task, finished)
    console.print(f"[bold]{summary['successes']}/{summary['episodes']} succeeded[/] in {summary['extra']['wall_s']} s "
                  f"({summary_line(summary)}) -> {args.out / 'summary.json'}, {args.out / 'demo.png'}")
    return 0 if len(records) == len(episodes) else 1

"""`jepa demo` (what `make demo` runs): the whole stack reaches a few goal images on the built-in simulation.

Writes `artifacts/demo/summary.json` and `artifacts/demo/demo.png` (start, goal and final camera frames of each
goal; energy and distance-to-goal curves). With `--task push` each episode pushes the puck to where its goal
images show it, and the picture shows the start, the goal images and the final frame with the energy and the
puck's distance to its target.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jepa_ros.episodes.evaluation import DEFAULT_BUDGET, SUCCESS_RADIUS, StackError, add_stack_arguments, push_budgets, \
    push_summary, run_episodes, run_push_episodes, sample_push_tasks, sample_targets, stack_arguments, summarise, \
    summary_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa demo`."""
    parser.add_argument("--goals", type=int, default=3, help="number of goal images (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the goal targets (default: %(default)s)")
    add_stack_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("artifacts") / "demo",
                        help="output folder (default: %(default)s)")


def save_picture(path: Path, episodes: list[dict], distance_title: str = "distance to goal (cm)",
                 first_step: int = 1) -> None:
    """One row per episode: start, goal image(s) and final frames, then energy and distance curves (the first
    distance is that of step `first_step`: 1 for reach, 0 = the start for push)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goals = len(episodes[0]["goals"])
    fig, axes = plt.subplots(len(episodes), goals + 4, figsize=(3 * (goals + 4), 3 * len(episodes)), squeeze=False)
    for row, episode in zip(axes, episodes):
        result = episode["result"]
        titles = ["start"] + [f"goal image {i + 1}" if goals > 1 else "goal image" for i in range(goals)] + \
            [f"final ({100 * result.final_distance:.1f} cm)"]
        for ax, title, image in zip(row, titles, [episode["start"], *episode["goals"], episode["final"]]):
            ax.imshow(image)
            ax.set_title(title)
            ax.axis("off")
        row[-2].plot(range(1, len(result.energies) + 1), result.energies, marker=".")
        row[-2].set(title="energy to goal", xlabel="step")
        row[-1].plot(range(first_step, first_step + len(result.distances)), [100 * d for d in result.distances],
                     marker=".")
        row[-1].axhline(100 * SUCCESS_RADIUS, color="green", linestyle="--", label="success radius")
        row[-1].set(title=distance_title, xlabel="step")
        row[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Run the demo: the evaluation loop of `jepa eval`, printed step by step, plus the pictures."""
    from rich.console import Console
    from rich.markup import escape

    from jepa_ros.episodes.reach_client import image_to_array

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    push = args.task == "push"
    budgets = push_budgets(args.budget, args.goal_images) if push else (args.budget or DEFAULT_BUDGET,)
    targets = sample_push_tasks(args.goals, args.seed) if push else sample_targets(args.goals, args.seed)
    what = f"{args.goals} pushes with {args.goal_images} goal image(s), {'+'.join(map(str, budgets))} steps" if push \
        else f"{args.goals} goal images, {budgets[0]} steps each"
    console.print(f"[bold]jepa demo[/]: {what}; starting nodes (sim, perception, planner, controller) ...")
    episodes: list[dict] = []

    def before_episode(index: int, target, client) -> None:
        if push:
            console.print(f"[bold]push {index + 1}/{len(targets)}[/]: puck from "
                          f"({', '.join(f'{v:.2f}' for v in target.object_start)}) to "
                          f"({', '.join(f'{v:.2f}' for v in target.target)}) m, {100 * target.distance:.1f} cm")
            episodes.append({})  # the start frame is the client's once the start is set up
            return
        episodes.append({"start": image_to_array(client.last_image)})
        console.print(f"[bold]goal {index + 1}/{len(targets)}[/]: end effector to "
                      f"({', '.join(f'{v:.2f}' for v in target)}) m")

    def on_step(step: int, energy: float, distance: float, plan_ms: float) -> None:
        console.print(f"  step {step:2d}  energy {energy:.4f}  {'puck to target' if push else 'distance'} "
                      f"{100 * distance:5.1f} cm  plan {plan_ms:5.0f} ms")

    def on_episode(index: int, result, client) -> None:
        style = "green" if result.success else "red"
        if push:
            console.print(f"  [{style}]{'pushed there' if result.success else result.outcome}[/]: puck "
                          f"{100 * result.final_distance:.1f} cm from the target after {result.steps} steps "
                          f"({result.reason})")
        else:
            console.print(f"  [{style}]{'reached' if result.success else 'missed'}[/]: final distance "
                          f"{100 * result.final_distance:.1f} cm after {result.steps} steps ({result.reason})")
        goals = [image_to_array(g) for g in client.last_goal_images] if push else [image_to_array(client.goal_image)]
        episodes[index].update(result=result, goals=goals, final=image_to_array(client.last_image))
        if push:
            episodes[index]["start"] = image_to_array(client.start_image)

    started = time.monotonic()
    try:
        if push:
            results = run_push_episodes(targets, budgets, arguments=stack_arguments(args), log_dir=args.out / "logs",
                                        before_episode=before_episode, on_episode=on_episode, on_step=on_step)
        else:
            results = run_episodes(targets, budgets[0], arguments=stack_arguments(args), log_dir=args.out / "logs",
                                   before_episode=before_episode, on_episode=on_episode, on_step=on_step)
    except StackError as exc:
        console.print(f"[bold red]jepa demo[/]: {escape(str(exc))}", highlight=False)
        return 2
    common = dict(seed=args.seed, budget=sum(budgets), wall_time_s=round(time.monotonic() - started, 1))
    summary = push_summary(results, args.goal_images, **common) if push else \
        summarise(results, task="reach (demo)", **common)
    if push:
        summary["task"] = "push (demo)"
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    finished = [e for e in episodes if "result" in e]
    if finished:
        save_picture(args.out / "demo.png", finished, "puck to target (cm)" if push else "distance to goal (cm)",
                     first_step=0 if push else 1)
    console.print(f"[bold]{summary['successes']}/{summary['episodes']} {'pushes' if push else 'goals'} "
                  f"{'succeeded' if push else 'reached'}[/] in {summary['wall_time_s']} s ({summary_line(summary)}) "
                  f"-> {args.out / 'summary.json'}, {args.out / 'demo.png'}")
    return 0 if len(results) == len(targets) else 1

"""`jepa demo` (what `make demo` runs): the whole stack reaches a few goal images on the built-in simulation.

Writes `artifacts/demo/summary.json` and `artifacts/demo/demo.png` (start, goal and final camera frames of each
goal; energy and distance-to-goal curves).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jepa_ros.evaluation import SUCCESS_RADIUS, add_stack_arguments, run_episodes, sample_targets, \
    stack_arguments, summarise
from jepa_ros.launch_xml import REPO_ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa demo`."""
    parser.add_argument("--goals", type=int, default=3, help="number of goal images")
    parser.add_argument("--seed", type=int, default=7, help="seed of the goal targets")
    add_stack_arguments(parser)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "demo", help="output folder")


def save_picture(path: Path, episodes: list[dict]) -> None:
    """One row per goal: start, goal and final frames, then energy and distance curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(episodes), 5, figsize=(15, 3 * len(episodes)), squeeze=False)
    for row, episode in zip(axes, episodes):
        result = episode["result"]
        for ax, key, title in zip(row[:3], ("start", "goal", "final"), ("start", "goal image", "final")):
            ax.imshow(episode[key])
            ax.set_title(title if key != "final" else f"final ({100 * result.final_distance:.1f} cm)")
            ax.axis("off")
        row[3].plot(range(1, len(result.energies) + 1), result.energies, marker=".")
        row[3].set(title="energy to goal", xlabel="step")
        row[4].plot(range(1, len(result.distances) + 1), [100 * d for d in result.distances], marker=".")
        row[4].axhline(100 * SUCCESS_RADIUS, color="green", linestyle="--", label="success radius")
        row[4].set(title="distance to goal (cm)", xlabel="step")
        row[4].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Run the demo: the evaluation loop of `jepa eval`, printed step by step, plus the pictures."""
    from rich.console import Console

    from jepa_ros.reach_client import image_to_array

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    targets = sample_targets(args.goals, args.seed)
    console.print(f"[bold]jepa demo[/]: {args.goals} goal images, {args.budget} steps each; starting nodes "
                  f"(sim, perception, planner, controller) ...")
    episodes: list[dict] = []

    def before_episode(index: int, target, client) -> None:
        episodes.append({"start": image_to_array(client.last_image)})
        console.print(f"[bold]goal {index + 1}/{len(targets)}[/]: end effector to "
                      f"({', '.join(f'{v:.2f}' for v in target)}) m")

    def on_step(step: int, energy: float, distance: float, plan_ms: float) -> None:
        console.print(f"  step {step:2d}  energy {energy:.4f}  distance {100 * distance:5.1f} cm  "
                      f"plan {plan_ms:5.0f} ms")

    def on_episode(index: int, result, client) -> None:
        style = "green" if result.success else "red"
        console.print(f"  [{style}]{'reached' if result.success else 'missed'}[/]: final distance "
                      f"{100 * result.final_distance:.1f} cm after {result.steps} steps ({result.reason})")
        episodes[index].update(result=result, goal=image_to_array(client.goal_image),
                               final=image_to_array(client.last_image))

    started = time.monotonic()
    results = run_episodes(targets, args.budget, arguments=stack_arguments(args), log_dir=args.out / "logs",
                           before_episode=before_episode, on_episode=on_episode, on_step=on_step)
    summary = summarise(results, task="reach (demo)", seed=args.seed, budget=args.budget,
                        wall_time_s=round(time.monotonic() - started, 1))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    finished = [e for e in episodes if "result" in e]
    if finished:
        save_picture(args.out / "demo.png", finished)
    console.print(f"[bold]{summary['successes']}/{summary['episodes']} goals reached[/] in "
                  f"{summary['wall_time_s']} s -> {args.out / 'summary.json'}, {args.out / 'demo.png'}")
    return 0 if len(results) == len(targets) else 1

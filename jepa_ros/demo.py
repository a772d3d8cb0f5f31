"""`jepa demo` (what `make demo` runs): the whole stack reaches a few goal images on the built-in simulation.

Writes `artifacts/demo/summary.json` and `artifacts/demo/demo.png` (start, goal and final camera frames of each
goal; energy and distance-to-goal curves).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from jepa_ros.evaluation import DEFAULT_BUDGET, SUCCESS_RADIUS, sample_targets, summarise
from jepa_ros.launch_xml import REPO_ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa demo`."""
    parser.add_argument("--goals", type=int, default=3, help="number of goal images")
    parser.add_argument("--seed", type=int, default=7, help="seed of the goal targets")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="control steps allowed per goal")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "demo", help="output folder")
    parser.add_argument("--device", default="cpu", help="torch device of the nodes")


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
    """Run the demo."""
    import rclpy
    from rich.console import Console

    from jepa_ros.reach_client import ReachClient, image_to_array
    from jepa_ros.stack import Stack, isolate_ros_graph

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    targets = sample_targets(args.goals, args.seed)
    console.print(f"[bold]jepa demo[/]: {args.goals} goal images, {args.budget} steps each; "
                  f"ROS_DOMAIN_ID={isolate_ros_graph()}; node logs in {args.out / 'logs'}")
    episodes: list[dict] = []
    started = time.monotonic()
    rclpy.init()
    try:
        with Stack(arguments={"device": args.device}, log_dir=args.out / "logs") as stack:
            client = ReachClient(success_radius=SUCCESS_RADIUS)
            try:
                console.print("starting nodes (sim, perception, planner, controller) ...")
                client.wait_until_ready(timeout=120.0)
                for index, target in enumerate(targets):
                    client.reset_sim()
                    client.arm(True)
                    start = image_to_array(client.last_image)
                    console.print(f"[bold]goal {index + 1}/{len(targets)}[/]: end effector to "
                                  f"({', '.join(f'{v:.2f}' for v in target)}) m")

                    def on_step(step, energy, distance, plan_ms):
                        console.print(f"  step {step:2d}  energy {energy:.4f}  distance {100 * distance:5.1f} cm  "
                                      f"plan {plan_ms:5.0f} ms")

                    result = client.run_episode(target, args.budget, alive=lambda: not stack.dead(),
                                                on_step=on_step)
                    style = "green" if result.success else "red"
                    console.print(f"  [{style}]{'reached' if result.success else 'missed'}[/]: final distance "
                                  f"{100 * result.final_distance:.1f} cm after {result.steps} steps ({result.reason})")
                    episodes.append({"result": result, "start": start, "goal": image_to_array(client.goal_image),
                                     "final": image_to_array(client.last_image)})
                    if stack.dead():
                        console.print(f"[red]{', '.join(stack.dead())} exited[/]; see {args.out / 'logs'}")
                        break
            finally:
                client.close()
    finally:
        rclpy.try_shutdown()
    results = [e["result"] for e in episodes]
    summary = summarise(results, task="reach (demo)", seed=args.seed, budget=args.budget,
                        wall_time_s=round(time.monotonic() - started, 1))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if episodes:
        save_picture(args.out / "demo.png", episodes)
    console.print(f"[bold]{summary['successes']}/{summary['episodes']} goals reached[/] in "
                  f"{summary['wall_time_s']} s -> {args.out / 'summary.json'}, {args.out / 'demo.png'}")
    return 0 if len(episodes) == len(targets) else 1

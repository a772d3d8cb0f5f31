"""`jepa demo` (what `make demo` runs): the whole stack plays a few episodes of a task on the built-in simulation.

Rules: the episodes are `jepa eval`'s (the same task definitions, runner, node driver and JSON schema); the demo
only adds step-by-step printing and pictures. Writes `artifacts/demo/summary.json`, `artifacts/demo/demo.png`
(per episode: start frame, goal image(s), final frame, energy and task-distance curves) and, per episode with a
plan, `artifacts/demo/steps_episode_<index>.png` (`jepa_episodes.pictures`: per plan the camera frame it was made
from | the imagined next frames | the frame the next plan was made from | its goal); summary.json's
``extra.pictures`` names them. The imagined frames are the planner's /jepa/prediction features of each plan's
first steps, decoded in this process by the picture decoder of the model the stack runs (--predictor, else the
task's shipped model); without one (or one of another encoder) that is said in one line and the step pictures have
no imagined column.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from jepa_common import topics
from jepa_episodes.pictures import PlannedStep, step_picture
from jepa_episodes.record import EpisodeRecord, summary_line
from jepa_episodes.runner import summarise
from jepa_episodes.tasks import Task, get_task
from jepa_ros.episodes.evaluation import (StackError, add_stack_arguments, calibrated_tolerance, check_model,
                                         run_on_nodes, stack_arguments)
from jepa_ros.launch_runner.stack import wait_until
from jepa_ros.msg_validation import MessageValidationError, embedding_array, image_to_array

#: imagined next frames per row of a step picture (at most: a plan predicts `horizon` steps)
IMAGINED = 2
#: camera frames kept to find the one a plan was made from (5 s at the sim's 10 Hz)
KEPT_FRAMES = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa demo`."""
    parser.add_argument("--goals", type=int, default=3, help="number of episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the episodes (default: %(default)s)")
    add_stack_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("artifacts") / "demo",
                        help="output folder (default: %(default)s)")


class PlanWatcher:
    """Extra subscriptions on the node driver's node: for each plan (/jepa/prediction) the camera frame it was
    made from (matched by stamp) and the predicted features of its first :data:`IMAGINED` steps, kept until
    :meth:`take`n. Its callbacks run on the driver's executor thread; new subscriptions miss what is published
    before DDS matches them: wait for :meth:`ready` before the first plan."""

    def __init__(self, node: Any) -> None:
        from jepa_msgs.msg import Prediction
        from sensor_msgs.msg import Image

        from jepa_ros.ros_util import reliable_qos, sensor_qos

        self._lock = threading.Lock()
        self._frames: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._seen: list[tuple[np.ndarray | None, np.ndarray, str]] = []
        self._subscriptions = [node.create_subscription(Image, topics.CAMERA, self._on_image, sensor_qos()),
                               node.create_subscription(Prediction, topics.PREDICTION, self._on_prediction,
                                                        reliable_qos(20))]

    def ready(self) -> bool:
        """Both topics' publishers are matched and a camera frame has arrived."""
        return all(s.get_publisher_count() > 0 for s in self._subscriptions) and bool(self._frames)

    def _on_image(self, msg: Any) -> None:
        self._frames[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        while len(self._frames) > KEPT_FRAMES:
            self._frames.popitem(last=False)

    def _on_prediction(self, msg: Any) -> None:
        frame = self._frames.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
        try:
            predicted = np.stack([embedding_array(step) for step in msg.steps[:IMAGINED]])
        except (MessageValidationError, ValueError):
            return
        with self._lock:
            self._seen.append((None if frame is None else image_to_array(frame), predicted, msg.steps[0].model_id))

    def take(self) -> list[tuple[np.ndarray | None, np.ndarray, str]]:
        """(frame planned from or None, predicted features (K, N, D), encoder id) of each plan since the last
        call, in order."""
        with self._lock:
            seen, self._seen = self._seen, []
        return seen


def picture_decoder(source: str) -> tuple[Any | None, str]:
    """(the picture decoder of model ``source``, "") or (None, the one line that says why there is none)."""
    from jepa_world_model.checkpoints.decoder_loading import find_decoder
    from jepa_world_model.errors import WorldModelError

    try:
        decoder = find_decoder(source)
    except (WorldModelError, OSError, RuntimeError) as exc:
        return None, f"cannot read the picture decoder of {source!r} ({exc}): step pictures without imagined frames"
    if decoder is None:
        return None, (f"no picture decoder for {source!r} (`jepa train-decoder` makes one): step pictures without "
                      f"imagined frames")
    return decoder, ""


def planned_steps(seen: list[tuple[np.ndarray | None, np.ndarray, str]], record: EpisodeRecord,
                  goals: list[np.ndarray]) -> list[PlannedStep]:
    """The episode's plans with the goal image each aimed at: the runner's ``record.goal_index`` per plan, in order
    (one feedback per published plan)."""
    indices = record.goal_index or [0]
    aimed = [goals[indices[min(i, len(indices) - 1)]] if goals else None for i in range(len(seen))]
    return [PlannedStep(frame, predicted, goal) for (frame, predicted, _model), goal in zip(seen, aimed)]


def save_picture(path: Path, task: Task, episodes: list[dict]) -> None:
    """One row per episode: start, goal image(s) and final frames, then the energy curve (dotted lines where the
    next goal image is taken up) and the task-distance curve (step 0 is the start)."""
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
        for step, (before, after) in enumerate(zip(record.goal_index, record.goal_index[1:]), start=1):
            if after != before:
                row[-2].axvline(step + 0.5, color="grey", linestyle=":")
        row[-2].set(title="energy to goal image", xlabel="step")
        row[-1].plot(range(len(record.distances)), [100 * d for d in record.distances], marker=".")
        row[-1].axhline(100 * task.success_radius, color="green", linestyle="--", label="success radius")
        row[-1].set(title=f"{task.name} distance (cm)", xlabel="step")
        row[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_step_pictures(out: Path, pictures: list[dict], decoder: Any | None) -> list[str]:
    """``steps_episode_<index>.png`` in ``out`` for each finished episode with a plan; returns the file names."""
    from jepa_world_model.evaluation.pictures import save_png

    names = []
    for episode in pictures:
        record: EpisodeRecord = episode["record"]
        if episode["steps"]:
            name = f"steps_episode_{record.index}.png"
            save_png(step_picture(episode["steps"], episode["final"], IMAGINED, decoder), out / name)
            names.append(name)
    return names


def main(args: argparse.Namespace) -> int:
    """Run the demo: `jepa eval`'s episodes through the nodes, printed step by step, plus the pictures."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    task = get_task(args.task)
    problem = check_model(task, args.predictor)
    if problem:
        console.print(f"[bold red]jepa demo[/]: {escape(problem)}", highlight=False)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    count = task.goal_count(args.goal_images)
    budgets = task.budgets(args.budget, count)
    tolerances = task.tolerances(0.0, count, calibrated_tolerance(args.predictor))
    episodes = task.sample(args.goals, args.seed)
    decoder_source = args.predictor or task.model
    decoder, no_decoder = picture_decoder(decoder_source)
    console.print(f"[bold]jepa demo[/]: {args.goals} {task.name} episodes, {count} goal image(s), "
                  f"{'+'.join(map(str, budgets))} steps; starting nodes ...")
    if no_decoder:
        console.print(escape(no_decoder), highlight=False)
    pictures: list[dict] = []
    watchers: list[PlanWatcher] = []

    def before(index: int, episode: Any, driver: Any) -> None:
        console.print(f"[bold]{task.name} {index + 1}/{len(episodes)}[/]: {task.describe(episode)}")
        if not watchers:
            watchers.append(PlanWatcher(driver.node))
            if not wait_until(watchers[0].ready, 10.0):
                console.print("the step pictures may miss plans: /jepa/prediction or the camera did not connect "
                              "in 10 s", highlight=False)
        watchers[0].take()   # nothing planned before this episode belongs to it
        pictures.append({"start": driver.camera_image()})

    def on_step(record: EpisodeRecord) -> None:
        console.print(f"  step {record.steps:2d}  energy {record.energies[-1]:.4f}  distance "
                      f"{100 * record.distances[-1]:5.1f} cm  plan {record.plan_ms[-1]:5.0f} ms")

    def on_episode(record: EpisodeRecord, driver: Any) -> None:
        style = "green" if record.success else "red"
        console.print(f"  [{style}]{record.outcome}[/]: final distance {100 * record.final_distance:.1f} cm "
                      f"after {record.steps} steps ({record.reason})")
        goals = [image_to_array(g) for g in driver.last_goal_images]
        seen = watchers[0].take()
        pictures[record.index].update(record=record, goals=goals, final=driver.camera_image(),
                                      models={model for _frame, _predicted, model in seen},
                                      steps=planned_steps(seen, record, goals))

    started = time.monotonic()
    try:
        records = run_on_nodes(task, episodes, budgets, tolerances, arguments=stack_arguments(args),
                               log_dir=args.out / "logs", before=before, on_step=on_step, on_episode=on_episode)
    except StackError as exc:
        console.print(f"[bold red]jepa demo[/]: {escape(str(exc))}", highlight=False)
        return 2
    wall_s = round(time.monotonic() - started, 1)
    finished = [p for p in pictures if "record" in p]
    models = set().union(*(p["models"] for p in finished))
    if decoder is not None and models - {decoder.config.encoder_id}:
        console.print(f"the picture decoder of {decoder_source!r} reads encoder {decoder.config.encoder_id}, the "
                      f"stack ran {', '.join(sorted(models))}: step pictures without imagined frames",
                      highlight=False)
        decoder = None
    if finished:
        save_picture(args.out / "demo.png", task, finished)
    steps = save_step_pictures(args.out, finished, decoder)
    names = {"summary": "demo.png" if finished else None, "steps": steps,
             "decoder": None if decoder is None else decoder_source}
    summary = summarise(task, "nodes", args.seed, args.goals, count, records, demo=True, wall_s=wall_s,
                        pictures=names).to_dict()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    written = ", ".join(str(args.out / name) for name in [names["summary"], *steps] if name)
    console.print(f"[bold]{summary['successes']}/{summary['episodes']} succeeded[/] in {wall_s} s "
                  f"({summary_line(summary)}) -> {args.out / 'summary.json'}{', ' + written if written else ''}")
    return 0 if len(records) == len(episodes) else 1

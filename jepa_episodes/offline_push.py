"""Closed-loop goal-image pushing on the built-in simulation without ROS: ArmSim (task "push") + encoder + MPC loop.

The episode protocol is `jepa eval --task push`'s: push tasks come from ``jepa_sim.push.sample_push_task`` with
``np.random.default_rng(seed)`` (puck start and target 5-15 cm apart, the end effector at push height clear of the
puck), the goal images are rendered goal scenes (``jepa_sim.push.goal_images``: "behind" then "target", or only
"target"), and each goal image is one ReachGoal of the planner's MPC loop (`jepa_planner.mpc`) with the push
deployment's settings (``config/planner_push.yaml``) and its own step budget and energy tolerance
(``PUSH_BUDGETS``, ``PUSH_TOLERANCES``): the "target" goal follows the "behind" one however that ended, because
one energy tolerance cannot serve both (the whole scene 7 cm from the final goal image can look as close to it,
in energy, as the end effector 1 cm from the "behind" image). Each control step plans from the current camera frame and
executes the plan's first action as one ``move_ee_by`` step, kept inside the push workspace. Success: the puck's
centre ends within 2 cm of the target; a failure is classified by ``jepa_sim.push.classify``.

Run ``python -m jepa_episodes.offline_push --episodes 20 --seed 0`` (model "push_default": the shipped one).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from jepa_planner.mpc import FINISHED, PLAN, Observation, PlannerSettings
from jepa_episodes.offline_reach import STEP_NS, ReachLoop, load_models
from jepa_common.package_data import config_file
from jepa_common.settings import make_settings

PUSH_MODEL = "push_default"
PLANNER_PUSH_YAML = config_file("planner_push.yaml")
#: control steps per goal image: ("behind", "target") for two images, ("target",) for one
PUSH_BUDGETS = {2: (30, 30), 1: (50,)}
#: energy at or below which a goal image counts as reached, for the shipped model and camera: "behind" (the end
#: effector about 0.7 cm from its pose), "target" (the end effector about 0.6 cm from its pose with the puck at the
#: target, or the puck 3 cm off with the end effector on its pose); see the model's README
PUSH_TOLERANCES = {"behind": 0.05, "target": 0.05}


@dataclass
class PushEpisode:
    """One push episode: the task, per observation the puck's distance to the target (m), the EE and puck
    positions and the observed energy against the current goal; per plan its energy, time and goal index."""

    task: dict
    goal_images: int
    reasons: list[str] = field(default_factory=list)  # how each goal image's ReachGoal ended
    object_distances: list[float] = field(default_factory=list)
    ee_positions: list[list[float]] = field(default_factory=list)
    object_positions: list[list[float]] = field(default_factory=list)
    observed_energies: list[float] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)
    goal_index: list[int] = field(default_factory=list)
    reason: str = ""
    outcome: str = ""
    success: bool = False

    @property
    def final_object_distance(self) -> float:
        """Puck centre to target after the last executed step (m)."""
        return self.object_distances[-1]


def push_settings(**overrides: Any) -> PlannerSettings:
    """The push deployment's planner settings (`config/planner_push.yaml` over the `PlannerSettings` defaults)
    with ``overrides``, in continuous mode (this loop executes each action before it renders the next frame)."""
    values = yaml.safe_load(PLANNER_PUSH_YAML.read_text())["planner_node"]["ros__parameters"] or {}
    values = {k: v for k, v in values.items() if k not in ("encoder", "predictor")}
    return make_settings(PlannerSettings, {**values, "mode": "continuous", **overrides})


def push_box() -> tuple[np.ndarray, np.ndarray]:
    """The push workspace (low, high) the executed end-effector steps are kept in."""
    from jepa_sim.arm_sim import PUSH_WORKSPACE

    return np.asarray(PUSH_WORKSPACE.low), np.asarray(PUSH_WORKSPACE.high)


class PushLoop(ReachLoop):
    """The reach loop's encoder, MPC loop and workspace limit, run on push tasks with goal-scene images."""

    def push(self, sim: Any, task: Any, goal_count: int = 2, budgets: tuple[int, ...] | None = None,
             tolerances: tuple[float, ...] | None = None) -> PushEpisode:
        """Play ``task`` (a ``jepa_sim.push.PushTask``) from its start: one ReachGoal per goal image, in order,
        with its budget (default ``PUSH_BUDGETS``) and tolerance (default ``PUSH_TOLERANCES``)."""
        from jepa_sim.push import GOAL_KINDS, classify, goal_images, start_episode

        start_episode(sim, task)
        kinds = GOAL_KINDS[-goal_count:]
        images = goal_images(sim, task, goal_count)
        budgets = tuple(budgets or PUSH_BUDGETS[goal_count])
        tolerances = tuple(tolerances or (PUSH_TOLERANCES[kind] for kind in kinds))
        episode = PushEpisode(task=task.to_dict(), goal_images=goal_count)
        target = np.asarray(task.target)
        self._now = 0
        for index, (image, budget, tolerance) in enumerate(zip(images, budgets, tolerances)):
            episode.reasons.append(self._reach_one(sim, image, budget, tolerance, target, episode, index))
        self._observe(sim, target, episode)
        episode.reason = episode.reasons[-1]
        episode.outcome = classify(task, np.asarray(episode.object_positions), episode.reason)
        episode.success = episode.outcome == "success"
        return episode

    def _observe(self, sim: Any, target: np.ndarray, episode: PushEpisode) -> None:
        puck = sim.object_position()
        episode.object_positions.append(puck.tolist())
        episode.ee_positions.append(sim.ee_position().tolist())
        episode.object_distances.append(float(np.linalg.norm(puck[:2] - target)))

    def _reach_one(self, sim: Any, image: np.ndarray, budget: int, tolerance: float, target: np.ndarray,
                   episode: PushEpisode, index: int) -> str:
        """One goal image as one ReachGoal; returns how it ended."""
        loop, models = self.loop, self.models
        loop.begin_reach([loop.goal_tensor(self.features(image))], time.monotonic(), budgets=[budget],
                         tolerance=tolerance)
        while True:
            observation = Observation(self.features(sim.render()), self._now, state=sim.ee_position(),
                                      state_names=models.state_names, model_id=models.model_id)
            problem = loop.inputs.offer(observation, self._now)
            if problem:
                raise RuntimeError(f"observation refused: {problem}")
            decision = loop.step(observation, self._now, time.monotonic())
            if decision.kind == FINISHED:
                return decision.outcome.reason
            if decision.kind != PLAN:
                raise RuntimeError(f"the MPC loop did not plan: {decision.message}")
            self._observe(sim, target, episode)
            episode.observed_energies.append(float(decision.energy))
            action = decision.result.actions[0].double().cpu().numpy()
            sim.move_ee_by(self.executed(sim.ee_position(), action))
            episode.energies.append(float(decision.result.energy))
            episode.plan_ms.append(float(decision.result.time_ms))
            episode.goal_index.append(index)
            self._now += STEP_NS


def summarise_push(results: list[PushEpisode]) -> dict:
    """Success rate, object errors, failure classes and planning times of push episodes (JSON-able)."""
    plan_ms = [ms for r in results for ms in r.plan_ms]
    successes = sum(r.success for r in results)
    return {
        "episodes": len(results), "successes": successes,
        "success_rate": successes / len(results) if results else 0.0,
        "median_object_error_cm": 100 * statistics.median(r.final_object_distance for r in results),
        "median_start_distance_cm": 100 * statistics.median(r.object_distances[0] for r in results),
        "goal_images_per_episode": results[0].goal_images if results else None,
        "failures": dict(Counter(r.outcome for r in results if not r.success)),
        "median_steps": statistics.median(len(r.plan_ms) for r in results) if results else None,
        "median_plan_ms": statistics.median(plan_ms) if plan_ms else None,
        "p90_plan_ms": float(np.percentile(plan_ms, 90)) if plan_ms else None,
    }


def evaluate(loop: PushLoop, episodes: int, seed: int = 0, goal_count: int = 2,
             tolerances: tuple[float, ...] | None = None, on_episode: Any = None) -> dict:
    """Run ``episodes`` push episodes (tasks from ``seed``) and return a JSON-able summary."""
    from jepa_sim.arm_sim import ArmSim
    from jepa_sim.push import sample_push_task

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    rng = np.random.default_rng(seed)
    results = []
    started = time.perf_counter()
    with ArmSim(image_size=loop.models.encoder.config.crop_size, task="push") as sim:
        for i in range(episodes):
            result = loop.push(sim, sample_push_task(sim, rng), goal_count, tolerances=tolerances)
            results.append(result)
            if on_episode is not None:
                on_episode(i, result)
    return {"task": "push", "seed": seed, **summarise_push(results), "torch_threads": torch.get_num_threads(),
            "wall_s": time.perf_counter() - started,
            "results": [{**asdict(r), "final_object_distance": r.final_object_distance} for r in results]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options."""
    parser.add_argument("--encoder", default=PUSH_MODEL, help="encoder source (default: the shipped push model)")
    parser.add_argument("--predictor", default=PUSH_MODEL, help="predictor source (default: the shipped push model)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the push tasks")
    parser.add_argument("--goal-images", type=int, choices=(1, 2), default=2,
                        help="2: 'behind the puck' then 'puck at the target'; 1: only the latter")
    parser.add_argument("--tolerances", type=float, nargs="+", default=None,
                        help="energy that counts each goal image as reached (default: PUSH_TOLERANCES)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--settings", default="{}", help="PlannerSettings overrides as JSON")
    parser.add_argument("--json", default=None, help="write the summary here")


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print a one-line summary per episode and the totals."""
    torch.set_num_threads(args.threads)
    encoder, predictor = load_models(args.encoder, args.predictor)
    loop = PushLoop(encoder, predictor, push_settings(**json.loads(args.settings)), push_box())

    def report(i: int, r: PushEpisode) -> None:
        print(f"episode {i}: {'ok  ' if r.success else 'FAIL'} puck {r.final_object_distance * 100:.1f} cm from "
              f"the target (start {r.object_distances[0] * 100:.1f} cm) after {len(r.plan_ms)} steps, "
              f"{r.outcome} ({r.reason}), median plan {statistics.median(r.plan_ms or [0.0]):.1f} ms", flush=True)

    summary = evaluate(loop, args.episodes, args.seed, args.goal_images, args.tolerances, on_episode=report)
    summary["settings"] = asdict(loop.loop.settings)
    print(f"success {summary['successes']}/{summary['episodes']} ({summary['success_rate']:.0%}), median object "
          f"error {summary['median_object_error_cm']:.1f} cm, failures {summary['failures']}, "
          f"median plan {summary['median_plan_ms'] or 0:.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m jepa_episodes.offline_push", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

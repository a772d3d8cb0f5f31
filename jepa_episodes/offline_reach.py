"""Closed-loop goal-image reaching on the built-in simulation without ROS: ArmSim + encoder + the MPC loop.

The episode protocol follows `jepa eval`: goal targets come from ``ArmSim.sample_target`` with
``np.random.default_rng(seed)``, every episode starts from the home pose, the goal image is the arm rendered at the
target, and each episode is one ReachGoal of the planner's MPC loop (`jepa_planner.mpc`, the planner node's
settings and rules): each control step plans from the current camera frame (one context frame, the end-effector
position as state, warm start = the previous plan shifted by a step) and executes the plan's first action as one
``move_ee_by`` control step, shortened like the controller's workspace limit so that the end effector stays in
``workspace_box()`` (the sim's workspace, where the model has training data, grown by ``EE_BOX_MARGIN``). An
episode succeeds when the end effector ends within ``success_radius`` of the target.

Run ``python -m jepa_episodes.offline_reach --episodes 20 --seed 0`` (model "default": the shipped checkpoint).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from jepa_planner.mpc import FINISHED, PLAN, MPCLoop, Observation, PlannerModels, PlannerSettings
from jepa_common.settings import make_settings

SUCCESS_RADIUS = 0.02  # m
DEFAULT_BUDGET = 25  # control steps per episode
STEP_NS = 100_000_000  # one control step (0.1 s) of the episode clock that stamps the observations
EE_BOX_MARGIN = 0.0  # m


@dataclass
class ReachEpisode:
    """One episode: target (m); per observation (before the first step and after each step) the EE distance to
    the target (m) and the observed energy against the goal; per plan its energy and time; how it ended."""

    target: list[float]
    distances: list[float] = field(default_factory=list)
    observed_energies: list[float] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)
    reason: str = ""
    success: bool = False

    @property
    def final_distance(self) -> float:
        """Distance to the target after the last executed step (m)."""
        return self.distances[-1]


def reach_settings(**overrides: Any) -> PlannerSettings:
    """The planner node's settings (`PlannerSettings` defaults) with ``overrides``, in continuous mode: this loop
    executes each action before it renders the next frame, so there is no settle time to wait for."""
    return make_settings(PlannerSettings, {"mode": "continuous", **overrides})


class ReachLoop:
    """Encodes camera images, steps the planner's MPC loop (as the planner node does) and the simulation."""

    def __init__(self, encoder: torch.nn.Module, predictor: Any, settings: PlannerSettings | None = None,
                 ee_box: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if predictor.config.state_dim != 3 or predictor.config.action_dim != 3:
            raise ValueError(f"the sim needs xyz state/action predictors, got state_dim={predictor.config.state_dim}"
                             f" action_dim={predictor.config.action_dim}")
        self.models = PlannerModels(encoder, predictor)
        self.loop = MPCLoop(self.models, settings or reach_settings())
        self.ee_box = ee_box
        self.now_ns = 0   # the camera clock: it runs on across episodes, as a robot's does

    def features(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 image -> (N, D) features."""
        with torch.inference_mode():
            return self.models.encoder(torch.from_numpy(np.ascontiguousarray(image))[None])[0].float().numpy()

    def executed(self, position: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The displacement actually commanded: ``action`` shortened per axis to keep the EE in ``ee_box``."""
        if self.ee_box is None:
            return action
        low, high = self.ee_box
        return np.clip(position + action, np.minimum(low, position), np.maximum(high, position)) - position

    def run(self, sim: Any, target: np.ndarray, budget: int, success_radius: float = SUCCESS_RADIUS,
            tolerance: float = 0.0) -> ReachEpisode:
        """Reach ``target`` from the sim's current pose as one ReachGoal of ``budget`` steps: it ends when an
        observation after a step has energy <= ``tolerance`` against the goal (0: never) or the budget is spent."""
        loop, models = self.loop, self.models
        goal = loop.goal_tensor(self.features(sim.render_goal(target)))
        episode = ReachEpisode(target=[float(v) for v in target])
        loop.begin_reach([goal], time.monotonic(), budgets=[budget], tolerance=tolerance)
        self.now_ns += STEP_NS
        now = self.now_ns
        while True:
            observation = Observation(self.features(sim.render()), now, state=sim.ee_position(),
                                      state_names=models.state_names, model_id=models.model_id)
            problem = loop.inputs.offer(observation, now)
            if problem:
                raise RuntimeError(f"observation refused: {problem}")
            episode.distances.append(float(np.linalg.norm(sim.ee_position() - target)))
            episode.observed_energies.append(loop.energy(observation, goal))
            decision = loop.step(observation, now, time.monotonic())
            if decision.kind == FINISHED:
                episode.reason = decision.outcome.reason
                break
            if decision.kind != PLAN:
                raise RuntimeError(f"the MPC loop did not plan: {decision.message}")
            action = decision.result.actions[0].double().cpu().numpy()
            sim.move_ee_by(self.executed(sim.ee_position(), action))
            episode.energies.append(float(decision.result.energy))
            episode.plan_ms.append(float(decision.result.time_ms))
            now = self.now_ns = now + STEP_NS
        episode.success = episode.final_distance <= success_radius
        return episode


def workspace_box(margin: float = EE_BOX_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The sim's target workspace grown by ``margin`` (m) on every side: (low, high)."""
    from jepa_sim.arm_sim import WORKSPACE

    return np.asarray(WORKSPACE.low) - margin, np.asarray(WORKSPACE.high) + margin


def load_models(encoder: str, predictor: str) -> tuple[torch.nn.Module, Any]:
    """Encoder (layer-normed output, as the predictor was trained on) and predictor, both in eval mode."""
    from jepa_world_model import load_encoder, load_predictor

    return load_encoder(encoder, output_layer_norm=True), load_predictor(predictor)


def evaluate(loop: ReachLoop, episodes: int, seed: int = 0, budget: int = DEFAULT_BUDGET,
             success_radius: float = SUCCESS_RADIUS, tolerance: float = 0.0, image_size: int | None = None,
             on_episode: Any = None) -> dict:
    """Run ``episodes`` reach episodes (targets from ``seed``) and return a JSON-able summary."""
    from jepa_sim.arm_sim import ArmSim

    if episodes < 1 or budget < 1:
        raise ValueError(f"episodes and budget must be >= 1, got episodes={episodes} budget={budget}")
    size = image_size or loop.models.encoder.config.crop_size
    rng = np.random.default_rng(seed)
    results = []
    started = time.perf_counter()
    with ArmSim(image_size=size) as sim:
        for i in range(episodes):
            target = sim.sample_target(rng)
            sim.reset()
            result = loop.run(sim, target, budget, success_radius, tolerance)
            results.append(result)
            if on_episode is not None:
                on_episode(i, result)
    plan_ms = [ms for r in results for ms in r.plan_ms]
    successes = sum(r.success for r in results)
    return {
        "episodes": episodes, "seed": seed, "budget": budget, "success_radius_m": success_radius,
        "tolerance": tolerance, "median_steps": statistics.median(len(r.plan_ms) for r in results),
        "successes": successes, "success_rate": successes / episodes,
        "median_final_distance_m": statistics.median(r.final_distance for r in results),
        "median_plan_ms": statistics.median(plan_ms) if plan_ms else None,
        "p90_plan_ms": float(np.percentile(plan_ms, 90)) if plan_ms else None,
        "torch_threads": torch.get_num_threads(), "wall_s": time.perf_counter() - started,
        "results": [{**asdict(r), "final_distance": r.final_distance} for r in results],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options."""
    parser.add_argument("--encoder", default="default", help="encoder source (default: the shipped sim model)")
    parser.add_argument("--predictor", default="default", help="predictor source (default: the shipped sim model)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the goal targets")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="control steps per episode")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="stop an episode once the observed energy is <= this (0: use the whole budget)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--settings", default="{}",
                        help='PlannerSettings overrides as JSON, e.g. \'{"samples": 128}\' (default: the planner '
                             "node's defaults)")
    parser.add_argument("--ee-margin", type=float, default=EE_BOX_MARGIN,
                        help="keep the EE within the workspace grown by this (m); negative: no limit")
    parser.add_argument("--json", default=None, help="write the summary here")


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print a one-line summary per episode and the totals."""
    torch.set_num_threads(args.threads)
    encoder, predictor = load_models(args.encoder, args.predictor)
    box = workspace_box(args.ee_margin) if args.ee_margin >= 0 else None
    loop = ReachLoop(encoder, predictor, reach_settings(**json.loads(args.settings)), box)

    def report(i: int, r: ReachEpisode) -> None:
        print(f"episode {i}: {'ok  ' if r.success else 'FAIL'} final {r.final_distance * 100:.1f} cm "
              f"(start {r.distances[0] * 100:.1f} cm, min {min(r.distances) * 100:.1f} cm) after "
              f"{len(r.plan_ms)} steps, median plan {statistics.median(r.plan_ms or [0.0]):.1f} ms", flush=True)

    summary = evaluate(loop, args.episodes, args.seed, args.budget, tolerance=args.tolerance, on_episode=report)
    summary["settings"] = asdict(loop.loop.settings)
    print(f"success {summary['successes']}/{summary['episodes']} ({summary['success_rate']:.0%}), median final "
          f"distance {summary['median_final_distance_m'] * 100:.1f} cm, "
          f"median plan {summary['median_plan_ms'] or 0:.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m jepa_episodes.offline_reach", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

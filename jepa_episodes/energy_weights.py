"""`jepa energy-weights`: what an encoder's planning energy weighs, the object against the arm, on rendered scenes.

A goal-image planner can only do a task whose wrong end states are far from the goal in its energy. This measures
that before any closed loop: per episode of the task, the goal scene is rendered, then scenes that differ from it in
one known way, and the planner's energy (L1 of layer-normed features) of each to the goal is reported.

* push (the 3-joint arm): the puck 3 cm short of the target on the push line with the end effector on its goal pose
  (``object_off``), the end effector 5 mm / 3 cm above its goal pose with the puck at the target (``ee_off_5mm``,
  ``ee_off_3cm``), the end effector on its goal pose and the puck never pushed (``not_done``).
* grasp (the Franka): the cube held ``HELD_LOWER`` lower than the goal shows it (``object_off``: cube and hand
  lower, the state one step of lifting before the goal), the hand closed where the goal shows it but the cube
  still on the table (``not_done``: what a planner that matches only the arm ends in).

``object_over_ee`` = mean of energy(object_off) / energy(ee_off_5mm) (push; above 1: a 3 cm error of the object
weighs more than 5 mm of the arm). ``done_before_not_done`` = share of episodes whose ``object_off`` scene is closer
to the goal than ``not_done`` (1: the energy ranks the task's progress above matching the arm alone).
Rules: ROS-free; sims and encoders are the ones the tasks and the planner use; deterministic for a seed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

#: m the "object off" grasp scene holds the cube (and the hand) lower than the goal
HELD_LOWER = 0.05
#: m the "object off" push scene leaves the puck short of the target
PUCK_SHORT = 0.03
TASKS = ("push", "grasp")

Features = Callable[[np.ndarray], torch.Tensor]


def energy(a: torch.Tensor, b: torch.Tensor) -> float:
    """The planner's energy between two (N, D) feature sets."""
    from jepa_world_model.networks.features import l1_energy

    return float(l1_energy(a[None], b)[0])


def push_rows(features: Features, image_size: int, episodes: int, seed: int) -> list[dict[str, float]]:
    """Energies to the goal of the push scenes (module docstring), one row per episode."""
    from jepa_sim.arm_sim import ArmSim
    from jepa_sim.push import goal_scene, sample_push_task

    rows = []
    rng = np.random.default_rng(seed)
    with ArmSim(image_size=image_size, task="push") as sim:
        for _ in range(episodes):
            task = sample_push_task(sim, rng)
            ee, puck = goal_scene(task, "target")
            goal = features(sim.render_goal(ee, puck))
            scenes = {"object_off": (ee, puck - PUCK_SHORT * task.direction),
                      "ee_off_5mm": (ee + np.array([0.0, 0.0, 0.005]), puck),
                      "ee_off_3cm": (ee + np.array([0.0, 0.0, 0.03]), puck),
                      "not_done": (ee, np.asarray(task.object_start))}
            rows.append({name: energy(features(sim.render_goal(*scene)), goal) for name, scene in scenes.items()})
    return rows


def grasp_rows(features: Features, image_size: int, episodes: int, seed: int) -> list[dict[str, float]]:
    """Energies to the goal of the grasp scenes (module docstring), one row per episode."""
    from jepa_episodes.tasks.grasp import GRASP, HELD_BELOW_EE, HOLDING_GRIPPER, grasped_cube
    from jepa_sim.franka_sim import DOWN_EULER, FrankaSim

    rows = []
    with FrankaSim(image_size=image_size) as sim:
        for episode in GRASP.sample(episodes, seed):
            sim.reset(cube_xy=episode.cube_xy, cube_yaw=episode.cube_yaw, target_xy=episode.target_xy)
            euler = (DOWN_EULER[0], DOWN_EULER[1], episode.grasp_yaw)
            lift = np.array([0.0, 0.0, HELD_BELOW_EE])
            held, lower = grasped_cube(episode), grasped_cube(episode) - np.array([0.0, 0.0, HELD_LOWER])
            goal = features(sim.render_goal(held + lift, euler, HOLDING_GRIPPER, held))
            scenes = {"object_off": (lower + lift, euler, HOLDING_GRIPPER, lower),
                      "not_done": (held + lift, euler, HOLDING_GRIPPER, episode.cube_start)}
            rows.append({name: energy(features(sim.render_goal(*scene)), goal) for name, scene in scenes.items()})
    return rows


def energy_weights(encoder: Any, task: str, episodes: int = 10, seed: int = 0) -> dict[str, Any]:
    """The table of the module docstring for ``encoder`` (an Encoder with layer-normed output) on ``task``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    size = encoder.config.crop_size

    @torch.inference_mode()
    def features(image: np.ndarray) -> torch.Tensor:
        return encoder(torch.from_numpy(np.ascontiguousarray(image))[None])[0].float()

    rows = (push_rows if task == "push" else grasp_rows)(features, size, episodes, seed)
    names = list(rows[0])
    table: dict[str, Any] = {"task": task, "episodes": episodes, "seed": seed, "image_size": size,
                             "mean_energy": {name: float(np.mean([r[name] for r in rows])) for name in names},
                             "done_before_not_done": float(np.mean([r["object_off"] < r["not_done"] for r in rows]))}
    if task == "push":
        table["object_over_ee"] = float(np.mean([r["object_off"] / r["ee_off_5mm"] for r in rows]))
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa energy-weights`."""
    parser.add_argument("--encoder", required=True, help="encoder: model name, preset, checkpoint dir (a predictor "
                        "checkpoint's own encoder), official .pt or HF id")
    parser.add_argument("--encoder-override", action="append", default=[], metavar="KEY=VALUE",
                        help="encoder config field to change, repeatable (for example crop_size=128: the scenes "
                        "are rendered at the encoder's crop size)")
    parser.add_argument("--task", choices=TASKS, default="push", help="scenes of this task (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")


def main(args: argparse.Namespace) -> int:
    """Entry point of `jepa energy-weights`: one JSON line on stdout (2 when the encoder cannot be loaded)."""
    from jepa_world_model import load_encoder
    from jepa_world_model.training.overrides import parse_overrides

    if args.episodes < 1:
        print("jepa energy-weights: --episodes must be >= 1", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args.encoder_override, "--encoder-override")
        encoder = load_encoder(args.encoder, **{**overrides, "output_layer_norm": True})
    except (ValueError, OSError) as exc:  # WorldModelError and TrainingError are ValueErrors
        print(f"jepa energy-weights: cannot load encoder {args.encoder!r}: {exc}", file=sys.stderr)
        return 2
    table = {"encoder": args.encoder, "encoder_overrides": overrides, "encoder_id": encoder.model_id,
             **energy_weights(encoder, args.task, args.episodes, args.seed)}
    line = json.dumps(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(line + "\n")
    print(line)
    return 0

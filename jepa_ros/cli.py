"""The `jepa` command: one entry point for people (demo, eval, bench, record, train, model-info, ...)."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module implementing add_arguments/main, one-line help). Modules load lazily so that
# `jepa --help` stays fast and a subcommand only imports what it needs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jepa_ros.episodes.demo", "run the stack on the built-in simulation and write artifacts/demo/"),
    "eval": ("jepa_ros.episodes.evaluation", "closed-loop episodes of a task through the real nodes (--offline: in-process, no ROS)"),
    "bench": ("jepa_episodes.bench", "planner benchmark against the reference CEM"),
    "record": ("jepa_ros.nodes.recorder_node", "record camera, state and commands to MCAP"),
    "pretrain": ("jepa_world_model.training.pretrain", "V-JEPA self-supervised pretraining of the encoder on recordings"),
    "train": ("jepa_world_model.training.train", "train the action-conditioned predictor on recordings"),
    "train-decoder": ("jepa_world_model.training.decoder", "train the picture decoder (features -> RGB, for looking at predictions)"),
    "eval-offline": ("jepa_world_model.evaluation.offline_eval", "held-out rollout error and energy landscape"),
    "energy-weights": ("jepa_episodes.energy_weights", "what an encoder's planning energy weighs: the object against the arm, on rendered task scenes"),
    "model-info": ("jepa_world_model.checkpoints.model_info", "what a checkpoint holds, plus one timed forward pass"),
    "params": ("jepa_ros.params", "every node parameter with its default, unit, range and meaning"),
    "soak": ("jepa_ros.soak.run", "the sim stack under random goals, peer kills and hostile input; every command checked"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    """Build the parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="jepa", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    """Run the `jepa` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 2
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

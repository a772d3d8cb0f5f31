"""`jepa train`: train the action-conditioned predictor on recordings of your robot (frozen encoder).

Loss (V-JEPA 2-AC): teacher-forced L1 between the predictions of frames 1..T-1 and their layer-normed encoder
features, plus autoregressive L1 over ``rollout_steps`` steps fed back from frame 0. AdamW (weight decay 0.04,
none on biases/norms), learning rate warm-up -> hold -> linear decay, gradient clipping, bf16 autocast on CUDA.

Reproducible and resumable: the data order is a pure function of (seed, step) - the concatenation of one seeded
permutation of all clips per epoch, cut into global batches - so a run resumed from a checkpoint (weights,
optimizer, step, RNG states) continues exactly like the uninterrupted run. Multi-GPU/multi-node: start the same
command with ``torchrun``; each of the W ranks takes a contiguous 1/W share of every global batch and gradients
are averaged (DDP), so W ranks x batch/W follow the loss curve of 1 rank x batch.

Outputs in ``--out``: the final checkpoint (model.safetensors + config.json, loadable with ``load_predictor`` /
``load_encoder``), ``checkpoints/step_NNNNNNN/`` (periodic, with ``training_state.pt``), ``metrics.jsonl`` and
``loss_curve.png``. The final checkpoint carries its encoder (the weights for small encoders, always a reference:
source, overrides, model_id) and the planning tolerance calibrated on the data's frames (`jepa_world_model.checkpoints.bundle`),
so `jepa eval --predictor DIR` and the planner need nothing else.

The recipe (:class:`PredictorRecipe`) runs on the shared loop (:mod:`jepa_world_model.training.loop`): this
file supplies the predictor, the batches of cached features and the loss, the loop does the rest.

Defaults: the from-scratch recipe (frozen random encoder "default", a width-96 predictor, 14000 steps of 32
two-frame clips), or ``--recipe finetune`` (continue the shipped sim model). ``held_out`` of the episodes (5 %)
are kept out of training; every run ends with a verdict on them (`training_verdict`): the rollout error against
"no motion", printed, logged (a WARNING when the model is not better) and stored as ``metadata.verdict``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jepa_common.settings import SettingsError, setting, settings_fields
from jepa_common.settings_cli import add_settings_options, settings_values
from jepa_world_model.checkpoints.bundle import encoder_record, include_weights
from jepa_world_model.checkpoints.files import init_weights, save_checkpoint
from jepa_world_model.checkpoints.predictor_loading import load_predictor
from jepa_world_model.config import ActionSpace, StateSpace
from jepa_world_model.data.dataset import ReadOptions, load_episodes, make_clips
from jepa_world_model.data.feature_cache import FeatureCache
from jepa_world_model.networks.encoder import load_encoder
from jepa_world_model.networks.predictor import ACPredictor
from jepa_world_model.training.distributed import Dist, Session, is_main_process, run_command, start_session
from jepa_world_model.training.errors import TrainingError
from jepa_world_model.training.loop import Recipe, StepLoss, run_loop
from jepa_world_model.training.metrics import plot_losses
from jepa_world_model.training.optimizer import make_optimizer
from jepa_world_model.training.overrides import parse_overrides
from jepa_world_model.training.predictor_steps import (ClipRecipeSteps, HeldOut, PredictorLoss, TrainingData,
                                                       planning_tolerance_metadata, verdict_of)
from jepa_world_model.training.run_record import options_record
from jepa_world_model.training.step_checkpoints import set_rng_state
from jepa_world_model.training.verdict import held_out_split

LOG = logging.getLogger(__name__)

#: Architecture of a predictor trained from scratch on the ``predictor`` preset "tiny" (under the
#: ``predictor_overrides``): the shipped sim model's width 96, MLP 384, 4 heads, depth 2 (grid and feature width
#: come from the encoder).
SCRATCH_PREDICTOR = {"width": 96, "mlp_hidden": 384, "num_heads": 4}
#: Named recipes: field values that replace the TrainConfig defaults ("scratch" is the defaults themselves).
#: "finetune" continues the shipped sim model (`--init default` on its encoder) with a short, gentle schedule;
#: "joint" trains a pooled encoder from the tiny preset's random weights with the predictor (`training.joint`).
RECIPES: dict[str, dict[str, Any]] = {
    "scratch": {},
    "finetune": {"init": "default", "steps": 3000, "lr": 3e-4, "start_lr": 3e-5, "warmup": 0.05},
    "joint": {"encoder": "tiny", "steps": 6000, "clip_len": 3, "rollout_steps": 2},
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints; a resume must match it).

    Every documented field is also a `jepa train` option with the same default (``--batch-size`` for batch_size).
    The defaults are the from-scratch recipe (about 30 min of sim play -> a planner-usable model in about 30 min on
    2 CPU cores, see README); ``recipe`` names another set of defaults (:data:`RECIPES`): every field left at
    its default takes the recipe's value, a field given another value keeps it.
    """

    data: list[str]
    out: str
    recipe: str = setting("scratch", "named defaults: scratch (a new predictor on the frozen encoder), "
                          "finetune (continue the shipped sim model: init default, 3000 steps, lr 3e-4) or joint "
                          "(encoder and predictor trained together from pixels: a pooled tiny encoder, 6000 steps of "
                          "3-frame clips); options given explicitly override the recipe", choices=tuple(RECIPES))
    encoder: str = setting("default", "frozen encoder: preset, checkpoint dir, .pt or HF id (default: the shipped "
                           "frozen random encoder, 16 tokens of 64 features for a 64 px image)")
    predictor: str = setting("tiny", "predictor preset or checkpoint when training from scratch (the preset "
                             "'tiny' is trained at width 96, MLP 384, 4 heads unless --predictor-override says "
                             "otherwise)")
    init: str | None = setting(None, "start from this predictor (official .pt or our checkpoint)")
    encoder_overrides: dict = field(default_factory=dict)
    predictor_overrides: dict = field(default_factory=dict)
    steps: int | None = setting(14000, "optimizer steps (global batches)")
    epochs: float | None = setting(None, "passes over the clips (replaces steps when given)")
    batch_size: int = setting(32, "global batch, split across ranks")
    lr: float = setting(1e-3, "peak learning rate")
    start_lr: float = setting(1e-4, "learning rate at the start of warm-up")
    final_lr: float = setting(0.0, "learning rate at the end of the linear decay")
    warmup: float = setting(0.03, "warm-up fraction of the steps", low=0.0, high=1.0)
    decay: float = setting(0.3, "final linear-decay fraction of the steps", low=0.0, high=1.0)
    weight_decay: float = setting(0.04, "AdamW weight decay (none on biases and norms)")
    clip_grad: float = setting(1.0, "gradient-norm clipping threshold")
    clip_len: int = setting(2, "frames per training clip")
    fps: float | None = setting(None, "resample frames to this rate (none: as recorded)", unit="Hz")
    rollout_steps: int = setting(1, "autoregressive steps in the loss")
    change_weight: float = setting(0.0, "weight of each patch's feature change in the L1 loss: a patch counts 1 + "
                                   "this x its change from the frame before / the frame's mean change, so that the "
                                   "few patches that move (the fingers) weigh more; 0: the plain L1 of V-JEPA 2-AC",
                                   low=0.0, high=100.0)
    held_out: float = setting(0.05, "fraction of the episodes kept out of training for the verdict (at least one "
                              "when there are two or more; 0: no verdict)", low=0.0, high=0.5)
    verdict_horizon: int = setting(3, "rollout steps of the held-out verdict", low=1, high=64)
    variance_weight: float = setting(1.0, "joint recipe: weight of the anti-collapse variance hinge (each feature's "
                                     "std over the batch pushed up to 1)", low=0.0, high=1e3)
    covariance_weight: float = setting(0.04, "joint recipe: weight of the anti-collapse covariance penalty (the "
                                       "features decorrelated)", low=0.0, high=1e3)
    sigreg_weight: float = setting(0.0, "joint recipe: weight of the normality term (the batch's features along "
                                   "random directions pulled toward a standard normal, as LeWM's SIGReg; 0: off)",
                                   low=0.0, high=1e3)
    seed: int = setting(0, "seed of the weight init and the data order")
    checkpoint_every: int = setting(100, "steps between checkpoints")
    keep_checkpoints: int = setting(2, "periodic checkpoints kept (older ones are deleted)")
    cache_dir: str | None = setting(None, "feature cache (none: ~/.cache/jepa_ros/features)")
    camera_topic: str | None = setting(ReadOptions.camera_topic, "image topic (none: the only image topic, or "
                                       "/camera/image_raw among several)")
    state_kind: str = setting(ReadOptions.state_kind, "state of the recordings (auto: ee_xyz when a PoseStamped "
                              "topic exists, else joints; ee_pose_gripper: V-JEPA 2-AC's 7-D [x, y, z, roll, pitch, "
                              "yaw, gripper], the gripper from the finger joints of /joint_states, e.g. for `jepa "
                              "record --sim --task grasp` recordings)",
                              choices=("auto", "ee_xyz", "ee_pose", "joints", "ee_pose_gripper"))
    state_topic: str | None = setting(ReadOptions.state_topic, "topic of the state messages (none: by type, "
                                      "/ee_pose and /joint_states preferred)")
    max_state_gap: float = setting(ReadOptions.max_state_gap, "drop frames without state samples this close on "
                                   "both sides", unit="s")
    save_encoder: bool = setting(True, "store the encoder's weights with the predictor (encoders of at most 50 M "
                                 "parameters; larger ones are always stored as a reference: source, overrides "
                                 "and model_id)")
    reach_radius: float = setting(0.01, "planning-tolerance calibration: distance from the goal that counts as "
                                  "reached, on the position state dims (x, y, z; else every state dim)",
                                  unit="state units (m)", low=0.0, high=1e6)
    progress: bool = setting(True, "progress bar")
    torch_threads: int = setting(1, "torch CPU threads of this process (the scratch recipe's small model runs "
                                 "fastest on one, several threads slow it down on a busy machine; 0: torch's "
                                 "default)", low=0)
    device: str = setting("auto", "torch device: auto (cuda:LOCAL_RANK when CUDA is available, else cpu), cpu, "
                          "cuda, cuda:1, ...")

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise TrainingError(f"unknown recipe {self.recipe!r}; known: {sorted(RECIPES)}")
        defaults = {f.name: f.default for f in settings_fields(TrainConfig)}
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) == defaults[name]:
                setattr(self, name, value)
        if self.epochs is not None:
            self.steps = None
        if self.steps is None and self.epochs is None:
            raise TrainingError("give steps or epochs")
        if self.steps is not None and self.steps <= 0:
            raise TrainingError(f"steps must be positive, got {self.steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise TrainingError(f"epochs must be positive, got {self.epochs}")
        if self.batch_size <= 0:
            raise TrainingError(f"batch_size must be positive, got {self.batch_size}")
        if self.rollout_steps < 0 or self.clip_len < max(2, self.rollout_steps + 1):
            raise TrainingError(f"clip_len={self.clip_len} must be >= 2 and > rollout_steps={self.rollout_steps}")
        if not 0 <= self.warmup + self.decay <= 1:
            raise TrainingError(f"warmup ({self.warmup}) + decay ({self.decay}) must be fractions summing to <= 1")
        if not (math.isfinite(self.change_weight) and 0.0 <= self.change_weight <= 100.0):
            raise TrainingError(f"change_weight must be in [0, 100], got {self.change_weight!r}")
        if self.checkpoint_every <= 0 or self.keep_checkpoints <= 0:
            raise TrainingError("checkpoint_every and keep_checkpoints must be positive")

    def read(self) -> ReadOptions:
        """Episode read options."""
        return ReadOptions(camera_topic=self.camera_topic, state_kind=self.state_kind, state_topic=self.state_topic,
                           max_state_gap=self.max_state_gap)


# ------------------------------------------------------------------------------------------------ data
# ----------------------------------------------------------------------------------------------- model


def build_predictor(cfg: TrainConfig, embed_dim: int, grid: int, clip_len: int, action_space: ActionSpace,
                    state_space: StateSpace) -> ACPredictor:
    """A predictor for features of width ``embed_dim`` on a ``grid`` x ``grid`` patch grid.

    From scratch: the ``cfg.predictor`` preset with the data's action/state spaces (normalisation from the
    training set). ``cfg.init``: its weights; when its action/state dims differ from the data's, the action and
    state embeddings are re-initialised and everything else is kept.
    """
    max_steps = max(clip_len, 8)
    if cfg.init is None:
        architecture = SCRATCH_PREDICTOR if cfg.predictor == "tiny" else {}
        return load_predictor(cfg.predictor, **{"embed_dim": embed_dim, "grid_size": (grid, grid),
                                                "max_steps": max_steps, "action_space": action_space,
                                                "state_space": state_space, "seed": cfg.seed,
                                                **architecture, **cfg.predictor_overrides})
    source = load_predictor(cfg.init)
    if source.embed_dim != embed_dim or tuple(source.config.grid_size) != (grid, grid):
        raise TrainingError(f"--init {cfg.init}: predictor expects features of width {source.embed_dim} on a "
                            f"{source.config.grid_size} grid, the encoder gives {embed_dim} on {grid}x{grid}")
    same = source.config.action_dim == action_space.dim and source.config.state_dim == state_space.dim
    if same:
        LOG.info("--init %s: keeping its weights and its action/state normalisation", cfg.init)
        return source
    config = source.config.replace(action_space=action_space, state_space=state_space,
                                   max_steps=max(source.config.max_steps, clip_len))
    predictor = ACPredictor(config)
    init_weights(predictor, cfg.seed)
    own = predictor.state_dict()
    kept = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    predictor.load_state_dict(kept, strict=False)
    LOG.warning("--init %s: action/state dims %d/%d differ from the data's %d/%d; re-initialised %s",
                cfg.init, source.config.action_dim, source.config.state_dim, action_space.dim, state_space.dim,
                sorted(set(own) - set(kept)))
    return predictor


#: Options that change what a run computes; a resume must match them.
RESUME_KEYS = ("data", "encoder", "predictor", "init", "encoder_overrides", "predictor_overrides", "steps", "epochs",
               "batch_size", "lr", "start_lr", "final_lr", "warmup", "decay", "weight_decay", "clip_grad", "clip_len",
               "fps", "rollout_steps", "change_weight", "seed", "camera_topic", "state_kind", "state_topic",
               "max_state_gap", "held_out")


# ------------------------------------------------------------------------------------------------- train
@dataclass
class TrainResult:
    """What a finished run produced."""

    out: Path
    steps: int
    final_loss: float
    losses: list[float]
    episodes: int
    skipped: int
    clips: int
    verdict: dict = field(default_factory=dict)


def prepare_data(cfg: TrainConfig, encoder: nn.Module, ranks: Dist) -> tuple[TrainingData, HeldOut, int]:
    """Read episodes, compute/cache features (rank 0 first), hold out ``cfg.held_out`` of the episodes, build
    the training clips. Returns the training data, the held-out episodes and the skipped count."""
    episodes, skipped = load_episodes(cfg.data, cfg.read())
    if not episodes:
        raise TrainingError(f"no usable episode in {cfg.data} ({len(skipped)} skipped: "
                            f"{[s.reason for s in skipped][:3]})")
    cache = FeatureCache(cfg.cache_dir)
    features = []
    for turn in (0, 1):  # rank 0 fills the cache, then the other ranks read it
        if (turn == 0) == ranks.main:
            features = [cache.features(encoder, e) for e in episodes]
        ranks.barrier()
    kept, held = held_out_split(len(episodes), cfg.held_out, cfg.seed)
    held_out = HeldOut([episodes[i] for i in held], [features[i] for i in held])
    episodes, features = [episodes[i] for i in kept], [features[i] for i in kept]
    clips = make_clips(episodes, cfg.clip_len, cfg.fps)
    if len(clips) == 0:
        raise TrainingError(f"no clip of {cfg.clip_len} frames (fps={cfg.fps}) in {len(episodes)} episodes")
    LOG.info("data: %d episodes (%d skipped, %d held out for the verdict), %d clips of %d frames; feature cache "
             "%d hits, %d misses", len(episodes), len(skipped), len(held), len(clips), cfg.clip_len, cache.hits,
             cache.misses)
    return TrainingData(episodes, features, clips), held_out, len(skipped)


class PredictorRecipe(ClipRecipeSteps, Recipe):
    """The predictor on the frozen encoder's cached features: teacher forcing + rollout L1 (:class:`PredictorLoss`),
    warm-up -> hold -> linear decay, the global RNG states in every checkpoint."""

    command = "train"
    error = TrainingError
    resume_keys = RESUME_KEYS
    state_keys = ("rng",)

    def __init__(self, cfg: TrainConfig, session: Session, encoder: nn.Module, encoder_overrides: dict,
                 predictor: ACPredictor, data: TrainingData, held_out: HeldOut, total: int) -> None:
        super().__init__(cfg, PredictorLoss(predictor, cfg.rollout_steps, cfg.change_weight),
                         make_optimizer(predictor, cfg.lr, cfg.weight_decay), len(data))
        self.cfg: TrainConfig = cfg
        self.session = session
        self.encoder = encoder
        self.predictor = predictor
        self.data = data
        self.held_out = held_out
        self.find_unused_parameters = predictor.config.extrinsics_dim is not None
        self.verdict: dict = {}
        reference = encoder_record(encoder, cfg.encoder, encoder_overrides)
        self.metadata = {"training": options_record(cfg), "encoder_source": reference["source"],
                         "encoder_id": encoder.model_id, "feature_layer_norm": True, "encoder": reference,
                         "state_names": list(data.state_names), "clips": len(data), "total_steps": total}

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> StepLoss:
        loss, tf_loss, ar_loss = model(*batch)
        return StepLoss(loss, torch.stack([loss.detach().float(), tf_loss.float(), ar_loss.float()]))

    def loss_values(self, logged: torch.Tensor) -> dict[str, float]:
        return {"loss": logged[0].item(), "loss_tf": logged[1].item(), "loss_rollout": logged[2].item()}

    def save_models(self, directory: Path, step: int) -> None:
        save_checkpoint(directory, predictor=self.predictor, metadata={**self.metadata, "step": step})

    def load_state(self, checkpoint: Path, state: dict) -> None:
        self.predictor.load_state_dict(load_predictor(checkpoint).state_dict())
        set_rng_state(state["rng"])

    def finish(self, total: int, final_loss: float) -> None:
        """The held-out verdict, then the final checkpoint: the predictor, the encoder's weights when small enough
        and saved, the calibrated planning tolerance and the verdict."""
        cfg, encoder = self.cfg, self.encoder
        self.verdict = verdict_of(cfg, self.predictor, self.held_out)
        with_encoder = cfg.save_encoder and include_weights(encoder)
        save_checkpoint(Path(cfg.out), encoder=encoder if with_encoder else None, predictor=self.predictor.eval(),
                        metadata={**self.metadata, **planning_tolerance_metadata(cfg, self.data), "step": total,
                                  "final_loss": final_loss, "verdict": self.verdict})
        LOG.info("trained %d steps; final loss %.5f; checkpoint in %s (encoder %s)", total, final_loss, cfg.out,
                 "weights included" if with_encoder else f"by reference: {self.metadata['encoder']['source']}")

    def plot(self, rows: list[dict], path: Path) -> None:
        plot_losses(rows, path, (("loss", "total"), ("loss_tf", "teacher forcing"), ("loss_rollout", "rollout")),
                    ylabel="L1 loss")


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Run (or resume) training as configured; returns the summary. Works alone or under torchrun. Uses
    ``cfg.torch_threads`` compute threads while it runs."""
    threads = torch.get_num_threads()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    try:
        return _train(cfg, resume)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, resume: bool) -> TrainResult:
    session = start_session(cfg.device, cfg.batch_size, TrainingError)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    if cfg.recipe == "joint":
        return _train_joint(cfg, session, resume)

    encoder_overrides = {"output_layer_norm": True, **cfg.encoder_overrides}
    encoder = load_encoder(cfg.encoder, **encoder_overrides).to(session.device)
    encoder.requires_grad_(False)
    data, held_out, skipped = prepare_data(cfg, encoder, session.ranks)
    total = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * len(data) / cfg.batch_size))
    grid = encoder.config.token_grid
    predictor = build_predictor(cfg, encoder.embed_dim, grid, cfg.clip_len, data.action_space, data.state_space)
    predictor.to(session.device).train()
    recipe = PredictorRecipe(cfg, session, encoder, encoder_overrides, predictor, data, held_out, total)
    losses = run_loop(recipe, session, total, resume)
    return TrainResult(out=Path(cfg.out), steps=total, final_loss=losses[-1] if losses else float("nan"),
                       losses=losses, episodes=len(data.states), skipped=skipped, clips=len(data),
                       verdict=recipe.verdict)


def _train_joint(cfg: TrainConfig, session: Session, resume: bool) -> TrainResult:
    """The joint recipe (:mod:`jepa_world_model.training.joint`): encoder and predictor from pixels."""
    from jepa_world_model.training.joint import JointRecipe, joint_encoder, prepare_frames

    encoder, overrides = joint_encoder(cfg)
    encoder.to(session.device)
    data, held_out, skipped = prepare_frames(cfg, session.ranks)
    total = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * len(data) / cfg.batch_size))
    predictor = build_predictor(cfg, encoder.embed_dim, encoder.config.token_grid, cfg.clip_len, data.action_space,
                                data.state_space)
    predictor.to(session.device).train()
    recipe = JointRecipe(cfg, session, encoder, overrides, predictor, data, held_out, total, RESUME_KEYS)
    losses = run_loop(recipe, session, total, resume)
    return TrainResult(out=Path(cfg.out), steps=total, final_loss=losses[-1] if losses else float("nan"),
                       losses=losses, episodes=len(data.states), skipped=skipped, clips=len(data),
                       verdict=recipe.verdict)


# -------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa train`: the data, the output folder, the overrides and --resume, then one option per
    documented TrainConfig field (defaults from the dataclass)."""
    parser.add_argument("data", nargs="+", help="MCAP files, rosbag2 bags or directories of them")
    parser.add_argument("--out", required=True, help="output directory (checkpoint, metrics, plots)")
    parser.add_argument("--encoder-override", action="append", default=[], metavar="KEY=VALUE",
                        help="EncoderConfig field for the encoder, e.g. crop_size=32 (repeatable)")
    parser.add_argument("--predictor-override", action="append", default=[], metavar="KEY=VALUE",
                        help="PredictorConfig field for a new predictor, e.g. depth=4 (repeatable; over the "
                             "preset 'tiny' they replace its training architecture "
                             + " ".join(f"{k}={v}" for k, v in SCRATCH_PREDICTOR.items()) + ")")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    add_settings_options(parser, TrainConfig, exclusive=[("steps", "epochs")])


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from parsed `jepa train` options."""
    try:
        values = settings_values(TrainConfig, args)
    except SettingsError as exc:
        raise TrainingError(str(exc)) from exc
    return TrainConfig(data=[str(p) for p in args.data], out=str(args.out),
                       encoder_overrides=parse_overrides(args.encoder_override, "--encoder-override"),
                       predictor_overrides=parse_overrides(args.predictor_override, "--predictor-override"),
                       **values)


def main(args: argparse.Namespace) -> int:
    """Entry point of `jepa train`."""
    result = run_command(lambda: train(config_from_args(args), resume=args.resume),
                         (TrainingError, FileNotFoundError))
    if result is None:
        return 2
    if is_main_process():
        print(json.dumps({"out": str(result.out), "steps": result.steps, "final_loss": round(result.final_loss, 5),
                          "episodes": result.episodes, "skipped": result.skipped, "clips": result.clips,
                          "verdict": {k: round(v, 5) if isinstance(v, float) else v
                                      for k, v in result.verdict.items() if not k.endswith("per_step")}}))
        print(result.verdict.get("summary", ""))
    return 0


if __name__ == "__main__":
    import sys

    parser = argparse.ArgumentParser(prog="python -m jepa_world_model.training.train", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))

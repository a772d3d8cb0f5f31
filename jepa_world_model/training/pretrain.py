"""`jepa pretrain`: V-JEPA self-supervised pretraining of the video encoder on your robot's camera recordings.

Per step, clips of ``clip_len`` frames are masked with 3-D multi-block masks (:mod:`jepa_world_model.training.masks`,
a short-range and a long-range mask per clip); the context encoder sees the visible tokens only, a narrow
predictor (:mod:`jepa_world_model.networks.mask_predictor`) fills in the masked ones, and the loss is the L1 distance to
the layer-normed features of the whole clip under the target encoder, an exponential moving average of the
context encoder (momentum ramped from ``ema_start`` to ``ema_end``). AdamW (no weight decay on biases and
norms), learning-rate warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA. A fraction of the
clips are single frames repeated (``still_fraction``): that is how the perception node feeds the encoder.

The collapse guard (:mod:`jepa_world_model.training.collapse`) logs the target features' spread across the batch and
their effective rank, warns when either falls below its threshold and stops the run when it stays there.

The recipe (:class:`EncoderRecipe`) runs on the shared loop (:mod:`jepa_world_model.training.loop`): this file
supplies the encoders, the mask predictor, the masked clips and the loss, the loop does the rest.

Reproducible and resumable like `jepa train`: the clip order, the still clips and the masks are pure functions
of (seed, step), and a periodic checkpoint holds both encoders, the predictor and the optimizer, so a run
resumed after a kill continues exactly like the uninterrupted one. Under ``torchrun`` every rank draws the masks
of the whole global batch and takes its share, so W ranks x batch/W follow the curve of 1 rank x batch.

Outputs in ``--out``: the target encoder in the project's format (``load_encoder(out)``: `jepa train --encoder`,
the perception node's ``model``, the planner; saved with the affine-free output layer-norm on, i.e. it gives
the features the predictor was trained to predict), ``checkpoints/step_NNNNNNN/``, ``metrics.jsonl`` and
``loss_curve.png``.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from jepa_common.settings import SettingsError, setting
from jepa_common.settings_cli import add_settings_options, settings_values
from jepa_world_model.checkpoints.bundle import encoder_reference
from jepa_world_model.checkpoints.files import load_strictly, save_checkpoint
from jepa_world_model.data.dataset import Episode, ReadOptions, frame_segments, load_episodes, make_clips
from jepa_world_model.errors import WorldModelError
from jepa_world_model.networks.encoder import Encoder, load_encoder
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.networks.mask_predictor import MaskPredictor, encode_visible, gather_tokens
from jepa_world_model.training.collapse import (CollapseError, CollapseGuard, batch_moments, effective_rank,
                                                spread_from_moments)
from jepa_world_model.training.data_order import batch_indices
from jepa_world_model.training.distributed import Dist, Session, is_main_process, run_command, start_session
from jepa_world_model.training.errors import TrainingError
from jepa_world_model.training.loop import Recipe, StepLoss, run_loop
from jepa_world_model.training.masks import MaskBatch, MaskError, MultiBlockMask, vjepa_masks
from jepa_world_model.training.optimizer import make_optimizer
from jepa_world_model.training.overrides import parse_overrides
from jepa_world_model.training.run_record import options_record

LOG = logging.getLogger(__name__)
DEFAULT_EPOCHS = 10.0


class PretrainError(TrainingError):
    """Pretraining cannot start or resume with the given data and options."""


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run (stored in checkpoints; a resume must match it).

    Every documented field is also a `jepa pretrain` option with the same default (``--clip-len`` for clip_len).
    """

    data: list[str]
    out: str
    encoder: str = setting("tiny", "encoder preset of a run from random weights (not used with --init)")
    init: str | None = setting(None, "start from this encoder: an official .pt, a HF id or one of our checkpoints")
    encoder_overrides: dict = field(default_factory=dict)
    predictor_width: int = setting(32, "width of the mask-token predictor (narrower than the encoder)")
    predictor_depth: int = setting(2, "transformer blocks of the predictor")
    predictor_heads: int = setting(2, "attention heads of the predictor")
    steps: int | None = setting(None, "optimizer steps (global batches)")
    epochs: float | None = setting(None, f"passes over the clips ({DEFAULT_EPOCHS:g} when steps are not given)")
    batch_size: int = setting(16, "global batch of clips, split across ranks")
    clip_len: int = setting(4, "frames per clip (a multiple of the encoder's tubelet size)")
    fps: float | None = setting(None, "resample frames to this rate (none: as recorded)", unit="Hz")
    clip_stride: int = setting(1, "frames between the starts of consecutive clips")
    still_fraction: float = setting(0.25, "fraction of clips that repeat one frame (how perception feeds the "
                                    "encoder)", low=0.0, high=1.0)
    lr: float = setting(5e-4, "peak learning rate")
    start_lr: float = setting(1e-4, "learning rate at the start of warm-up")
    final_lr: float = setting(1e-6, "learning rate at the end of the cosine decay")
    warmup: float = setting(0.1, "warm-up fraction of the steps", low=0.0, high=1.0)
    weight_decay: float = setting(0.04, "AdamW weight decay (none on biases and norms)")
    clip_grad: float = setting(1.0, "gradient-norm clipping threshold")
    ema_start: float = setting(0.99, "momentum of the target encoder at the first step", low=0.0, high=1.0)
    ema_end: float = setting(1.0, "momentum of the target encoder at the last step (linear ramp)", low=0.0,
                             high=1.0)
    short_blocks: int = setting(8, "boxes of the short-range mask (0: no short-range mask)")
    short_scale: float = setting(0.15, "area of a short-range box, fraction of the frame", low=0.0, high=1.0)
    long_blocks: int = setting(2, "boxes of the long-range mask (0: no long-range mask)")
    long_scale: float = setting(0.7, "area of a long-range box, fraction of the frame", low=0.0, high=1.0)
    aspect_min: float = setting(0.75, "smallest height/width ratio of a box")
    aspect_max: float = setting(1.5, "largest height/width ratio of a box")
    temporal_scale: float = setting(1.0, "duration of a box, fraction of the clip", low=0.0, high=1.0)
    collapse_std: float = setting(1e-3, "stop when the target features' std across the batch stays below this")
    collapse_rank: float = setting(1.5, "stop when the target features' effective rank stays below this")
    collapse_patience: int = setting(20, "consecutive collapsed steps before stopping")
    seed: int = setting(0, "seed of the weights, the clip order, the still clips and the masks")
    checkpoint_every: int = setting(100, "steps between checkpoints")
    keep_checkpoints: int = setting(2, "periodic checkpoints kept (older ones are deleted)")
    camera_topic: str | None = setting(ReadOptions.camera_topic, "image topic (none: the only image topic, or "
                                       "/camera/image_raw among several)")
    state_topic: str | None = setting(ReadOptions.state_topic, "state topic, only to pair frames as `jepa train` "
                                      "does (none: by type, /ee_pose and /joint_states preferred)")
    progress: bool = setting(True, "progress bar")
    device: str = setting("auto", "torch device: auto (cuda:LOCAL_RANK when CUDA is available, else cpu), cpu, "
                          "cuda, cuda:1, ...")

    def __post_init__(self) -> None:
        if self.steps is None and self.epochs is None:
            self.epochs = DEFAULT_EPOCHS
        if self.steps is not None and self.epochs is not None:
            raise PretrainError("give steps or epochs, not both")
        if self.steps is not None and self.steps <= 0:
            raise PretrainError(f"steps must be positive, got {self.steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise PretrainError(f"epochs must be positive, got {self.epochs}")
        if self.batch_size < 2:
            raise PretrainError(f"batch_size must be at least 2 (the collapse guard needs a spread), got "
                                f"{self.batch_size}")
        if self.clip_len < 2 or self.clip_stride < 1:
            raise PretrainError(f"clip_len must be >= 2 and clip_stride >= 1, got {self.clip_len}, "
                                f"{self.clip_stride}")
        if self.ema_start > self.ema_end:
            raise PretrainError(f"ema_start {self.ema_start} must not exceed ema_end {self.ema_end}")
        if not 0 < self.aspect_min <= self.aspect_max:
            raise PretrainError(f"need 0 < aspect_min <= aspect_max, got {self.aspect_min}, {self.aspect_max}")
        if self.checkpoint_every <= 0 or self.keep_checkpoints <= 0 or self.collapse_patience <= 0:
            raise PretrainError("checkpoint_every, keep_checkpoints and collapse_patience must be positive")

    def read(self) -> ReadOptions:
        """Episode read options."""
        return ReadOptions(camera_topic=self.camera_topic, state_topic=self.state_topic)


#: Options that change what a run computes; a resume must match them.
RESUME_KEYS = ("data", "encoder", "init", "encoder_overrides", "predictor_width", "predictor_depth",
               "predictor_heads", "steps", "epochs", "batch_size", "clip_len", "fps", "clip_stride", "still_fraction",
               "lr", "start_lr", "final_lr", "warmup", "weight_decay", "clip_grad", "ema_start", "ema_end",
               "short_blocks", "short_scale", "long_blocks", "long_scale", "aspect_min", "aspect_max",
               "temporal_scale", "seed", "camera_topic", "state_topic")


# ------------------------------------------------------------------------------------------------ data
class ClipData:
    """Camera frames of the episodes and the clips cut from them."""

    def __init__(self, episodes: list[Episode], clip_len: int, fps: float | None, stride: int) -> None:
        self.frames = [e.frames for e in episodes]
        self.clips = make_clips(episodes, clip_len, fps, stride)
        if len(self.clips) == 0:
            longest = max(len(s) for e in episodes for s in frame_segments(e.stamps, fps))
            raise PretrainError(f"no clip of {clip_len} frames in {len(episodes)} episode(s): the longest run of "
                                f"consecutive frames{'' if fps is None else f' at {fps:g} Hz'} is {longest}; "
                                f"record longer episodes or lower --clip-len")

    def __len__(self) -> int:
        return len(self.clips)

    def batch(self, indices: np.ndarray, still: np.ndarray) -> torch.Tensor:
        """uint8 clips (B, T, H, W, 3) of clips ``indices``; where ``still`` is true, the first frame repeated."""
        out = []
        for i, frozen in zip(indices, still):
            frames = self.frames[int(self.clips.episode[i])][self.clips.frames[i]]
            out.append(np.repeat(frames[:1], len(frames), axis=0) if frozen else frames)
        return torch.from_numpy(np.ascontiguousarray(np.stack(out)))


def load_clip_data(cfg: PretrainConfig, tubelet: int) -> tuple[ClipData, int]:
    """Episodes' camera frames and clips; raises :class:`PretrainError` with the reasons when none is usable."""
    if cfg.clip_len % tubelet:
        raise PretrainError(f"clip_len {cfg.clip_len} is not a multiple of the encoder's tubelet size {tubelet}")
    episodes, skipped = load_episodes(cfg.data, cfg.read())
    if not episodes:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:3])
        raise PretrainError(f"no usable recording in {cfg.data} ({len(skipped)} skipped: {reasons})")
    data = ClipData(episodes, cfg.clip_len, cfg.fps, cfg.clip_stride)
    LOG.info("data: %d episodes (%d skipped), %d clips of %d frames", len(episodes), len(skipped), len(data),
             cfg.clip_len)
    return data, len(skipped)


def step_randomness(cfg: PretrainConfig, step: int, masks: tuple[MultiBlockMask, ...]
                    ) -> tuple[np.ndarray, list[MaskBatch]]:
    """The still-clip flags (global batch,) and one :class:`MaskBatch` per mask kind of global batch ``step``."""
    still = np.random.default_rng([cfg.seed, step, 0]).random(cfg.batch_size) < cfg.still_fraction
    batches = [m.sample(np.random.default_rng([cfg.seed, step, 1 + k]), cfg.batch_size) for k, m in enumerate(masks)]
    return still, batches


# ----------------------------------------------------------------------------------------------- model
class MaskedPrediction(nn.Module):
    """Context encoder + predictor; the L1 loss of one batch over all mask kinds (what DDP wraps)."""

    def __init__(self, encoder: Encoder, predictor: MaskPredictor) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, pixels: torch.Tensor, targets: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]],
                grid: tuple[int, int, int]) -> torch.Tensor:
        """Normalised pixels (B,3,T,H,W), layer-normed target features (B,N,D), (context, target) indices per
        mask kind -> the loss of each kind (K,)."""
        losses = []
        for kind, (context, target) in enumerate(masks):
            features = encode_visible(self.encoder, pixels, context)
            pred = self.predictor(features, context, target, grid, kind)
            losses.append((pred.float() - gather_tokens(targets, target)).abs().mean())
        return torch.stack(losses)


def learning_rate(cfg: PretrainConfig, step: int, total: int) -> float:
    """Linear warm-up start_lr -> lr, then cosine decay lr -> final_lr."""
    warm = int(round(cfg.warmup * total))
    if step < warm:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * step / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1.0 + math.cos(math.pi * progress))


def ema_momentum(cfg: PretrainConfig, step: int, total: int) -> float:
    """Target-encoder momentum at ``step``: linear from ema_start to ema_end over the run."""
    return cfg.ema_start + (cfg.ema_end - cfg.ema_start) * step / max(1, total - 1)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    t_params, o_params = list(target.parameters()), list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)


def build_encoder(cfg: PretrainConfig) -> Encoder:
    """The context encoder: ``cfg.init``'s weights, else the ``cfg.encoder`` preset seeded by ``cfg.seed``; the
    output layer-norm is off (the loss applies it to the targets)."""
    overrides = {**cfg.encoder_overrides, "output_layer_norm": False}
    if cfg.init is not None:
        return load_encoder(cfg.init, **overrides)
    return load_encoder(cfg.encoder, seed=cfg.seed, **overrides)


def exported(encoder: Encoder) -> Encoder:
    """A copy of ``encoder`` (shared weights) whose output is layer-normed: what the predictor learnt to predict."""
    with torch.device("meta"):
        out = Encoder(encoder.config.replace(output_layer_norm=True))
    load_strictly(out, {k: v.detach().cpu() for k, v in encoder.state_dict().items()}, "encoder")
    return out.eval()


def plot_curves(rows: list[dict], path: Path) -> None:
    """Loss (log scale) and the collapse numbers against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax.plot(steps, [r["loss"] for r in rows], label="total")
    for key in sorted(k for k in (rows[0] if rows else {}) if k.startswith("loss_")):
        ax.plot(steps, [r[key] for r in rows], label=key[5:], alpha=0.7)
    ax.set(xlabel="step", ylabel="L1 loss", yscale="log")
    ax.legend()
    ax2.plot(steps, [r["feature_std"] for r in rows], label="feature std across batch")
    ax2.plot(steps, [r["effective_rank"] for r in rows], label="effective rank")
    ax2.set(xlabel="step", yscale="log")
    ax2.legend()
    for a in (ax, ax2):
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- train
@dataclass
class PretrainResult:
    """What a finished run produced."""

    out: Path
    steps: int
    final_loss: float
    losses: list[float]
    episodes: int
    skipped: int
    clips: int


def collapse_numbers(targets: torch.Tensor, ranks: Dist) -> tuple[float, float]:
    """(std across the global batch, effective rank averaged over ranks) of the target features (B, N, D)."""
    moments = batch_moments(targets)
    rank = torch.tensor([effective_rank(targets)], dtype=torch.float64)
    count = targets.shape[0]
    if ranks.world > 1:
        moments, rank = moments.to(targets.device), rank.to(targets.device)
        dist.all_reduce(moments)
        dist.all_reduce(rank)
        rank /= ranks.world
        count *= ranks.world
    return spread_from_moments(moments.cpu(), count), float(rank)


@dataclass
class PretrainBatch:
    """This rank's share of one global batch: normalised pixels and (context, target) token indices per mask kind."""

    pixels: torch.Tensor
    index: list[tuple[torch.Tensor, torch.Tensor]]


class EncoderRecipe(Recipe):
    """The encoder by masked prediction in feature space against its EMA target: :class:`MaskedPrediction`,
    warm-up -> cosine decay, the EMA update after each step and the collapse guard on the target features."""

    command = "pretrain"
    error = PretrainError
    resume_keys = RESUME_KEYS
    state_keys = ("context_encoder",)
    progress_fields = {"loss": ("loss", ".4f"), "std": ("feature_std", ".3f"), "rank": ("effective_rank", ".1f")}

    def __init__(self, cfg: PretrainConfig, session: Session, online: Encoder, data: ClipData, total: int) -> None:
        grid = (cfg.clip_len // online.config.tubelet_size, online.config.grid_size, online.config.grid_size)
        masks = vjepa_masks(grid, cfg.short_blocks, cfg.short_scale, cfg.long_blocks, cfg.long_scale,
                            (cfg.aspect_min, cfg.aspect_max), cfg.temporal_scale)
        target = copy.deepcopy(online).requires_grad_(False).eval()
        predictor = MaskPredictor(online.embed_dim, cfg.predictor_width, cfg.predictor_depth, cfg.predictor_heads,
                                  len(masks), seed=cfg.seed + 1).to(session.device).train()
        module = MaskedPrediction(online, predictor)
        super().__init__(cfg, module, make_optimizer(module, cfg.lr, cfg.weight_decay), len(data))
        self.cfg: PretrainConfig = cfg
        self.session = session
        self.online, self.target, self.predictor = online, target, predictor
        self.data = data
        self.grid = grid
        self.masks = masks
        self.guard = CollapseGuard(cfg.collapse_std, cfg.collapse_rank, cfg.collapse_patience)
        self.names = [name for name, blocks in (("short", cfg.short_blocks), ("long", cfg.long_blocks)) if blocks]
        self.metadata = {"pretraining": options_record(cfg),
                         "encoder_source": encoder_reference(cfg.init) if cfg.init else cfg.encoder,
                         "exported": "target_encoder",
                         "clips": len(data), "total_steps": total, "feature_layer_norm": True}

    def learning_rate(self, step: int, total: int) -> float:
        return learning_rate(self.cfg, step, total)

    def batch(self, step: int) -> PretrainBatch:
        mine, device = self.session.mine, self.session.device
        still, mask_batches = step_randomness(self.cfg, step, self.masks)
        indices = batch_indices(step, self.cfg.batch_size, len(self.data), self.cfg.seed)[mine]
        pixels = self.online.preprocess(self.data.batch(indices, still[mine]).to(device))
        index = [(torch.from_numpy(b.context[mine]).to(device), torch.from_numpy(b.target[mine]).to(device))
                 for b in mask_batches]
        return PretrainBatch(pixels, index)

    def loss(self, model: nn.Module, batch: PretrainBatch) -> StepLoss:
        with torch.no_grad():
            targets = layer_norm_features(self.target.encode_pixels(batch.pixels).float())
        kind_losses = model(batch.pixels, targets, batch.index, self.grid)
        return StepLoss(kind_losses.mean(), kind_losses.detach().float(), targets)

    def loss_values(self, logged: torch.Tensor) -> dict[str, float]:
        return {"loss": logged.mean().item(), **{f"loss_{n}": v.item() for n, v in zip(self.names, logged)}}

    def after_update(self, step: int, total: int) -> dict[str, float]:
        momentum = ema_momentum(self.cfg, step, total)
        ema_update(self.target, self.online, momentum)
        return {"ema": momentum}

    def observe(self, result: StepLoss) -> dict[str, float]:
        std, rank = collapse_numbers(result.targets, self.session.ranks)
        return {"feature_std": std, "effective_rank": rank}

    def check(self, step: int, row: dict) -> None:
        self.guard.update(step, row["feature_std"], row["effective_rank"])

    def save_models(self, directory: Path, step: int) -> None:
        save_checkpoint(directory, encoder=exported(self.target), metadata={**self.metadata, "step": step})

    def state(self, step: int, total: int) -> dict:
        cpu = lambda module: {k: v.detach().cpu() for k, v in module.state_dict().items()}  # noqa: E731
        return {"context_encoder": cpu(self.online), "target_encoder": cpu(self.target),
                "predictor": cpu(self.predictor), "collapse_below": self.guard.below}

    def load_state(self, checkpoint: Path, state: dict) -> None:
        self.online.load_state_dict(state["context_encoder"])
        self.target.load_state_dict(state["target_encoder"])
        self.predictor.load_state_dict(state["predictor"])
        self.guard.below = int(state["collapse_below"])

    def finish(self, total: int, final_loss: float) -> None:
        """The target encoder, layer-normed output on, as the run's checkpoint."""
        save_checkpoint(Path(self.cfg.out), encoder=exported(self.target),
                        metadata={**self.metadata, "step": total, "final_loss": final_loss})
        LOG.info("pretrained %d steps; final loss %.5f; encoder in %s", total, final_loss, self.cfg.out)

    def plot(self, rows: list[dict], path: Path) -> None:
        plot_curves(rows, path)


def pretrain(cfg: PretrainConfig, resume: bool = False) -> PretrainResult:
    """Run (or resume) pretraining as configured; returns the summary. Works alone or under torchrun."""
    session = start_session(cfg.device, cfg.batch_size, PretrainError)
    online = build_encoder(cfg).to(session.device).train()
    data, skipped = load_clip_data(cfg, online.config.tubelet_size)
    total = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * len(data) / cfg.batch_size))
    losses = run_loop(EncoderRecipe(cfg, session, online, data, total), session, total, resume)
    return PretrainResult(out=Path(cfg.out), steps=total, final_loss=losses[-1] if losses else float("nan"),
                          losses=losses, episodes=len(data.frames), skipped=skipped, clips=len(data))


# -------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa pretrain`: the data, the output folder, encoder overrides and --resume, then one option per
    documented PretrainConfig field (defaults from the dataclass)."""
    parser.add_argument("data", nargs="+", help="MCAP files, rosbag2 bags or directories of them")
    parser.add_argument("--out", required=True, help="output directory (encoder checkpoint, metrics, plots)")
    parser.add_argument("--encoder-override", action="append", default=[], metavar="KEY=VALUE",
                        help="EncoderConfig field, e.g. crop_size=32 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    add_settings_options(parser, PretrainConfig, exclusive=[("steps", "epochs")])


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """PretrainConfig from parsed `jepa pretrain` options."""
    try:
        values = settings_values(PretrainConfig, args)
    except SettingsError as exc:
        raise PretrainError(str(exc)) from exc
    return PretrainConfig(data=[str(p) for p in args.data], out=str(args.out),
                          encoder_overrides=parse_overrides(args.encoder_override, "--encoder-override"), **values)


def main(args: argparse.Namespace) -> int:
    """Entry point of `jepa pretrain`."""
    result = run_command(lambda: pretrain(config_from_args(args), resume=args.resume),
                         (TrainingError, MaskError, CollapseError, WorldModelError, FileNotFoundError))
    if result is None:
        return 2
    if is_main_process():
        print(json.dumps({"out": str(result.out), "steps": result.steps, "final_loss": result.final_loss,
                          "episodes": result.episodes, "skipped": result.skipped, "clips": result.clips}))
    return 0


if __name__ == "__main__":
    import sys

    parser = argparse.ArgumentParser(prog="python -m jepa_world_model.training.pretrain", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))

"""`jepa train-decoder`: train the picture decoder (`jepa_world_model.networks.decoder`) on recordings, the
encoder frozen, so that predicted features can be looked at as pictures.

Visualisation only: the decoder never enters planning or predictor training. Data: every frame of the recordings,
its layer-normed encoder features (the feature cache of `jepa train`) and, as the target, the encoder's input
crop of the frame. Loss: L1 on the pixels plus ``mse_weight`` x MSE; a little Gaussian noise on the features
(``feature_noise``, seeded by (seed, step)) makes the decoder tolerant of the predictor's imperfect features.
AdamW, warm-up then cosine decay, on the shared loop (:mod:`jepa_world_model.training.loop`), resumable.

``held_out`` of the episodes (seeded) are kept out of training; the run ends with the verdict on their frames: the
mean PSNR (dB, per frame, peak 255) of the decoded pictures against the frames, next to the "mean frame" baseline
(the mean training frame), printed last and stored as ``metadata.verdict`` of the decoder checkpoint in ``--out``
(`load_decoder(out)`; copy it to ``<model dir>/decoder/`` to ship it with a model).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jepa_common.settings import SettingsError, setting
from jepa_common.settings_cli import add_settings_options, settings_values
from jepa_world_model.checkpoints.bundle import encoder_record, predictor_encoder
from jepa_world_model.checkpoints.decoder_loading import find_decoder, save_decoder
from jepa_world_model.data.dataset import ReadOptions, load_episodes
from jepa_world_model.data.feature_cache import FeatureCache
from jepa_world_model.errors import WorldModelError
from jepa_world_model.networks.decoder import DecoderConfig, FeatureDecoder, encoder_crop, psnr
from jepa_world_model.networks.encoder import Encoder, load_encoder
from jepa_world_model.training.data_order import batch_indices
from jepa_world_model.training.distributed import Session, is_main_process, run_command, start_session
from jepa_world_model.training.errors import TrainingError
from jepa_world_model.training.loop import Recipe, StepLoss, run_loop
from jepa_world_model.training.metrics import plot_losses
from jepa_world_model.training.optimizer import make_optimizer
from jepa_world_model.training.run_record import options_record
from jepa_world_model.training.verdict import held_out_split

LOG = logging.getLogger(__name__)

#: Held-out frames the verdict decodes at most (seeded draw).
VERDICT_FRAMES = 2048


class DecoderTrainingError(TrainingError):
    """`jepa train-decoder` cannot start or resume with the given data and options."""


@dataclass
class DecoderTrainConfig:
    """Everything that defines a decoder training run (stored in its checkpoints; a resume must match it). Every
    documented field is a `jepa train-decoder` option with the same default."""

    data: list[str]
    out: str
    encoder: str | None = setting(None, "frozen encoder whose features are decoded: preset, checkpoint dir or "
                                  "shipped name (none: the encoder of --model, else 'default')")
    model: str | None = setting(None, "decode the features of this model's encoder (a shipped name such as "
                                "push_default or a checkpoint made by `jepa train`); instead of --encoder")
    steps: int = setting(3000, "optimizer steps", low=1, high=10_000_000)
    batch_size: int = setting(32, "frames per global batch, split across ranks", low=1, high=65536)
    lr: float = setting(2e-3, "peak learning rate", low=0.0, high=1.0)
    warmup: float = setting(0.05, "warm-up fraction of the steps (then cosine decay to zero)", low=0.0, high=1.0)
    weight_decay: float = setting(0.01, "AdamW weight decay (none on biases)", low=0.0, high=10.0)
    clip_grad: float = setting(1.0, "gradient-norm clipping threshold")
    mse_weight: float = setting(0.1, "weight of the pixel MSE added to the L1 loss", low=0.0, high=100.0)
    feature_noise: float = setting(0.05, "std of the Gaussian noise added to the (layer-normed) features while "
                                   "training", low=0.0, high=10.0)
    hidden: int = setting(DecoderConfig.hidden, "width of the decoder's token stage", low=1, high=65536)
    channels: int = setting(DecoderConfig.channels, "values per pixel made by the decoder's token head",
                            low=3, high=256)
    conv_width: int = setting(DecoderConfig.conv_width, "width of the full-resolution smoothing convolutions",
                              low=1, high=256)
    depth: int = setting(DecoderConfig.depth, "full-resolution 3x3 convolutions", low=1, high=16)
    held_out: float = setting(0.05, "fraction of the episodes kept out of training for the PSNR verdict (at least "
                              "one when there are two or more; 0: no verdict)", low=0.0, high=0.5)
    seed: int = setting(0, "seed of the weight init, the held-out split, the data order and the feature noise")
    checkpoint_every: int = setting(500, "steps between checkpoints", low=1, high=10_000_000)
    keep_checkpoints: int = setting(1, "periodic checkpoints kept (older ones are deleted)", low=1, high=1000)
    cache_dir: str | None = setting(None, "feature cache (none: ~/.cache/jepa_ros/features)")
    camera_topic: str | None = setting(None, "image topic (none: the only image topic, or /camera/image_raw "
                                       "among several)")
    progress: bool = setting(True, "progress bar")
    torch_threads: int = setting(1, "torch CPU threads of this process (0: torch's default)", low=0, high=1024)
    device: str = setting("auto", "torch device: auto (cuda:LOCAL_RANK when CUDA is available, else cpu), cpu, "
                          "cuda, cuda:1, ...")

    def __post_init__(self) -> None:
        if self.encoder is not None and self.model is not None:
            raise DecoderTrainingError("give --encoder or --model, not both")

    def sizes(self) -> dict:
        """The decoder's size options, as DecoderConfig fields."""
        return {"hidden": self.hidden, "channels": self.channels, "conv_width": self.conv_width,
                "depth": self.depth}


#: Options that change what a run computes; a resume must match them.
RESUME_KEYS = ("data", "encoder", "model", "steps", "batch_size", "lr", "warmup", "weight_decay", "clip_grad",
               "mse_weight", "feature_noise", "hidden", "channels", "conv_width", "depth", "held_out", "seed",
               "camera_topic")


# ------------------------------------------------------------------------------------------------ data
@dataclass
class Frames:
    """Features (M, N, D) float32 and target crops (M, H, W, 3) uint8 of a set of frames."""

    features: np.ndarray
    targets: np.ndarray
    episodes: int

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, N, D) and targets (B, 3, H, W) in [0, 1] of frames ``indices``."""
        features = torch.from_numpy(self.features[indices])
        targets = torch.from_numpy(self.targets[indices]).permute(0, 3, 1, 2).float() / 255.0
        return features, targets


def frame_sets(cfg: DecoderTrainConfig, encoder: Encoder, main: bool) -> tuple[Frames, Frames]:
    """(training, held-out) frames of the recordings: features from the feature cache, crops as targets."""
    episodes, skipped = load_episodes(cfg.data, ReadOptions(camera_topic=cfg.camera_topic))
    if not episodes:
        raise DecoderTrainingError(f"no usable episode in {cfg.data} ({len(skipped)} skipped: "
                                   f"{[s.reason for s in skipped][:3]})")
    cache = FeatureCache(cfg.cache_dir)
    kept, held = held_out_split(len(episodes), cfg.held_out, cfg.seed)

    def gather(indices: list[int]) -> Frames:
        chosen = [episodes[i] for i in indices]
        if not chosen:
            empty = np.zeros((0, encoder.num_tokens(), encoder.embed_dim), np.float32)
            return Frames(empty, np.zeros((0,) + (encoder.config.crop_size,) * 2 + (3,), np.uint8), 0)
        features = np.concatenate([np.asarray(cache.features(encoder, e), dtype=np.float32) for e in chosen])
        targets = np.concatenate([encoder_crop(e.frames, encoder.config) for e in chosen])
        return Frames(features, targets, len(chosen))

    training, held_out = gather(kept), gather(held)
    if main:
        LOG.info("data: %d episodes (%d skipped), %d training frames, %d held-out frames of %d episodes; feature "
                 "cache %d hits, %d misses", len(episodes), len(skipped), len(training), len(held_out), len(held),
                 cache.hits, cache.misses)
    return training, held_out


def load_frozen_encoder(cfg: DecoderTrainConfig) -> tuple[Encoder, dict]:
    """The encoder whose features are decoded (layer-normed output, no gradients) and its metadata reference."""
    if cfg.model is not None:
        reference = predictor_encoder(cfg.model)
        source, overrides = reference.source, dict(reference.overrides)
        encoder = reference.load()
    else:
        source, overrides = cfg.encoder or "default", {"output_layer_norm": True}
        encoder = load_encoder(source, **overrides)
    encoder.requires_grad_(False)
    return encoder.eval(), encoder_record(encoder, source, overrides)


# ---------------------------------------------------------------------------------------------- recipe
def learning_rate(cfg: DecoderTrainConfig, step: int, total: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to zero."""
    warm = int(round(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def decoder_verdict(decoder: FeatureDecoder, held_out: Frames, mean_frame: np.ndarray, seed: int,
                    batch_size: int = 256) -> dict:
    """Mean PSNR of the decoded held-out frames (at most :data:`VERDICT_FRAMES`, seeded) and of the mean training
    frame against them; empty when there are no held-out frames."""
    if len(held_out) == 0:
        return {}
    index = np.arange(len(held_out))
    if len(index) > VERDICT_FRAMES:
        index = np.sort(np.random.default_rng([seed, 11]).choice(index, VERDICT_FRAMES, replace=False))
    decoded = np.concatenate([decoder.decode_images(held_out.features[index[i:i + batch_size]])
                              for i in range(0, len(index), batch_size)])
    targets = held_out.targets[index]
    ours = float(psnr(decoded, targets).mean())
    baseline = float(psnr(np.broadcast_to(mean_frame, targets.shape), targets).mean())
    verdict = {"psnr_db": ours, "mean_frame_psnr_db": baseline, "better_than_mean_frame": ours > baseline,
               "frames": int(len(index)), "held_out_episodes": held_out.episodes}
    verdict["summary"] = (f"verdict: held-out PSNR {ours:.2f} dB of the decoded frames vs {baseline:.2f} dB of the "
                          f"mean frame ({len(index)} frames of {held_out.episodes} held-out episodes)")
    return verdict


class DecoderLoss(nn.Module):
    """L1 + ``mse_weight`` x MSE between the decoded features and the target pixels (what DDP wraps)."""

    def __init__(self, decoder: FeatureDecoder, mse_weight: float) -> None:
        super().__init__()
        self.decoder = decoder
        self.mse_weight = mse_weight

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(loss, l1, mse) of one batch."""
        pixels = self.decoder(features).float()
        l1 = (pixels - targets).abs().mean()
        mse = ((pixels - targets) ** 2).mean()
        return l1 + self.mse_weight * mse, l1.detach(), mse.detach()


class DecoderRecipe(Recipe):
    """The picture decoder on the frozen encoder's cached features (see the module docstring)."""

    command = "train-decoder"
    error = DecoderTrainingError
    resume_keys = RESUME_KEYS
    state_keys = ("decoder_config",)
    progress_fields = {"loss": ("loss", ".4f"), "l1": ("l1", ".4f")}

    def __init__(self, cfg: DecoderTrainConfig, session: Session, decoder: FeatureDecoder, training: Frames,
                 held_out: Frames, encoder_reference: dict) -> None:
        super().__init__(cfg, DecoderLoss(decoder, cfg.mse_weight), make_optimizer(decoder, cfg.lr, cfg.weight_decay),
                         len(training))
        self.cfg: DecoderTrainConfig = cfg
        self.session = session
        self.decoder = decoder
        self.training = training
        self.held_out = held_out
        self.mean_frame = training.targets.mean(axis=0).round().astype(np.uint8)
        self.verdict: dict = {}
        self.metadata = {"training": options_record(cfg), "encoder": encoder_reference,
                         "encoder_id": decoder.encoder_id, "frames": len(training), "total_steps": cfg.steps}

    def learning_rate(self, step: int, total: int) -> float:
        return learning_rate(self.cfg, step, total)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        indices = batch_indices(step, cfg.batch_size, len(self.training), cfg.seed)[self.session.mine]
        features, targets = self.training.batch(indices)
        if cfg.feature_noise > 0:
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            features = features + cfg.feature_noise * torch.randn(features.shape, generator=generator)
        return features.to(self.session.device), targets.to(self.session.device)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> StepLoss:
        loss, l1, mse = model(*batch)
        return StepLoss(loss, torch.stack([loss.detach().float(), l1.float(), mse.float()]))

    def loss_values(self, logged: torch.Tensor) -> dict[str, float]:
        return {"loss": logged[0].item(), "l1": logged[1].item(), "mse": logged[2].item()}

    def save_models(self, directory: Path, step: int) -> None:
        save_decoder(directory, self.decoder, {**self.metadata, "step": step})

    def state(self, step: int, total: int) -> dict:
        return {"decoder_config": self.decoder.config.to_dict()}

    def load_state(self, checkpoint: Path, state: dict) -> None:
        found = find_decoder(checkpoint)
        if found is None or found.config != self.decoder.config:
            raise self.error(f"cannot resume from {checkpoint}: its decoder differs from this run's")
        self.decoder.load_state_dict(found.state_dict())

    def finish(self, total: int, final_loss: float) -> None:
        """The held-out verdict, then the final decoder checkpoint in ``out`` with it."""
        self.decoder.eval()
        self.verdict = decoder_verdict(self.decoder, self.held_out, self.mean_frame, self.cfg.seed)
        if self.verdict:
            (LOG.info if self.verdict["better_than_mean_frame"] else LOG.warning)("%s", self.verdict["summary"])
        save_decoder(Path(self.cfg.out), self.decoder, {**self.metadata, "step": total, "final_loss": final_loss,
                                                        "verdict": self.verdict})
        LOG.info("trained %d steps; final loss %.5f; decoder in %s", total, final_loss, self.cfg.out)

    def plot(self, rows: list[dict], path: Path) -> None:
        plot_losses(rows, path, (("loss", "total"), ("l1", "pixel L1"), ("mse", "pixel MSE")))


# ----------------------------------------------------------------------------------------------- train
@dataclass
class DecoderTrainResult:
    """What a finished run produced."""

    out: Path
    steps: int
    final_loss: float
    losses: list[float]
    frames: int
    verdict: dict = field(default_factory=dict)


def train_decoder(cfg: DecoderTrainConfig, resume: bool = False) -> DecoderTrainResult:
    """Run (or resume) a decoder training as configured; uses ``cfg.torch_threads`` threads while it runs."""
    threads = torch.get_num_threads()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    try:
        session = start_session(cfg.device, cfg.batch_size, DecoderTrainingError)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        encoder, reference = load_frozen_encoder(cfg)
        training, held_out = frame_sets(cfg, encoder, session.ranks.main)
        if len(training) == 0:
            raise DecoderTrainingError(f"no training frame left in {cfg.data} after holding out {cfg.held_out}")
        decoder = FeatureDecoder(DecoderConfig.for_encoder(encoder, **cfg.sizes()))
        decoder.to(session.device).train()
        recipe = DecoderRecipe(cfg, session, decoder, training, held_out, reference)
        losses = run_loop(recipe, session, cfg.steps, resume)
    finally:
        torch.set_num_threads(threads)
    return DecoderTrainResult(Path(cfg.out), cfg.steps, losses[-1] if losses else float("nan"), losses,
                              len(training), recipe.verdict)


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa train-decoder`: the data, the output folder, --resume and one option per documented
    DecoderTrainConfig field."""
    parser.add_argument("data", nargs="+", help="MCAP files, rosbag2 bags or directories of them")
    parser.add_argument("--out", required=True, help="output directory (decoder checkpoint, metrics, plot)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    add_settings_options(parser, DecoderTrainConfig, exclusive=[("encoder", "model")])


def config_from_args(args: argparse.Namespace) -> DecoderTrainConfig:
    """DecoderTrainConfig from parsed `jepa train-decoder` options."""
    try:
        values = settings_values(DecoderTrainConfig, args)
    except SettingsError as exc:
        raise DecoderTrainingError(str(exc)) from exc
    return DecoderTrainConfig(data=[str(p) for p in args.data], out=str(args.out), **values)


def main(args: argparse.Namespace) -> int:
    """Entry point of `jepa train-decoder`."""
    result = run_command(lambda: train_decoder(config_from_args(args), resume=args.resume),
                         (TrainingError, WorldModelError, FileNotFoundError))
    if result is None:
        return 2
    if is_main_process():
        verdict = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.verdict.items() if k != "summary"}
        print(json.dumps({"out": str(result.out), "steps": result.steps, "final_loss": round(result.final_loss, 5),
                          "frames": result.frames, "verdict": verdict}))
        print(result.verdict.get("summary", "verdict: none (no held-out episode)"))
    return 0

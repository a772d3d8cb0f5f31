"""`jepa train --recipe joint`: the encoder and the action-conditioned predictor trained together from pixels.

Why: the frozen random encoder of the other recipes weighs what it sees by area, so the planning energy is ruled
by the arm (docs/RESULTS.md, "What the planning energy weighs"). This recipe trains a pooled encoder (one feature
vector per frame, ``EncoderConfig.pooled_dim``, default :data:`POOLED_DIM`) with the predictor, so that the features
hold what the actions and the scene make predictable, each factor with a share of the variance.

Loss: the predictor's teacher-forced + rollout L1 on layer-normed features (`jepa train`'s ``PredictorLoss``) plus an
anti-collapse term on the batch's layer-normed features, VICReg's (Bardes et al., 2022): ``variance_weight`` x the
mean hinge max(0, 1 - std) of each feature over the batch and ``covariance_weight`` x the summed squared
off-diagonal covariances / D. Without it every frame could map to one vector that every prediction matches.
``sigreg_weight`` adds a normality term in the spirit of LeWM's SIGReg (the recipe is the project's own): the
batch's features projected on random unit directions are compared with a standard normal through the empirical
characteristic function (an Epps-Pulley statistic); unlike the per-feature variance hinge it also penalises
clusters of frames that share one vector.
Gradients reach the encoder through the predictions and their targets (no EMA copy, no stop-gradient).

Rules: frames are held in memory (uint8; ``TrainingData.features`` holds them); each frame is encoded alone (a
single image fills one tubelet, as the perception node encodes); the final checkpoint carries the trained encoder's
weights, the planning tolerance calibrated on its features and the held-out verdict, as `jepa train`'s does, so the
planner and `jepa eval` take it as they take any other. The options are `jepa train`'s (:class:`TrainConfig`);
this file supplies the data, the loss and the checkpoints.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from jepa_world_model.checkpoints.bundle import encoder_record
from jepa_world_model.checkpoints.files import save_checkpoint
from jepa_world_model.checkpoints.predictor_loading import load_predictor
from jepa_world_model.data.dataset import Episode, load_episodes, make_clips
from jepa_world_model.networks.encoder import Encoder, load_encoder
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.networks.predictor import ACPredictor
from jepa_world_model.training.distributed import Session
from jepa_world_model.training.errors import TrainingError
from jepa_world_model.training.loop import Recipe, StepLoss
from jepa_world_model.training.metrics import plot_losses
from jepa_world_model.training.optimizer import make_optimizer
from jepa_world_model.training.predictor_steps import (ClipRecipeSteps, HeldOut, PredictorLoss, TrainingData,
                                                       planning_tolerance_metadata, verdict_of)
from jepa_world_model.training.run_record import options_record
from jepa_world_model.training.step_checkpoints import set_rng_state
from jepa_world_model.training.verdict import held_out_split

LOG = logging.getLogger(__name__)

#: feature width of the joint recipe's pooled encoder unless ``--encoder-override pooled_dim=N`` says otherwise
POOLED_DIM = 32
#: frames encoded per forward pass when features of whole episodes are computed (verdict, calibration)
ENCODE_BATCH = 256
#: normality term: random directions per step and the points t at which the characteristic functions are compared
SIGREG_DIRECTIONS = 64
SIGREG_POINTS = torch.linspace(0.25, 4.0, 16)


def anti_collapse(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's variance hinge and covariance penalty of features (M, D): (mean of max(0, 1 - std_d), sum of the
    squared off-diagonal covariances / D)."""
    x = features.float()
    x = x - x.mean(dim=0)
    variance = torch.relu(1.0 - torch.sqrt(x.var(dim=0) + 1e-4)).mean()
    cov = x.T @ x / max(1, len(x) - 1)
    covariance = (cov.square().sum() - cov.diagonal().square().sum()) / x.shape[1]
    return variance, covariance


def normality_gap(features: torch.Tensor, directions: int = SIGREG_DIRECTIONS) -> torch.Tensor:
    """Mean over random unit directions of the weighted squared distance between the empirical characteristic
    function of the features (M, D) projected on the direction and that of a standard normal, at
    :data:`SIGREG_POINTS` (0 for normal projections; positive for clusters or a collapse)."""
    x = features.float()
    unit = torch.randn(x.shape[1], directions, device=x.device)
    projected = x @ (unit / unit.norm(dim=0))                            # (M, K)
    t = SIGREG_POINTS.to(x.device)
    normal = torch.exp(-t.square() / 2)            # a standard normal's characteristic function, also the weight
    angles = projected[..., None] * t                                  # (M, K, P)
    gap = (angles.cos().mean(0) - normal).square() + angles.sin().mean(0).square()
    return (gap * normal).sum(-1).mean()


def encode_frames(encoder: Encoder, frames: torch.Tensor) -> torch.Tensor:
    """Frames (B, T, H, W, 3) -> layer-normed features (B, T, N, D), each frame encoded alone."""
    b, t = frames.shape[:2]
    features = layer_norm_features(encoder(frames.flatten(0, 1)))
    return features.reshape(b, t, *features.shape[1:])


class JointLoss(nn.Module):
    """The predictor's loss on the encoder's features of the clip's frames, plus the anti-collapse term (what
    DDP wraps: the encoder and the predictor are both trained)."""

    def __init__(self, encoder: Encoder, prediction: nn.Module, variance_weight: float,
                 covariance_weight: float, sigreg_weight: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.prediction = prediction
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.sigreg_weight = sigreg_weight

    def forward(self, frames: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> (loss, teacher-forcing L1, rollout L1, variance hinge, covariance penalty, normality gap)."""
        features = encode_frames(self.encoder, frames)
        loss, tf_loss, ar_loss = self.prediction(features, actions, states)
        flat = features.flatten(0, -2)
        variance, covariance = anti_collapse(flat)
        gap = normality_gap(flat) if self.sigreg_weight else torch.zeros((), device=flat.device)
        total = loss + self.variance_weight * variance + self.covariance_weight * covariance + self.sigreg_weight * gap
        return total, tf_loss, ar_loss, variance.detach(), covariance.detach(), gap.detach()


@torch.inference_mode()
def episode_features(encoder: Encoder, frames: Sequence[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """Layer-normed features (T, N, D) of each episode's frames (T, H, W, 3), float32 on the CPU."""
    was_training = encoder.training
    encoder.eval()
    out = []
    for episode in frames:
        chunks = [layer_norm_features(encoder(torch.from_numpy(episode[i:i + ENCODE_BATCH]).to(device)))
                  for i in range(0, len(episode), ENCODE_BATCH)]
        out.append(torch.cat(chunks).float().cpu().numpy())
    encoder.train(was_training)
    return out


def prepare_frames(cfg, ranks) -> tuple[TrainingData, list[Episode], int]:
    """Read the episodes, hold out ``cfg.held_out`` of them, build the training clips: (data, held out, skipped)."""
    episodes, skipped = load_episodes(cfg.data, cfg.read())
    if not episodes:
        raise TrainingError(f"no usable episode in {cfg.data} ({len(skipped)} skipped: "
                            f"{[s.reason for s in skipped][:3]})")
    kept, held = held_out_split(len(episodes), cfg.held_out, cfg.seed)
    clips = make_clips([episodes[i] for i in kept], cfg.clip_len, cfg.fps)
    if len(clips) == 0:
        raise TrainingError(f"no clip of {cfg.clip_len} frames (fps={cfg.fps}) in {len(kept)} episodes")
    LOG.info("data: %d episodes (%d skipped, %d held out for the verdict), %d clips of %d frames, frames in memory",
             len(kept), len(skipped), len(held), len(clips), cfg.clip_len)
    training = [episodes[i] for i in kept]
    data = TrainingData(training, [e.frames for e in training], clips, dtype=np.uint8)
    return data, [episodes[i] for i in held], len(skipped)


def joint_encoder(cfg) -> tuple[Encoder, dict]:
    """The encoder to train (``cfg.encoder`` with the overrides; pooled at :data:`POOLED_DIM` unless they say
    otherwise, layer-normed output) and the overrides it was built with."""
    overrides = {"pooled_dim": POOLED_DIM, **cfg.encoder_overrides, "output_layer_norm": True}
    if not overrides["pooled_dim"]:
        LOG.warning("joint recipe with pooled_dim=0: the encoder keeps one feature vector per patch")
    encoder = load_encoder(cfg.encoder, seed=cfg.seed, **overrides)
    return encoder.requires_grad_(True).train(), overrides


class JointRecipe(ClipRecipeSteps, Recipe):
    """Encoder and predictor on the shared loop: :class:`JointLoss`, `jepa train`'s schedule, periodic checkpoints
    with both models, and at the end the verdict and tolerance on the trained encoder's features."""

    command = "train"
    error = TrainingError
    state_keys = ("rng",)
    progress_fields = {"loss": ("loss", ".4f"), "var": ("variance", ".3f")}

    def __init__(self, cfg, session: Session, encoder: Encoder, encoder_overrides: dict, predictor: ACPredictor,
                 data: TrainingData, held_out: list[Episode], total: int, resume_keys: tuple[str, ...]) -> None:
        module = JointLoss(encoder, PredictorLoss(predictor, cfg.rollout_steps, cfg.change_weight),
                           cfg.variance_weight, cfg.covariance_weight, cfg.sigreg_weight)
        super().__init__(cfg, module, make_optimizer(module, cfg.lr, cfg.weight_decay), len(data))
        self.resume_keys = resume_keys + ("variance_weight", "covariance_weight", "sigreg_weight")
        self.session = session
        self.encoder = encoder
        self.predictor = predictor
        self.data = data
        self.held_out = held_out
        self.verdict: dict = {}
        record = encoder_record(encoder, cfg.encoder, encoder_overrides)
        self.metadata = {"training": options_record(cfg), "encoder_source": "trained jointly (weights included)",
                         "feature_layer_norm": True, "encoder": {**record, "trained": True},
                         "state_names": list(data.state_names), "clips": len(data), "total_steps": total}

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepLoss:
        loss, tf_loss, ar_loss, variance, covariance, gap = model(*batch)
        logged = torch.stack([loss.detach().float(), tf_loss.float(), ar_loss.float(), variance, covariance, gap])
        return StepLoss(loss, logged)

    def loss_values(self, logged: torch.Tensor) -> dict[str, float]:
        names = ("loss", "loss_tf", "loss_rollout", "variance", "covariance", "normality_gap")
        return {name: value.item() for name, value in zip(names, logged)}

    def save_models(self, directory: Path, step: int) -> None:
        save_checkpoint(directory, encoder=self.encoder, predictor=self.predictor,
                        metadata={**self.metadata, "encoder_id": self.encoder.model_id, "step": step})

    def load_state(self, checkpoint: Path, state: dict) -> None:
        self.predictor.load_state_dict(load_predictor(checkpoint).state_dict())
        self.encoder.load_state_dict(load_encoder(checkpoint).state_dict())
        set_rng_state(state["rng"])

    def finish(self, total: int, final_loss: float) -> None:
        """The held-out verdict and the planning tolerance on the trained encoder's features, then the final
        checkpoint with both models."""
        cfg, device = self.cfg, self.session.device
        self.predictor.eval()
        held = HeldOut(self.held_out, episode_features(self.encoder, [e.frames for e in self.held_out], device))
        self.verdict = verdict_of(cfg, self.predictor, held)
        trained = SimpleNamespace(features=episode_features(self.encoder, self.data.features, device),
                                  states=self.data.states, state_names=self.data.state_names)
        self.encoder.eval()
        save_checkpoint(Path(cfg.out), encoder=self.encoder, predictor=self.predictor,
                        metadata={**self.metadata, **planning_tolerance_metadata(cfg, trained),
                                  "encoder_id": self.encoder.model_id, "step": total, "final_loss": final_loss,
                                  "verdict": self.verdict})
        LOG.info("trained encoder and predictor %d steps; final loss %.5f; checkpoint in %s", total, final_loss,
                 cfg.out)

    def plot(self, rows: list[dict], path: Path) -> None:
        plot_losses(rows, path, (("loss", "total"), ("loss_tf", "teacher forcing"), ("loss_rollout", "rollout"),
                                 ("variance", "variance hinge")), ylabel="loss")


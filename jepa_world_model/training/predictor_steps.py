"""The predictor's side of training, shared by `jepa train`'s recipes (the frozen-encoder ones in ``train`` and the
joint one in ``joint``): its loss (teacher forcing + rollout L1 on layer-normed features), the learning-rate schedule,
the clips it trains on (``TrainingData``), the held-out verdict and the planning-tolerance metadata of a final
checkpoint.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from jepa_world_model.checkpoints.bundle import INDISTINCT_SHARE, INDISTINCT_WARN, calibrate_tolerance
from jepa_world_model.actions import state_differences
from jepa_world_model.data.dataset import Clips, Episode, space_statistics
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.networks.predictor import ACPredictor
from jepa_world_model.training.data_order import batch_indices
from jepa_world_model.training.step_checkpoints import rng_state
from jepa_world_model.training.verdict import format_verdict, held_out_verdict

LOG = logging.getLogger(__name__)


class TrainingData:
    """Per-frame arrays, states and clips of the training episodes: the cached features (float32) of the frozen-
    encoder recipes, or the frames themselves (uint8, ``dtype=np.uint8``) of the joint recipe."""

    def __init__(self, episodes: list[Episode], features: list[np.ndarray], clips: Clips,
                 dtype: type = np.float32) -> None:
        self.features = features
        self.dtype = dtype
        self.states = [e.states for e in episodes]
        self.state_names = episodes[0].state_names
        self.clips = clips
        self.action_space, self.state_space = space_statistics(episodes, clips)

    def __len__(self) -> int:
        return len(self.clips)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features (B,T,N,D) (or frames (B,T,H,W,3)), actions (B,T-1,A) and states (B,T,S) of the clips
        ``indices``."""
        feats, actions, states = [], [], []
        for i in indices:
            episode, frames = int(self.clips.episode[i]), self.clips.frames[i]
            s = self.states[episode][frames]
            feats.append(np.asarray(self.features[episode][frames], dtype=self.dtype))
            states.append(s)
            actions.append(state_differences(s, self.state_names))
        as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays).astype(np.float32))  # noqa: E731
        return torch.from_numpy(np.stack(feats)), as_tensor(actions), as_tensor(states)


class PredictorLoss(nn.Module):
    """Teacher-forcing L1 + autoregressive rollout L1 of an :class:`ACPredictor` (what DDP wraps).

    ``change_weight`` > 0 weights each patch of a target frame by 1 + ``change_weight`` x (its feature change from
    the frame before / the mean change over the frame's patches), normalised to a weighted mean: the few patches
    that move (a gripper's fingers) count more than the many that do not. 0 is the plain L1 of V-JEPA 2-AC.
    """

    def __init__(self, predictor: ACPredictor, rollout_steps: int, change_weight: float = 0.0):
        super().__init__()
        self.predictor = predictor
        self.rollout_steps = rollout_steps
        self.change_weight = change_weight

    def forward(self, features: torch.Tensor, actions: torch.Tensor, states: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """features (B,T,N,D) layer-normed, actions (B,T-1,A), states (B,T,S) -> (loss, tf, rollout)."""
        target = features[:, 1:]
        weights = self._patch_weights(features)
        pred = layer_norm_features(self.predictor(features[:, :-1], actions, states[:, :-1]))
        tf_loss = _l1(pred.float() - target, weights)
        if self.rollout_steps == 0:
            return tf_loss, tf_loss.detach(), torch.zeros((), device=features.device)
        frames = features[:, :1]
        for n in range(1, self.rollout_steps + 1):
            nxt = self.predictor(frames, actions[:, :n], states[:, :n])[:, -1:]
            frames = torch.cat([frames, layer_norm_features(nxt).to(frames.dtype)], dim=1)
        steps = self.rollout_steps
        rollout_loss = _l1(frames[:, 1:].float() - target[:, :steps], None if weights is None else weights[:, :steps])
        return tf_loss + rollout_loss, tf_loss.detach(), rollout_loss.detach()

    def _patch_weights(self, features: torch.Tensor) -> torch.Tensor | None:
        """(B, T-1, N, 1) weights of the target frames' patches, or None for the plain L1."""
        if not self.change_weight:
            return None
        frames = features.detach().float()
        change = (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=-1, keepdim=True)
        return 1.0 + self.change_weight * change / change.mean(dim=2, keepdim=True).clamp(min=1e-6)


def _l1(error: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean absolute error, weighted per patch when ``weights`` are given."""
    if weights is None:
        return error.abs().mean()
    return (error.abs() * weights).mean() / weights.mean()


def learning_rate(cfg: Any, step: int, total: int) -> float:
    """Warm-up (start_lr -> lr), hold, linear decay (lr -> final_lr) over the last ``decay`` fraction."""
    warm = int(round(cfg.warmup * total))
    decay_start = total - int(round(cfg.decay * total))
    if step < warm:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * step / warm
    if step < decay_start:
        return cfg.lr
    return cfg.lr + (cfg.final_lr - cfg.lr) * (step - decay_start) / max(1, total - decay_start)


@dataclass
class HeldOut:
    """The episodes kept out of training for the verdict, with their features."""

    episodes: list[Episode]
    features: list[np.ndarray]


def planning_tolerance_metadata(cfg: Any, data: Any) -> dict:
    """The calibrated planning tolerance of the training data's features (see `bundle.calibrate_tolerance`), or
    {} with a warning when the data has too few frame pairs near `reach_radius`."""
    calibrated = calibrate_tolerance(data.features, data.states, data.state_names, cfg.reach_radius, seed=cfg.seed)
    if calibrated is None:
        LOG.warning("no planning tolerance calibrated: too few frame pairs %g-%g apart in the data; the planner "
                    "will need default_tolerance", cfg.reach_radius, 2 * cfg.reach_radius)
        return {}
    LOG.info("planning tolerance %.4g (%s)", calibrated["planning_tolerance"],
             calibrated["planning_tolerance_calibration"]["method"])
    indistinct = calibrated["planning_tolerance_calibration"]["indistinct_far_pairs"]
    if indistinct is not None and indistinct > INDISTINCT_WARN:
        LOG.warning("the features hardly tell positions apart in places: %.1f%% of frame pairs more than %g apart "
                    "have an energy below %g x the median of such pairs (partial collapse: the planner has no "
                    "energy slope there and the tolerance may never be reached)",
                    100 * indistinct, 2 * cfg.reach_radius, INDISTINCT_SHARE)
    return calibrated


def verdict_of(cfg: Any, predictor: ACPredictor, held_out: HeldOut) -> dict:
    """The held-out verdict (see `training_verdict`), logged as one line (a WARNING when not better)."""
    verdict = held_out_verdict(predictor, held_out.episodes, held_out.features, cfg.verdict_horizon, cfg.fps,
                               seed=cfg.seed)
    line = format_verdict(verdict)
    (LOG.info if verdict["better_than_no_motion"] else LOG.warning)("%s", line)
    return {**verdict, "summary": line}


class ClipRecipeSteps:
    """What the predictor recipes share on the training loop (mixed in before ``Recipe``): `jepa train`'s learning-
    rate schedule, this rank's share of each global batch of ``data`` and the state entries of a checkpoint. The
    recipe sets ``cfg``, ``session`` and ``data``."""

    cfg: Any
    session: Any
    data: TrainingData

    def learning_rate(self, step: int, total: int) -> float:
        return learning_rate(self.cfg, step, total)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        indices = batch_indices(step, self.cfg.batch_size, len(self.data), self.cfg.seed)[self.session.mine]
        return tuple(t.to(self.session.device) for t in self.data.batch(indices))

    def state(self, step: int, total: int) -> dict:
        return {"rng": rng_state(), "scheduler": {"kind": "warmup_hold_linear_decay", "step": step, "total": total},
                "data_position": step * self.cfg.batch_size}

"""The verdict of a training run: held-out rollout error against "no motion".

Some episodes are kept out of training (:func:`held_out_split`); at the end the trained predictor rolls out
``horizon`` steps from the first frame of each held-out clip with the recorded actions, and its L1 error against
the recorded frames' features is compared with predicting "no motion" (the first frame's features again). A model
that is not better than no motion cannot guide a planner: the verdict then carries a warning.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from jepa_world_model.actions import state_differences
from jepa_world_model.data.dataset import Episode, make_clips
from jepa_world_model.networks.predictor import ACPredictor


def held_out_split(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) episode indices: a seeded ``fraction`` of ``count`` episodes, at least one when
    fraction > 0 and there are two or more episodes, none otherwise; both lists sorted."""
    held = min(count - 1, max(1, math.ceil(fraction * count))) if fraction > 0 and count >= 2 else 0
    chosen = set(np.random.default_rng([seed, 7]).permutation(count)[:held].tolist())
    return [i for i in range(count) if i not in chosen], sorted(chosen)


@torch.inference_mode()
def held_out_verdict(predictor: ACPredictor, episodes: Sequence[Episode], features: Sequence[np.ndarray],
                     horizon: int, fps: float | None = None, max_clips: int = 512, seed: int = 0,
                     batch_size: int = 64) -> dict:
    """Mean L1 per rollout step of the predictor and of "no motion" on held-out clips of ``horizon`` + 1 frames
    (at most ``max_clips``, seeded), their ratio and whether the model is better. ``features`` are the episodes'
    layer-normed encoder features. A horizon longer than the predictor's or than every episode is shortened."""
    horizon = min(horizon, predictor.max_horizon)
    clips = make_clips(episodes, horizon + 1, fps) if episodes else None
    while clips is not None and len(clips) == 0 and horizon > 1:
        horizon -= 1
        clips = make_clips(episodes, horizon + 1, fps)
    if clips is None or len(clips) == 0:
        return {"held_out_episodes": len(episodes), "clips": 0, "better_than_no_motion": None}
    index = np.arange(len(clips))
    if len(index) > max_clips:
        index = np.sort(np.random.default_rng(seed).choice(index, max_clips, replace=False))
    was_training = predictor.training
    predictor.eval()
    model_errors, still_errors = [], []
    device = next(predictor.parameters()).device
    for start in range(0, len(index), batch_size):
        feats, states, actions = [], [], []
        for i in index[start:start + batch_size]:
            episode, frames = int(clips.episode[i]), clips.frames[i]
            s = episodes[episode].states[frames]
            feats.append(np.asarray(features[episode][frames], dtype=np.float32))
            states.append(s.astype(np.float32))
            actions.append(state_differences(s, episodes[episode].state_names).astype(np.float32))
        f, s, a = (torch.from_numpy(np.stack(x)).to(device) for x in (feats, states, actions))
        pred = predictor.rollout(f[:, :1], s[:, :1], a).float()
        model_errors.append((pred - f[:, 1:]).abs().mean(dim=(2, 3)).cpu().numpy())
        still_errors.append((f[:, 1:] - f[:, :1]).abs().mean(dim=(2, 3)).cpu().numpy())
    predictor.train(was_training)
    model, still = np.concatenate(model_errors), np.concatenate(still_errors)
    ratio = float(model.mean() / still.mean()) if still.mean() > 0 else float("inf")
    return {"held_out_episodes": len(episodes), "clips": int(len(index)), "horizon": horizon,
            "rollout_l1": float(model.mean()), "no_motion_l1": float(still.mean()), "ratio": ratio,
            "rollout_l1_per_step": [float(v) for v in model.mean(axis=0)],
            "no_motion_l1_per_step": [float(v) for v in still.mean(axis=0)],
            "better_than_no_motion": bool(ratio < 1.0)}


def format_verdict(verdict: dict) -> str:
    """One line for people: the numbers and the judgement; starts with WARNING when the model is not better."""
    if verdict.get("better_than_no_motion") is None:
        return ("WARNING: no verdict: no held-out clip (give more episodes or --held-out > 0); the model's rollout "
                "error is unknown")
    numbers = (f"held-out rollout L1 over {verdict['horizon']} steps {verdict['rollout_l1']:.4f} vs no motion "
               f"{verdict['no_motion_l1']:.4f} (ratio {verdict['ratio']:.2f}, {verdict['clips']} clips of "
               f"{verdict['held_out_episodes']} held-out episodes)")
    if verdict["better_than_no_motion"]:
        return f"verdict: better than no motion: {numbers}"
    return (f"WARNING: the model is NOT better than no motion: {numbers}. A planner cannot use it: record more "
            "(and more varied) play, train longer (--steps) or fine-tune (--recipe finetune)")

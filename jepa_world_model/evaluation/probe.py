"""Linear probe (`jepa eval-offline --probe TRAIN...`): how much of the scene a frozen encoder's features hold.

A ridge regression from the features of single camera frames to the end-effector position (the recordings'
PoseStamped state, /ee_pose preferred) and, where a recording has an ``/object_pose`` PoseStamped topic, to the
object position is fitted on one set of recordings and scored on held-out ones. The same is done for a randomly
initialised encoder of the same architecture and for raw pixels (downscaled), so the numbers have their two
baselines beside them. Features are mean-pooled over the patches (``mean``) or all patch features side by side
(``flat``); each feature is standardised on the training set and the ridge strength is picked by
cross-validation over the training episodes.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jepa_common import topics
from jepa_world_model.checkpoints.files import build_module
from jepa_world_model.data.dataset import EpisodeError, ReadOptions, load_episodes, read_episode
from jepa_world_model.networks.encoder import Encoder, load_encoder
from jepa_world_model.errors import WorldModelError

LOG = logging.getLogger(__name__)
OBJECT_TOPIC = topics.OBJECT_POSE
POOLS = ("mean", "flat")
#: Ridge strengths tried by cross-validation (features are standardised, so these are on a common scale).
ALPHAS = tuple(10.0 ** e for e in range(-3, 6))
#: At most this many frames per side (evenly spaced) are used, which bounds the regression's cost.
MAX_FRAMES = 4000
TARGETS = ("ee_position", "object_position")


class ProbeError(ValueError):
    """The probe cannot run with the given recordings or options."""


@dataclass
class ProbeSet:
    """Frames (M, H, W, 3) uint8, their episode numbers (M,) and targets (M, 3) (NaN where a frame has none)."""

    frames: np.ndarray
    episode: np.ndarray
    targets: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.frames)


def _object_positions(episode, options: ReadOptions) -> np.ndarray:
    """Object xyz (T, 3) at the episode's frame stamps; NaN for frames (or whole episodes) without it."""
    out = np.full((len(episode), 3), np.nan)
    try:
        obj = read_episode(episode.source, ReadOptions(camera_topic=episode.camera_topic, state_kind="ee_xyz",
                                                       state_topic=OBJECT_TOPIC,
                                                       max_state_gap=options.max_state_gap))
    except EpisodeError:
        return out
    where = {int(s): i for i, s in enumerate(obj.stamps)}
    for i, stamp in enumerate(episode.stamps):
        if int(stamp) in where:
            out[i] = obj.states[where[int(stamp)], :3]
    return out


def read_probe_set(paths: list[str], options: ReadOptions, what: str) -> ProbeSet:
    """Frames with end-effector (and where recorded, object) positions of the recordings ``paths``."""
    options = ReadOptions(camera_topic=options.camera_topic, state_kind="ee_xyz", state_topic=options.state_topic,
                          max_state_gap=options.max_state_gap)
    episodes, skipped = load_episodes(paths, options)
    if not episodes:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:3])
        raise ProbeError(f"no usable {what} recording in {paths} (the probe needs a camera and a PoseStamped "
                         f"end-effector topic; {len(skipped)} skipped: {reasons})")
    frames = np.concatenate([e.frames for e in episodes])
    episode = np.concatenate([np.full(len(e), i) for i, e in enumerate(episodes)])
    targets = {"ee_position": np.concatenate([e.states[:, :3] for e in episodes]),
               "object_position": np.concatenate([_object_positions(e, options) for e in episodes])}
    keep = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), MAX_FRAMES)).astype(int))
    return ProbeSet(frames[keep], episode[keep], {k: v[keep] for k, v in targets.items()})


# --------------------------------------------------------------------------------------------- features
@torch.no_grad()
def encoder_features(encoder: Encoder, frames: np.ndarray, pool: str, batch_size: int = 64) -> np.ndarray:
    """Frozen features (M, F) of frames (M, H, W, 3): patch features mean-pooled (F = D) or flattened (N*D)."""
    out = []
    for start in range(0, len(frames), batch_size):
        feats = encoder(torch.from_numpy(np.ascontiguousarray(frames[start:start + batch_size]))).float()
        out.append((feats.mean(dim=1) if pool == "mean" else feats.flatten(1)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def pixel_features(frames: np.ndarray, size: int) -> np.ndarray:
    """Frames downscaled to ``size`` x ``size`` (area averaging), as (M, 3*size*size) values in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return F.adaptive_avg_pool2d(x, size).flatten(1).numpy().astype(np.float64)


def random_like(encoder: Encoder, seed: int = 0) -> Encoder:
    """A randomly initialised encoder with ``encoder``'s architecture and preprocessing."""
    return build_module(lambda: Encoder(encoder.config), seed).eval()


# ---------------------------------------------------------------------------------------------- ridge
def _ridge_solve(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> list[np.ndarray]:
    """Ridge weights (F, K) of centred ``x`` (M, F) and ``y`` (M, K), one per alpha, from one SVD."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    return [vt.T @ ((s / (s * s + a))[:, None] * uty) for a in alphas]


class Ridge:
    """Standardised-feature ridge regression with the strength chosen by grouped cross-validation."""

    def __init__(self, alphas: tuple[float, ...] = ALPHAS, folds: int = 5) -> None:
        self.alphas = alphas
        self.folds = folds
        self.alpha = float("nan")

    def _prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.x_mean, self.y_mean = x.mean(axis=0), y.mean(axis=0)
        self.x_std = np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
        return (x - self.x_mean) / self.x_std, y - self.y_mean

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Ridge:
        """Fit on (M, F) features and (M, K) targets; ``groups`` (M,) keeps each episode within one fold
        (with fewer than 2 episodes, the folds are contiguous runs of frames)."""
        unique = np.unique(groups)
        fold_of = (np.searchsorted(unique, groups) % self.folds if len(unique) >= 2
                   else np.arange(len(x)) * self.folds // len(x))
        errors = np.zeros(len(self.alphas))
        for fold in np.unique(fold_of):
            train, test = fold_of != fold, fold_of == fold
            xt, yt = self._prepare(x[train], y[train])
            xv = (x[test] - self.x_mean) / self.x_std
            for i, w in enumerate(_ridge_solve(xt, yt, self.alphas)):
                errors[i] += float(((xv @ w + self.y_mean - y[test]) ** 2).sum())
        self.alpha = self.alphas[int(np.argmin(errors))]
        xs, ys = self._prepare(x, y)
        self.weights = _ridge_solve(xs, ys, (self.alpha,))[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Targets (M, K) of features (M, F)."""
        return (x - self.x_mean) / self.x_std @ self.weights + self.y_mean


def score(pred: np.ndarray, true: np.ndarray) -> dict:
    """RMSE over frames and coordinates (target units) and R^2 (1 - SSE / SS about the held-out mean)."""
    sse = float(((pred - true) ** 2).sum())
    sst = float(((true - true.mean(axis=0)) ** 2).sum())
    return {"rmse": float(np.sqrt(sse / true.size)), "r2": 1.0 - sse / sst if sst > 0 else float("nan")}


def probe_features(train_x: np.ndarray, test_x: np.ndarray, train: ProbeSet, test: ProbeSet) -> dict:
    """Per target: fit on the training frames that have it, score on the held-out ones (None without data)."""
    out: dict = {}
    for name in TARGETS:
        fit_rows = np.isfinite(train.targets[name]).all(axis=1)
        test_rows = np.isfinite(test.targets[name]).all(axis=1)
        if fit_rows.sum() < 2 or test_rows.sum() < 1:
            out[name] = None
            continue
        ridge = Ridge().fit(train_x[fit_rows], train.targets[name][fit_rows], train.episode[fit_rows])
        out[name] = {**score(ridge.predict(test_x[test_rows]), test.targets[name][test_rows]),
                     "alpha": ridge.alpha, "train_frames": int(fit_rows.sum()), "test_frames": int(test_rows.sum())}
    return out


def run_probe(encoder_source: str, train_paths: list[str], test_paths: list[str], options: ReadOptions,
              pool: str = "mean", pixels: int = 16, seed: int = 0) -> dict:
    """Probe results for the encoder ``encoder_source``, a random encoder like it and raw pixels."""
    if pool not in POOLS:
        raise ProbeError(f"pool must be one of {POOLS}, got {pool!r}")
    if pixels < 1:
        raise ProbeError(f"pixel size must be positive, got {pixels}")
    encoder = load_encoder(encoder_source, output_layer_norm=True)
    train, test = read_probe_set(train_paths, options, "training"), read_probe_set(test_paths, options, "held-out")
    random_encoder = random_like(encoder, seed)
    rows = {}
    for label, make in ((f"encoder {encoder_source}", lambda f: encoder_features(encoder, f, pool)),
                        (f"random {encoder.config.name}", lambda f: encoder_features(random_encoder, f, pool)),
                        (f"pixels {pixels}x{pixels}", lambda f: pixel_features(f, pixels))):
        rows[label] = probe_features(make(train.frames), make(test.frames), train, test)
    return {"encoder": str(encoder_source), "encoder_id": encoder.model_id, "pool": pool,
            "train_frames": len(train), "train_episodes": int(len(np.unique(train.episode))),
            "test_frames": len(test), "test_episodes": int(len(np.unique(test.episode))), "rows": rows}


def format_probe(result: dict) -> str:
    """The table `jepa eval-offline --probe` prints: held-out RMSE [mm] and R^2 per target and feature source."""
    width = max(len(label) for label in result["rows"]) + 2
    short = {"ee_position": "ee", "object_position": "object"}
    header = "".join(f"{short[name] + ' RMSE [mm]':>20}{short[name] + ' R2':>11}" for name in TARGETS)
    lines = [f"linear probe ({result['pool']}-pooled features): fit on {result['train_frames']} frames of "
             f"{result['train_episodes']} episodes, held-out {result['test_frames']} frames of "
             f"{result['test_episodes']} episodes", f"{'features':<{width}}{header}"]
    for label, targets in result["rows"].items():
        cells = "".join(f"{'n/a':>20}{'n/a':>11}" if targets[name] is None else
                        f"{targets[name]['rmse'] * 1000:>20.1f}{targets[name]['r2']:>11.3f}" for name in TARGETS)
        lines.append(f"{label:<{width}}{cells}")
    if all(t["object_position"] is None for t in result["rows"].values()):
        lines.append(f"object position: n/a (no {OBJECT_TOPIC} topic in the training or held-out recordings)")
    return "\n".join(lines)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


# -------------------------------------------------------------------------------------------------- CLI
def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--probe` options of `jepa eval-offline`."""
    parser.add_argument("--probe", nargs="+", default=None, metavar="TRAIN",
                        help="run the linear probe instead: fit on these recordings, report on DATA; the encoder "
                             "is --encoder, else the --checkpoint's (default: off)")
    parser.add_argument("--probe-pool", default="mean", choices=POOLS,
                        help="probe features: patch features mean-pooled or flattened (default: %(default)s)")
    parser.add_argument("--probe-pixels", type=int, default=16,
                        help="side of the downscaled frames of the pixel baseline (default: %(default)s)")


def probe_main(args: argparse.Namespace) -> int:
    """`jepa eval-offline --probe`: run, print the table, write --json; 2 with a message on bad input."""
    options = ReadOptions(camera_topic=args.camera_topic, state_topic=args.state_topic)
    try:
        result = _rounded(run_probe(args.encoder or args.checkpoint, args.probe, args.data, options,
                                    args.probe_pool, args.probe_pixels, args.seed))
    except (ProbeError, WorldModelError, FileNotFoundError) as exc:
        LOG.error("%s", exc)
        return 2
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(format_probe(result))
    return 0

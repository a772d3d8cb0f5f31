"""`jepa eval-offline`: how well a trained predictor foresees held-out recordings, before it drives a robot.

For every clip of 1 + H frames: roll the predictor out from the first frame with the recorded actions (state
differences) and measure the L1 distance to the true (layer-normed) features of frames 1..H, per horizon step.
Baselines: the same architecture untrained (seeded random init) and "no motion" (predict the context frame's
features at every step). An energy landscape shows the planning energy (L1 between the predicted next frame and
the true next frame as goal) over a grid of candidate actions around the true one, on a 2-D slice of two
action dimensions; a useful model has its minimum near the true action. ``--probe TRAIN...`` runs the linear
probe of the encoder instead (:mod:`jepa_world_model.evaluation.probe`).

Pictures (when the model has a picture decoder, `jepa train-decoder`; ``--decoder`` names another): per horizon
step, the PSNR (dB, per frame, peak 255) of the decoded prediction against the frame that actually followed (the
encoder's crop of it), next to "no motion" (the current frame's features decoded), "mean frame" (the pixel mean of
every frame of the evaluated episodes) and "reconstruction" (the true next frame's features decoded: what the
decoder can show at best). ``--pictures DIR`` also writes one PNG strip per sampled clip
(:func:`jepa_world_model.evaluation.pictures.strip`): the decoded current frame and imagined next frames above,
the real frames and the episode's last frame below.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from jepa_world_model.actions import state_differences
from jepa_world_model.checkpoints.files import init_weights, read_checkpoint_config
from jepa_world_model.data.dataset import Clips, Episode, ReadOptions, load_episodes, make_clips
from jepa_world_model.networks.encoder import load_encoder
from jepa_world_model.errors import WorldModelError
from jepa_world_model.data.feature_cache import FeatureCache
from jepa_world_model.networks.features import l1_energy
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.networks.predictor import ACPredictor
from jepa_world_model.checkpoints.predictor_loading import load_predictor
from jepa_world_model.checkpoints.decoder_loading import check_decoder, find_decoder
from jepa_world_model.evaluation.pictures import save_png, strip
from jepa_world_model.evaluation.probe import add_probe_arguments, probe_main
from jepa_world_model.networks.decoder import FeatureDecoder, encoder_crop, psnr

LOG = logging.getLogger(__name__)


class EvalError(ValueError):
    """Offline evaluation cannot run with the given checkpoint/data/options."""


def load_models(checkpoint: str | Path, encoder_source: str | None = None):
    """Encoder and predictor of a checkpoint directory or shipped model name (the encoder from the checkpoint,
    else ``encoder_source`` or the training metadata's encoder, with layer-normed output)."""
    checkpoint = resolve_model_source(checkpoint)
    predictor = load_predictor(checkpoint)
    config = read_checkpoint_config(checkpoint)
    if encoder_source is None and config.get("encoder"):
        encoder = load_encoder(checkpoint)
    else:
        source = encoder_source or config.get("metadata", {}).get("encoder_source")
        if source is None:
            raise EvalError(f"{checkpoint} holds no encoder and names none; pass --encoder")
        encoder = load_encoder(source, output_layer_norm=True)
    if predictor.encoder_id and encoder.model_id != predictor.encoder_id:
        LOG.warning("encoder %s is not the one the predictor was trained on (%s)", encoder.model_id,
                    predictor.encoder_id)
    return encoder.eval(), predictor.eval()


def untrained_like(predictor: ACPredictor, seed: int = 0) -> ACPredictor:
    """A freshly initialised predictor with the same config (architecture, action/state spaces)."""
    fresh = ACPredictor(predictor.config)
    init_weights(fresh, seed)
    return fresh.eval()


def _clip_tensors(features, episodes, clips, index: np.ndarray):
    feats, states, actions = [], [], []
    for i in index:
        e, frames = int(clips.episode[i]), clips.frames[i]
        s = episodes[e].states[frames]
        feats.append(np.asarray(features[e][frames], dtype=np.float32))
        states.append(s)
        actions.append(state_differences(s, episodes[e].state_names))
    return (torch.from_numpy(np.stack(feats)), torch.from_numpy(np.stack(states)).float(),
            torch.from_numpy(np.stack(actions)).float())


@torch.inference_mode()
def rollouts(predictor: ACPredictor, feats: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
             batch_size: int = 64) -> torch.Tensor:
    """Predicted features (clips, H, N, D) of rollouts from frame 0 of each clip with its recorded actions."""
    out = []
    for start in range(0, len(feats), batch_size):
        f, s, a = (t[start:start + batch_size] for t in (feats, states, actions))
        out.append(predictor.rollout(f[:, :1], s[:, :1], a).float())
    return torch.cat(out)


def rollout_errors(predictor: ACPredictor, feats: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                   batch_size: int = 64) -> np.ndarray:
    """Per-clip, per-step L1 (clips, H) of rollouts from frame 0 against frames 1..H."""
    pred = rollouts(predictor, feats, states, actions, batch_size)
    return (pred - feats[:, 1:]).abs().mean(dim=(2, 3)).numpy()


def decode_all(decoder: FeatureDecoder, features: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Pictures (..., H, W, 3) uint8 of features (..., N, D), decoded in batches."""
    flat = features.reshape(-1, *features.shape[-2:])
    pictures = np.concatenate([decoder.decode_images(flat[i:i + batch_size]) for i in range(0, len(flat), batch_size)])
    return pictures.reshape(*features.shape[:-2], *pictures.shape[1:])


def picture_errors(decoder: FeatureDecoder, predicted: torch.Tensor, feats: torch.Tensor, frames: np.ndarray,
                   mean_frame: np.ndarray) -> tuple[dict, np.ndarray]:
    """PSNR per horizon step of the decoded predictions ``predicted`` (C, H, N, D) against the real frames
    ``frames`` (C, 1+H, h, w, 3) (crops), with the baselines (see the module docstring); also returns the decoded
    current frames and predictions (C, 1+H, h, w, 3)."""
    decoded = decode_all(decoder, torch.cat([feats[:, :1], predicted], dim=1))
    truth = decode_all(decoder, feats[:, 1:])
    future = frames[:, 1:]
    per_step = lambda pictures: [float(psnr(pictures[:, h], future[:, h]).mean())  # noqa: E731
                                 for h in range(future.shape[1])]
    table = {"predicted": per_step(decoded[:, 1:]),
             "no_motion": per_step(np.repeat(decoded[:, :1], future.shape[1], axis=1)),
             "mean_frame": per_step(np.broadcast_to(mean_frame, future.shape)),
             "reconstruction": per_step(truth)}
    return table, decoded


def write_strips(directory: Path, decoded: np.ndarray, frames: np.ndarray, episodes: Sequence[Episode],
                 clips: Clips, index: np.ndarray, crop: Callable[[np.ndarray], np.ndarray], count: int) -> list[str]:
    """One PNG strip for each of ``count`` clips spread over the evaluated ones: the decoded current frame and
    imagined frames above, the real frames and the episode's last frame below. Returns the file names."""
    horizon = decoded.shape[1] - 1
    names = []
    for k in np.linspace(0, len(index) - 1, min(count, len(index))).astype(int):
        e, first = int(clips.episode[index[k]]), int(clips.frames[index[k]][0])
        rows = [list(decoded[k]) + [None], list(frames[k]) + [crop(episodes[e].frames[-1:])[0]]]
        picture = strip(rows, ["imagined", "actual"],
                        ["now"] + [f"t+{h}" for h in range(1, horizon + 1)] + ["episode end"])
        name = f"{len(names):02d}_{Path(episodes[e].source).stem}_t{first:03d}.png"
        save_png(picture, directory / name)
        names.append(name)
    return names


def energy_landscape(predictor: ACPredictor, feats: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                     dims: tuple[int, int] = (0, 1), size: int = 21, span: float | None = None) -> dict:
    """Energy of the true next frame over a ``size`` x ``size`` grid of first actions around the true one.

    ``feats`` (T, N, D), ``states`` (T, S), ``actions`` (T-1, A) of one clip; the grid varies action dims
    ``dims`` by +-``span`` (default: 3 std of the action space, at least twice the true action's size) and keeps
    the other dims at their true values.
    """
    true = actions[0]
    space = predictor.action_space
    if span is None:
        span = float(max(3 * max(space.std[d] for d in dims), 2 * true[list(dims)].abs().max().item(), 1e-6))
    offsets = np.linspace(-span, span, size)
    grid = true.repeat(size * size, 1)
    u, v = np.meshgrid(offsets, offsets, indexing="xy")
    grid[:, dims[0]] += torch.from_numpy(u.ravel()).float()
    grid[:, dims[1]] += torch.from_numpy(v.ravel()).float()
    with torch.no_grad():
        pred = predictor.rollout(feats[None, :1], states[None, :1], grid[:, None, :])[:, 0]
        energy = l1_energy(pred, feats[1]).reshape(size, size).numpy()
    best = np.unravel_index(int(np.argmin(energy)), energy.shape)
    best_action = [float(true[dims[0]] + offsets[best[1]]), float(true[dims[1]] + offsets[best[0]])]
    true_xy = [float(true[dims[0]]), float(true[dims[1]])]
    return {"dims": [space.names[d] for d in dims], "offsets": offsets.tolist(), "energy": energy.tolist(),
            "true_action": true_xy, "argmin_action": best_action,
            "argmin_error": float(np.hypot(best_action[0] - true_xy[0], best_action[1] - true_xy[1])),
            "span": span}


def plot_landscape(landscape: dict, path: Path, title: str) -> None:
    """Heat map of an energy landscape with the true action (star) and the minimum (cross)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offsets = np.asarray(landscape["offsets"])
    t = landscape["true_action"]
    extent = [t[0] + offsets[0], t[0] + offsets[-1], t[1] + offsets[0], t[1] + offsets[-1]]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    image = ax.imshow(np.asarray(landscape["energy"]), origin="lower", extent=extent, aspect="auto", cmap="viridis")
    ax.plot(*t, marker="*", color="white", markersize=14, label="true action")
    ax.plot(*landscape["argmin_action"], marker="x", color="red", markersize=10, label="energy minimum")
    ax.set_xlabel(landscape["dims"][0])
    ax.set_ylabel(landscape["dims"][1])
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(image, ax=ax, label="L1 energy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(checkpoint: str | Path, data: list[str], horizon: int = 3, fps: float | None = None,
             encoder_source: str | None = None, cache_dir: str | None = None, options: ReadOptions | None = None,
             max_clips: int = 512, seed: int = 0, landscape_size: int = 21, landscape_clips: int = 8,
             decoder_source: str | None = None, pictures_dir: str | Path | None = None, pictures: int = 6) -> dict:
    """Held-out rollout errors (trained / untrained / no motion) per horizon step and energy landscapes
    (the first clip's in full, the distance of the minimum to the true action for ``landscape_clips`` clips);
    with a picture decoder (``decoder_source``, else the model's own) the decoded pictures' PSNR, and with
    ``pictures_dir`` ``pictures`` PNG strips written there."""
    encoder, predictor = load_models(checkpoint, encoder_source)
    decoder = find_decoder(decoder_source or checkpoint)
    if decoder is None and (decoder_source is not None or pictures_dir is not None):
        raise EvalError(f"{decoder_source or checkpoint} has no picture decoder; make one with `jepa train-decoder`")
    if decoder is not None:
        check_decoder(decoder, encoder)
    if fps is None:  # evaluate at the training rate unless told otherwise
        metadata = read_checkpoint_config(resolve_model_source(checkpoint)).get("metadata", {})
        fps = metadata.get("training", {}).get("fps")
    if horizon < 1 or horizon > predictor.max_horizon:
        raise EvalError(f"horizon must be in [1, {predictor.max_horizon}], got {horizon}")
    episodes, skipped = load_episodes(data, options or ReadOptions())
    if not episodes:
        raise EvalError(f"no usable episode in {data} ({len(skipped)} skipped)")
    if episodes[0].state_names != predictor.state_space.names:
        raise EvalError(f"data states {episodes[0].state_names} differ from the model's {predictor.state_space.names}")
    cache = FeatureCache(cache_dir)
    features = [cache.features(encoder, e) for e in episodes]
    clips = make_clips(episodes, horizon + 1, fps)
    if len(clips) == 0:
        raise EvalError(f"no clip of {horizon + 1} frames in the data")
    index = np.arange(len(clips))
    if len(index) > max_clips:
        index = np.sort(np.random.default_rng(seed).choice(index, max_clips, replace=False))
    feats, states, actions = _clip_tensors(features, episodes, clips, index)
    predicted = rollouts(predictor, feats, states, actions)
    trained = (predicted - feats[:, 1:]).abs().mean(dim=(2, 3)).numpy()
    untrained = rollout_errors(untrained_like(predictor, seed), feats, states, actions)
    no_motion = (feats[:, 1:] - feats[:, :1]).abs().mean(dim=(2, 3)).numpy()
    pictures_result = None
    if decoder is not None:
        crop = lambda images: encoder_crop(images, encoder.config)  # noqa: E731
        frames = np.stack([crop(episodes[int(clips.episode[i])].frames[clips.frames[i]]) for i in index])
        mean_frame = np.concatenate([crop(e.frames) for e in episodes]).mean(axis=0).round().astype(np.uint8)
        table, decoded = picture_errors(decoder, predicted, feats, frames, mean_frame)
        pictures_result = {"psnr_db": table, "mean_psnr_db": {k: float(np.mean(v)) for k, v in table.items()},
                           "decoder": str(decoder_source or checkpoint),
                           "decoder_verdict": decoder.metadata.get("verdict", {}),
                           "mean_frame": "pixel mean of every frame of the evaluated episodes", "strips": []}
        if pictures_dir is not None:
            pictures_result["strips"] = write_strips(Path(pictures_dir), decoded, frames, episodes, clips, index,
                                                     crop, pictures)
    landscapes = [energy_landscape(predictor, feats[i], states[i], actions[i], size=landscape_size)
                  for i in np.linspace(0, len(feats) - 1, min(landscape_clips, len(feats))).astype(int)] \
        if predictor.action_space.dim >= 2 else []
    per_step = lambda errors: [float(v) for v in errors.mean(axis=0)]  # noqa: E731
    return {
        "checkpoint": str(checkpoint), "episodes": len(episodes), "skipped": len(skipped),
        "skipped_reasons": [f"{s.source}: {s.reason}" for s in skipped], "clips": int(len(index)),
        "horizon": horizon,
        "rollout_l1": {"trained": per_step(trained), "untrained": per_step(untrained),
                       "no_motion": per_step(no_motion)},
        "mean_l1": {"trained": float(trained.mean()), "untrained": float(untrained.mean()),
                    "no_motion": float(no_motion.mean())},
        "energy_landscape": landscapes[0] if landscapes else None,
        "landscape_argmin_error": [lnd["argmin_error"] for lnd in landscapes],
        "landscape_span": [lnd["span"] for lnd in landscapes],
        "pictures": pictures_result,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa eval-offline`."""
    parser.add_argument("data", nargs="+", help="held-out MCAP files, rosbag2 bags or directories")
    parser.add_argument("--checkpoint", default="default",
                        help="checkpoint directory written by `jepa train`, or 'default' (the shipped sim model) "
                             "(default: %(default)s)")
    parser.add_argument("--horizon", type=int, default=3, help="rollout steps (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=None,
                        help="resample frames to this rate (default: the training rate, else every frame)")
    parser.add_argument("--encoder", default=None,
                        help="encoder source when the checkpoint holds none (default: the one its training used)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: ~/.cache/jepa_ros/features)")
    parser.add_argument("--max-clips", type=int, default=512,
                        help="evaluate at most this many clips, drawn at random (default: %(default)s)")
    parser.add_argument("--landscape-clips", type=int, default=8,
                        help="clips with an energy landscape (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the clip draw and the untrained baseline (default: %(default)s)")
    parser.add_argument("--camera-topic", default=None,
                        help="image topic (default: the only image topic, or /camera/image_raw among several)")
    parser.add_argument("--state-kind", default="auto", choices=("auto", "ee_xyz", "ee_pose", "joints"),
                        help="robot state to read (default: %(default)s: ee_xyz when a pose topic exists, "
                             "else joints)")
    parser.add_argument("--state-topic", default=None,
                        help="topic of the state messages (default: by type, /ee_pose or /joint_states preferred)")
    parser.add_argument("--json", default=None, help="write the results here (default: print only)")
    parser.add_argument("--plot", default=None, help="write the energy landscape (PNG) here (default: no plot)")
    parser.add_argument("--decoder", default=None,
                        help="picture decoder: a decoder directory or a model that has one (default: the model's "
                             "own, when it has one)")
    parser.add_argument("--pictures", default=None, metavar="DIR",
                        help="write PNG strips of imagined against actual frames here (needs a decoder; default: none)")
    parser.add_argument("--picture-count", type=int, default=6,
                        help="clips drawn as strips with --pictures (default: %(default)s)")
    add_probe_arguments(parser)


def format_summary(result: dict) -> str:
    """The lines `jepa eval-offline` prints: L1 per horizon step, means, and the landscape minimum's distance."""
    table, means = result["rollout_l1"], result["mean_l1"]
    lines = [f"{result['clips']} clips from {result['episodes']} episodes ({result['skipped']} skipped)",
             "step  trained  untrained  no-motion"]
    for h in range(result["horizon"]):
        lines.append(f"{h + 1:4d}  {table['trained'][h]:7.4f}  {table['untrained'][h]:9.4f}  "
                     f"{table['no_motion'][h]:9.4f}")
    lines.append(f"mean  {means['trained']:7.4f}  {means['untrained']:9.4f}  {means['no_motion']:9.4f}")
    errors, spans = result["landscape_argmin_error"], result["landscape_span"]
    if errors:
        lines.append(f"energy minimum {float(np.mean(errors)):.4f} from the true action on average "
                     f"(grid half-width {float(np.mean(spans)):.4f}, {len(errors)} clips)")
    else:
        lines.append("energy landscape: n/a (needs at least 2 action dims)")
    pictures = result.get("pictures")
    if pictures is None:
        lines.append("pictures: n/a (no picture decoder; make one with `jepa train-decoder`)")
        return "\n".join(lines)
    table, means = pictures["psnr_db"], pictures["mean_psnr_db"]
    lines.append("decoded pictures, PSNR dB against the frame that followed (higher is better)")
    lines.append("step  predicted  no-motion  mean-frame  reconstruction")
    row = "{:4}  {:9.2f}  {:9.2f}  {:10.2f}  {:14.2f}"
    for h in range(result["horizon"]):
        lines.append(row.format(h + 1, *(table[k][h] for k in ("predicted", "no_motion", "mean_frame",
                                                               "reconstruction"))))
    lines.append(row.format("mean", *(means[k] for k in ("predicted", "no_motion", "mean_frame", "reconstruction"))))
    if pictures["strips"]:
        lines.append(f"{len(pictures['strips'])} picture strips written")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Entry point of `jepa eval-offline`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.probe:
        return probe_main(args)
    options = ReadOptions(camera_topic=args.camera_topic, state_kind=args.state_kind, state_topic=args.state_topic)
    try:
        result = evaluate(args.checkpoint, args.data, horizon=args.horizon, fps=args.fps,
                          encoder_source=args.encoder, cache_dir=args.cache_dir, options=options,
                          max_clips=args.max_clips, seed=args.seed, landscape_clips=args.landscape_clips,
                          decoder_source=args.decoder, pictures_dir=args.pictures, pictures=args.picture_count)
    except (EvalError, WorldModelError, FileNotFoundError) as exc:
        LOG.error("%s", exc)
        return 2
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot and result["energy_landscape"] is not None:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_landscape(result["energy_landscape"], Path(args.plot), "energy of the true next frame")
    print(format_summary(result))
    return 0

"""What a trained predictor carries besides its weights: the encoder it was trained on and its planning tolerance.

`jepa train` writes both into the checkpoint's ``config.json`` metadata:

- the encoder's weights, in the same directory, for encoders of at most :data:`INCLUDE_WEIGHTS_LIMIT`
  parameters (the checkpoint's ``encoder`` part), and always ``metadata["encoder"]`` = ``{"id": model_id,
  "source": ..., "overrides": {...}}``: a reference that loads the same encoder, ``load_encoder(source,
  **overrides)`` (``source`` a preset name, a shipped model's name, the absolute path of a file or directory, or
  a Hugging Face id: :func:`encoder_reference`; a shipped model is named, never recorded by its directory),
  checked against ``id`` at load. Weights present win over the reference.
- ``metadata["planning_tolerance"]``: the observed energy (L1 between layer-normed features) at or below which the
  planner counts a goal as reached, calibrated by :func:`calibrate_tolerance`; how it was computed is in
  ``metadata["planning_tolerance_calibration"]``.

:func:`encoder_for` names the encoder a planner or a command should load for a predictor ("" or "auto" = the one
saved with the predictor), :func:`planning_tolerance` reads the tolerance, :func:`mismatch_line` is the one line a
user sees when an encoder and a predictor do not fit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jepa_world_model.checkpoints.files import classify_source, official_parts, read_checkpoint_config
from jepa_world_model.errors import ConfigError
from jepa_world_model.checkpoints.shipped import SHIPPED_MODELS, resolve_model_source

#: Encoders with at most this many parameters are saved with the predictor; larger ones by reference.
INCLUDE_WEIGHTS_LIMIT = 50_000_000
#: Encoder values meaning "the encoder saved with the predictor".
AUTO = ("", "auto")
#: The encoder preset that fits each predictor preset (same feature width and patch grid).
PRESET_ENCODERS = {"tiny": "tiny", "ac_vit_g": "vit_g"}
#: Calibration: frame pairs whose position distance lies in (radius, 2 * radius] are "just not reached"; the
#: tolerance is this quantile of their observed energies (few of them count as reached) ...
NEAR_MISS_QUANTILE = 0.02
#: ... and at least this many such pairs are needed, else no tolerance is calibrated.
MIN_PAIRS = 20
#: Pairs are taken at most this many frames apart (near pairs are found at short lags).
MAX_LAG = 20
#: A pair of frames more than twice the radius apart is "indistinct" when its energy is below this share of the
#: median energy of such pairs: the encoder maps the two positions to nearly the same features (partial collapse).
INDISTINCT_SHARE = 0.01
#: Training warns when more than this share of the pairs clearly apart is indistinct.
INDISTINCT_WARN = 0.01
#: State dims that hold a position (the distance that "reached" is judged on); without any, every state dim.
POSITION_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class EncoderSource:
    """An encoder to load: `load_encoder(source, **overrides)`, expected to have `model_id` `encoder_id`."""

    source: str
    overrides: dict = field(default_factory=dict)
    encoder_id: str | None = None
    origin: str = ""          # how it was found, for messages ("saved with predictor 'runs/x'")

    def load(self) -> Any:
        """The encoder; ConfigError when a reference no longer gives the encoder the predictor was trained on."""
        from jepa_world_model.networks.encoder import load_encoder

        encoder = load_encoder(self.source, **self.overrides)
        if self.encoder_id and encoder.model_id != self.encoder_id:
            raise ConfigError(f"encoder {self.source!r} ({self.origin}) now has model_id {encoder.model_id}, the "
                              f"predictor was trained on {self.encoder_id} (did the file change?)")
        return encoder

    def input_size(self) -> int:
        """The side (px) of the images the encoder takes (its crop size): presets, our directories and official
        files say it without loading the weights (official: from the shapes of the memory-mapped file), any other
        source is loaded."""
        from jepa_world_model.checkpoints.files import OFFICIAL_KEYS, official_part
        from jepa_world_model.config import EncoderConfig
        from jepa_world_model.networks.encoder import infer_encoder_config
        from jepa_world_model.presets import ENCODER_PRESETS, encoder_preset

        source = resolve_model_source(self.source)
        kind = classify_source(source, ENCODER_PRESETS)
        stored = read_checkpoint_config(source).get("encoder") if kind == "ours" else None
        if kind == "preset":
            config = encoder_preset(os.fspath(source))
        elif stored:
            config = EncoderConfig.from_dict(stored)
        elif kind == "official":
            config = infer_encoder_config(official_part(source, OFFICIAL_KEYS["encoder"], mmap=True), {},
                                          os.fspath(source))
        else:
            return self.load().config.crop_size
        return config.replace(**self.overrides).crop_size


def shipped_name(source: str | os.PathLike) -> str | None:
    """The shipped model name (``default``, ``push_default``, ``pretrained_sim``) of ``source`` when it is one or is
    a shipped model's directory, else None."""
    name = os.fspath(source)
    if name in SHIPPED_MODELS:
        return name
    path = Path(name).expanduser()
    if not path.is_dir():
        return None
    resolved = path.resolve()
    return next((n for n, directory in SHIPPED_MODELS.items() if directory.resolve() == resolved), None)


def encoder_reference(source: str | os.PathLike) -> str:
    """How metadata names an encoder source so that it loads the same encoder anywhere: a shipped model by its
    name (also when given as its directory), a preset or Hugging Face id as given, any other existing path
    absolute (a user's own file or checkpoint, on the machine that trained)."""
    from jepa_world_model.presets import ENCODER_PRESETS

    name = os.fspath(source)
    shipped = shipped_name(name)
    if shipped is not None:
        return shipped
    path = Path(name).expanduser()
    return name if name in ENCODER_PRESETS or not path.exists() else str(path.resolve())


def encoder_record(encoder: Any, source: str | os.PathLike, overrides: dict) -> dict:
    """The ``metadata["encoder"]`` reference of an encoder loaded as `load_encoder(source, **overrides)`."""
    return {"id": encoder.model_id, "source": encoder_reference(source), "overrides": dict(overrides)}


def include_weights(encoder: Any) -> bool:
    """Whether an encoder is small enough to be saved with its predictor."""
    return sum(p.numel() for p in encoder.parameters()) <= INCLUDE_WEIGHTS_LIMIT


def _checkpoint_encoder(directory: Path, name: str) -> EncoderSource | None:
    """The encoder one of our checkpoint directories holds or names (None when neither)."""
    config = read_checkpoint_config(directory)
    if config.get("encoder"):
        return EncoderSource(name, {}, config.get("encoder_id"), f"saved with {name!r}")
    record = (config.get("metadata") or {}).get("encoder")
    if record and record.get("source"):
        return EncoderSource(record["source"], dict(record.get("overrides") or {}), record.get("id"),
                             f"referenced by {name!r}")
    return None


def _fitting_preset(preset: str) -> EncoderSource | None:
    """The encoder preset that makes the features of predictor preset `preset` (None when there is none)."""
    if preset not in PRESET_ENCODERS:
        return None
    return EncoderSource(PRESET_ENCODERS[preset], {}, None, f"the preset that fits predictor preset {preset!r}")


def predictor_encoder(predictor: str | os.PathLike) -> EncoderSource:
    """The encoder that belongs to `predictor` (a model name, preset, checkpoint directory or official file).

    A checkpoint that holds no encoder, names none and was trained on none (no ``encoder_id``) gets the encoder
    preset of its predictor preset, as a preset would. ConfigError names the predictor when nothing fits.
    """
    name = os.fspath(predictor)
    from jepa_world_model.presets import PREDICTOR_PRESETS

    resolved = resolve_model_source(name)
    kind = classify_source(resolved, PREDICTOR_PRESETS)
    found = None
    if kind == "preset":
        found = _fitting_preset(name)
    elif kind == "ours":
        found = _checkpoint_encoder(Path(resolved), name)
        config = read_checkpoint_config(resolved)
        if found is None and not config.get("encoder_id"):
            found = _fitting_preset((config.get("predictor") or {}).get("name", ""))
    elif kind == "official" and "encoder" in official_parts(resolved):
        found = EncoderSource(name, {}, None, f"the encoder in {name!r}")
    if found is None:
        raise ConfigError(f"predictor {name!r} holds no encoder and names none; give the encoder explicitly "
                          f"(the one its features were made with)")
    return found


def encoder_for(encoder: str | os.PathLike, predictor: str | os.PathLike) -> EncoderSource:
    """What to load as the encoder: `encoder`, or for "" / "auto" the encoder saved with `predictor`.

    A checkpoint directory given as `encoder` that holds no encoder weights but references one gives the reference.
    """
    name = os.fspath(encoder)
    if name in AUTO:
        return predictor_encoder(predictor)
    resolved = resolve_model_source(name)
    path = Path(os.fspath(resolved)).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        from jepa_world_model.presets import ENCODER_PRESETS

        if classify_source(path, ENCODER_PRESETS) == "ours":
            found = _checkpoint_encoder(path, name)
            if found is not None:
                return found
    return EncoderSource(name, {}, None, "given")


def planning_tolerance(predictor: str | os.PathLike) -> float | None:
    """The calibrated planning tolerance stored with `predictor` (None for presets, official files, older models)."""
    from jepa_world_model.presets import PREDICTOR_PRESETS

    resolved = resolve_model_source(predictor)
    if classify_source(resolved, PREDICTOR_PRESETS) != "ours":
        return None
    value = (read_checkpoint_config(resolved).get("metadata") or {}).get("planning_tolerance")
    return float(value) if value is not None and value > 0 else None


def mismatch_line(encoder: str, predictor: str, problem: str) -> str:
    """The one line a user sees when an encoder and a predictor do not fit."""
    hint = ("leave the encoder out (or give '') to use the encoder saved with the predictor" if encoder not in AUTO
            else "give the encoder the predictor was trained on")
    return f"encoder {encoder!r} does not fit predictor {predictor!r}: {problem}; {hint}"


# ------------------------------------------------------------------------------------------- calibration
def position_dims(state_names: Sequence[str]) -> list[int]:
    """Indices of the position dims (x, y, z) among `state_names`; every dim when there is none."""
    dims = [i for i, name in enumerate(state_names) if name in POSITION_NAMES]
    return dims or list(range(len(state_names)))


def calibrate_tolerance(features: Sequence[np.ndarray], states: Sequence[np.ndarray], state_names: Sequence[str],
                        radius: float, max_pairs_per_episode: int = 2000, seed: int = 0) -> dict | None:
    """The observed energy that corresponds to "reached" (within `radius` of the goal), from recorded frames.

    For frame pairs (i, j) of the same episode at most :data:`MAX_LAG` frames apart, the distance between their
    positions (:func:`position_dims`) and the observed energy between their features (L1 of layer-normed features,
    as the planner judges a goal) are computed. Pairs whose distance lies in (radius, 2 * radius] are near misses; the tolerance is the
    :data:`NEAR_MISS_QUANTILE` quantile of their energies, so that only that share of near misses would count as
    reached. Returns ``{"planning_tolerance", "planning_tolerance_calibration": {...}}`` or None when fewer than
    :data:`MIN_PAIRS` near misses exist (data too sparse or too coarse for `radius`).
    """
    import torch

    from jepa_world_model.networks.features import layer_norm_features

    dims = position_dims(state_names)
    rng = np.random.default_rng(seed)
    energies, distances = [], []
    for feats, episode_states in zip(features, states):
        count = len(episode_states)
        if count < 2:
            continue
        i, j = np.triu_indices(count, k=1)
        i, j = i[j - i <= MAX_LAG], j[j - i <= MAX_LAG]
        if len(i) > max_pairs_per_episode:
            keep = rng.choice(len(i), max_pairs_per_episode, replace=False)
            i, j = i[keep], j[keep]
        positions = np.asarray(episode_states, dtype=np.float64)[:, dims]
        distance = np.linalg.norm(positions[i] - positions[j], axis=1)
        normed = layer_norm_features(torch.from_numpy(np.array(feats, dtype=np.float32)))
        energy = (normed[i] - normed[j]).abs().mean(dim=(1, 2)).numpy()   # l1_energy of each pair
        distances.append(distance)
        energies.append(energy)
    if not energies:
        return None
    distance, energy = np.concatenate(distances), np.concatenate(energies)
    near = (distance > radius) & (distance <= 2 * radius)
    inside = distance <= radius
    if near.sum() < MIN_PAIRS:
        return None
    tolerance = float(np.quantile(energy[near], NEAR_MISS_QUANTILE))
    return {"planning_tolerance": tolerance, "planning_tolerance_calibration": {
        "method": f"{NEAR_MISS_QUANTILE:g} quantile of the observed energy of frame pairs {radius:g} to "
                  f"{2 * radius:g} apart (same episode, at most {MAX_LAG} frames apart)",
        "radius": radius, "position_dims": [state_names[d] for d in dims], "near_miss_pairs": int(near.sum()),
        "pairs": int(len(distance)),
        "reached_pairs_within_tolerance": float(np.mean(energy[inside] <= tolerance)) if inside.any() else None,
        "near_misses_within_tolerance": float(np.mean(energy[near] <= tolerance)),
        "indistinct_far_pairs": indistinct_share(energy[distance > 2 * radius])}}


def indistinct_share(energies: np.ndarray) -> float | None:
    """Share of `energies` (of frame pairs that are clearly apart) below :data:`INDISTINCT_SHARE` of their median:
    0 for an encoder that tells positions apart, a sizeable share when it collapses parts of the scene (the
    planner has no energy slope there and a tolerance calibrated on such features is never reached)."""
    if len(energies) == 0:
        return None
    return float(np.mean(energies < INDISTINCT_SHARE * np.median(energies)))

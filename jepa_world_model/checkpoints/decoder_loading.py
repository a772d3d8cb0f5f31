"""Where a model's picture decoder lives, how it is saved and loaded, and the check that it fits an encoder.

Storage: our checkpoint format (``model.safetensors`` with keys prefixed ``decoder.``, ``config.json`` with
``format`` "jepa_ros/1", the ``decoder`` config dict, ``encoder_id`` and ``metadata``), in the ``decoder/``
subfolder of the model directory it belongs to (``shipped_models/sim_reach/decoder/``), or any directory of its
own made by `jepa train-decoder`.

Rules: :func:`find_decoder` answers None only when a model has no decoder; a decoder that is there but cannot be
read raises. A decoder decodes the features of the encoder it was trained on and no other: :func:`check_decoder`
refuses another encoder with one line that names both.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from jepa_world_model.checkpoints.files import (CONFIG_FILE, FORMAT, WEIGHTS_FILE, is_checkpoint_dir, load_strictly,
                                                read_checkpoint_config)
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.errors import CheckpointError, ConfigError, ModelNotAvailableError
from jepa_world_model.networks.decoder import DecoderConfig, FeatureDecoder

#: The subfolder of a model directory that holds its decoder.
DECODER_DIR = "decoder"
#: The checkpoint part (config key and weight prefix) of a decoder.
PART = "decoder"


class DecoderMismatchError(ConfigError):
    """A decoder was given the features of an encoder it was not trained on."""


def save_decoder(directory: str | os.PathLike, decoder: FeatureDecoder,
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``decoder`` to ``directory`` in our checkpoint format (files replaced atomically); returns it."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "encoder": None, "predictor": None, PART: decoder.config.to_dict(),
              "encoder_id": decoder.encoder_id, "metadata": dict(metadata or {})}
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    tensors = {f"{PART}.{k}": v.detach().to("cpu").contiguous() for k, v in decoder.state_dict().items()}
    tmp_weights, tmp_config = out / (WEIGHTS_FILE + ".tmp"), out / (CONFIG_FILE + ".tmp")
    save_file(tensors, str(tmp_weights), metadata={"format": FORMAT})
    tmp_config.write_text(text)
    os.replace(tmp_weights, out / WEIGHTS_FILE)
    os.replace(tmp_config, out / CONFIG_FILE)
    return out


def decoder_directory(source: str | os.PathLike) -> Path | None:
    """The directory holding the decoder of ``source`` (a shipped model name, a model directory with a
    ``decoder/`` subfolder, or a decoder directory), or None when it has none."""
    try:
        resolved = resolve_model_source(source)
    except ModelNotAvailableError:
        return None
    path = Path(os.fspath(resolved)).expanduser()
    if not path.is_dir():
        return None
    for candidate in (path / DECODER_DIR, path):
        if is_checkpoint_dir(candidate) and read_checkpoint_config(candidate).get(PART):
            return candidate
    return None


def _load(directory: Path) -> FeatureDecoder:
    from safetensors.torch import load_file

    config = read_checkpoint_config(directory)
    try:
        decoder_config = DecoderConfig.from_dict(config[PART])
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad decoder config ({exc})") from exc
    try:
        weights = load_file(str(directory / WEIGHTS_FILE))
    except (OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: cannot read weights ({exc})") from exc
    prefix = PART + "."
    with torch.device("meta"):
        decoder = FeatureDecoder(decoder_config)
    load_strictly(decoder, {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}, "decoder")
    decoder.metadata = dict(config.get("metadata") or {})
    return decoder.eval()


def find_decoder(source: str | os.PathLike) -> FeatureDecoder | None:
    """The decoder of ``source`` (see :func:`decoder_directory`) on the CPU in eval mode, or None when it has
    none. Its training metadata is ``decoder.metadata``."""
    directory = decoder_directory(source)
    return None if directory is None else _load(directory)


def load_decoder(source: str | os.PathLike) -> FeatureDecoder:
    """Like :func:`find_decoder`, but a source without a decoder raises :class:`ModelNotAvailableError`."""
    decoder = find_decoder(source)
    if decoder is None:
        raise ModelNotAvailableError(f"{os.fspath(source)!r} has no picture decoder (neither a {DECODER_DIR}/ "
                                     f"subfolder nor a decoder checkpoint); make one with `jepa train-decoder`")
    return decoder


def check_decoder(decoder: FeatureDecoder, encoder: Any) -> None:
    """Raise :class:`DecoderMismatchError` unless ``decoder`` was trained on ``encoder``'s features (same
    ``model_id``, feature width and token count)."""
    config = decoder.config
    if config.encoder_id != encoder.model_id:
        raise DecoderMismatchError(f"the picture decoder was trained on encoder {config.encoder_id or '(unnamed)'}, "
                                   f"not on {encoder.model_id}: its pictures of these features would be meaningless; "
                                   f"train one for this encoder with `jepa train-decoder`")
    if (config.embed_dim, config.num_tokens) != (encoder.embed_dim, encoder.num_tokens()):
        raise DecoderMismatchError(f"the picture decoder reads {config.num_tokens} tokens of {config.embed_dim} "
                                   f"features, the encoder gives {encoder.num_tokens()} of {encoder.embed_dim}")

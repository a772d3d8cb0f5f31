"""Checkpoint formats: ours (directory with safetensors + JSON), official V-JEPA 2 ``.pt`` files, and source
classification for the loaders.

Our format (``FORMAT``): a directory holding ``model.safetensors`` (keys prefixed ``encoder.`` / ``predictor.``)
and ``config.json`` (``format``, ``encoder`` and/or ``predictor`` config dicts, ``encoder_id``, ``metadata``).

Official files are read with ``torch.load(weights_only=True)``; a file that needs pickle code execution is
refused. Parameter names lose their ``module.`` / ``backbone.`` prefixes before strict loading.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from jepa_world_model.errors import CheckpointError, ConfigError
from jepa_world_model.checkpoints.shipped import DEFAULT_MODEL_DIR, DEFAULT_SOURCE  # noqa: F401  (re-exported: shipped model names)
from jepa_world_model.checkpoints.shipped import resolve_model_source as resolve_source  # noqa: F401  (re-exported)

FORMAT = "jepa_ros/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PARTS = ("encoder", "predictor")
_PREFIXES = ("module.", "backbone.")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SAMPLES_PER_TENSOR = 1024
#: LayerNorm eps of the official V-JEPA 2 models (``partial(nn.LayerNorm, eps=1e-6)`` in the reference
#: builders of the encoders and the AC predictor); files carry no eps, so loaders of ``.pt`` files set it.
OFFICIAL_LAYER_NORM_EPS = 1e-6
#: Entries of official files that hold each part, in the order loaders look for them.
OFFICIAL_KEYS = {"encoder": ("encoder", "target_encoder"), "predictor": ("predictor",)}


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading ``module.`` / ``backbone.`` (in any order, repeatedly) from every key."""
    out = {}
    for key, value in state_dict.items():
        name = key
        while name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        if name in out:
            raise CheckpointError(f"key {key!r} collides with another key after stripping prefixes: {name!r}")
        out[name] = value
    return out


def read_torch_file(path: str | os.PathLike, mmap: bool = False) -> Any:
    """``torch.load`` restricted to tensors and plain containers; refuses files needing pickle code. ``mmap``
    maps the file instead of reading it (zip-format files only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise CheckpointError(f"{path}: not a readable torch checkpoint (weights-only unpickler failed)") from exc
        raise CheckpointError(
            f"{path}: refused to load, the file needs pickle code execution (it references {found.group(1)}); "
            f"only tensors and plain containers are accepted. Re-save it as a plain dict of tensors.") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _read_mapped(path: str | os.PathLike) -> Any:
    """``read_torch_file`` memory-mapped (shapes without reading the weights); a file not in zip format is read."""
    try:
        return read_torch_file(path, mmap=True)
    except CheckpointError:
        return read_torch_file(path)


def official_part(path: str | os.PathLike, keys: Iterable[str], mmap: bool = False) -> dict[str, torch.Tensor]:
    """The first of ``keys`` present at the top level of an official ``.pt`` file, prefixes stripped (``mmap``:
    memory-mapped, for what the tensors' shapes tell).

    A file that is itself a flat state dict is returned as is.
    """
    keys = tuple(keys)
    obj = _read_mapped(path) if mmap else read_torch_file(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    for key in keys:
        if key in obj:
            if not _is_state_dict(obj[key]):
                raise CheckpointError(f"{path}: entry {key!r} is not a dict of tensors")
            return strip_prefixes(obj[key])
    if _is_state_dict(obj):
        return strip_prefixes(obj)
    raise CheckpointError(f"{path}: none of the entries {list(keys)} found; top-level keys: {sorted(obj)[:20]}")


def official_parts(path: str | os.PathLike) -> tuple[str, ...]:
    """The parts ("encoder", "predictor") an official ``.pt`` file holds (a flat state dict: judged by its
    parameter names); :class:`CheckpointError` when it holds neither."""
    obj = _read_mapped(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    found = tuple(part for part, keys in OFFICIAL_KEYS.items() if any(key in obj for key in keys))
    if found:
        return found
    if _is_state_dict(obj):
        names = strip_prefixes(obj)
        found = tuple(part for part, key in (("encoder", "patch_embed.proj.weight"),
                                             ("predictor", "predictor_embed.weight")) if key in names)
        if found:
            return found
    raise CheckpointError(f"{path}: holds no encoder or predictor (entries {sorted(OFFICIAL_KEYS)} or their "
                          f"weights); top-level keys: {sorted(obj)[:20]}")


def check_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`CheckpointError` naming the keys that are missing, unexpected or mis-shaped."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    extra = sorted(set(state_dict) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(state_dict)) if state_dict[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing key(s) {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        problems.append(f"unexpected key(s) {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    if shapes:
        problems.append(f"mis-shaped key(s) {shapes[:8]}{' ...' if len(shapes) > 8 else ''}")
    if problems:
        raise CheckpointError(f"{what} weights do not match the model: " + "; ".join(problems))


def load_strictly(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Check names and shapes (clear errors), then load; works for modules built on the meta device."""
    check_state_dict(module, state_dict, what)
    module.load_state_dict(dict(state_dict), strict=True, assign=True)


def init_weights(module: nn.Module, seed: int) -> None:
    """Deterministic in-place init of every parameter: normal (std 0.02) linear/conv weights, zero biases, unit
    norms; each block's output projections are scaled by 1/sqrt(2 * layer) as in the reference.

    Works on modules materialised with ``to_empty`` (every parameter is written).
    """
    gen = torch.Generator().manual_seed(seed)
    done: set[int] = set()
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Conv3d)):
                sub.weight.normal_(0.0, 0.02, generator=gen)
            elif isinstance(sub, nn.LayerNorm):
                sub.weight.fill_(1.0)
            else:
                continue
            if sub.bias is not None:
                sub.bias.zero_()
            done.update(id(p) for p in sub.parameters(recurse=False))
        for blocks in (m for m in module.modules() if isinstance(m, nn.ModuleList)):
            for layer, block in enumerate(blocks, start=1):
                block.attn.proj.weight.div_((2.0 * layer) ** 0.5)
                block.mlp.fc2.weight.div_((2.0 * layer) ** 0.5)
    missed = [name for name, p in module.named_parameters() if id(p) not in done]
    if missed:
        raise TypeError(f"init_weights does not know how to initialise {missed}")


def build_module(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()`` built on the meta device, materialised on CPU and initialised by :func:`init_weights`
    (skips torch's default init, which is slow for the large presets)."""
    with torch.device("meta"):
        module = factory()
    module.to_empty(device="cpu")
    init_weights(module, seed)
    return module


def fingerprint(module: nn.Module, config: Mapping[str, Any]) -> str:
    """16 hex chars identifying the weights (sampled, at bfloat16 precision so fp32/bf16 copies agree) and
    the config (minus its ``name``)."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in config.items() if k != "name"}, sort_keys=True).encode())
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            sample = flat[::max(1, flat.numel() // _SAMPLES_PER_TENSOR)][:_SAMPLES_PER_TENSOR]
            raw = sample.to(torch.float32).to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes()
            digest.update(f"{name}:{tuple(tensor.shape)}:".encode())
            digest.update(raw)
    return digest.hexdigest()[:16]


class FingerprintCache:
    """Recomputes :func:`fingerprint` only when a parameter was replaced or modified in place."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value = ""

    def get(self, module: nn.Module, config: Mapping[str, Any]) -> str:
        """The module's fingerprint, cached on parameter identity and version counters."""
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in module.parameters())
        if key != self._key:
            self._value = fingerprint(module, config)
            self._key = key
        return self._value


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """True for a directory in our format."""
    cfg = Path(path) / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, AttributeError):
        return False


def is_hf_dir(path: str | os.PathLike) -> bool:
    """True for a local Hugging Face V-JEPA 2 model directory."""
    cfg = Path(path) / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == "vjepa2"
    except (json.JSONDecodeError, AttributeError):
        return False


def classify_source(source: str | os.PathLike, presets: Iterable[str]) -> str:
    """``"preset"``, ``"ours"`` (our directory), ``"official"`` (.pt file), ``"hf_dir"`` or ``"hf_hub"``."""
    text = os.fspath(source)
    if text in set(presets):
        return "preset"
    path = Path(text).expanduser()
    if path.is_dir():
        if is_checkpoint_dir(path):
            return "ours"
        if is_hf_dir(path):
            return "hf_dir"
        raise CheckpointError(
            f"{text}: directory is neither a jepa_ros checkpoint ({CONFIG_FILE} with format {FORMAT!r}) nor a "
            f"Hugging Face V-JEPA 2 model ({CONFIG_FILE} with model_type 'vjepa2')")
    if path.is_file():
        return "official"
    if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
        return "hf_hub"
    raise ConfigError(
        f"unknown preset or model source {text!r}: not a preset ({sorted(presets)}), not an existing file or "
        f"directory, and not a Hugging Face hub id like 'facebook/vjepa2-vitl-fpc64-256'")


def read_checkpoint_config(directory: str | os.PathLike) -> dict:
    """The ``config.json`` of one of our checkpoint directories (validated format)."""
    path = Path(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint config ({exc})") from exc
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {data.get('format')!r} is not {FORMAT!r}")
    return data


def checkpoint_part(directory: str | os.PathLike, part: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Config dict and weights (prefix removed) of ``part`` ("encoder"/"predictor") of our checkpoint."""
    from safetensors.torch import load_file

    data = read_checkpoint_config(directory)
    if not data.get(part):
        raise CheckpointError(f"{directory}: checkpoint has no {part} (parts present: "
                              f"{[p for p in PARTS if data.get(p)]})")
    weights_path = Path(directory) / WEIGHTS_FILE
    try:
        weights = load_file(str(weights_path))
    except (OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: cannot read weights ({exc})") from exc
    prefix = part + "."
    return data[part], {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def save_checkpoint(directory: str | os.PathLike, encoder: nn.Module | None = None,
                    predictor: nn.Module | None = None, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``encoder`` and/or ``predictor`` to ``directory`` in our format; returns the directory.

    ``config.json`` holds their configs, ``encoder_id`` (the encoder's ``model_id``, else
    ``metadata["encoder_id"]``) and ``metadata`` (JSON-able, e.g. training details).
    """
    from safetensors.torch import save_file

    if encoder is None and predictor is None:
        raise ValueError("save_checkpoint needs an encoder, a predictor or both")
    metadata = dict(metadata or {})
    try:
        json.dumps(metadata)
    except TypeError as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"format": FORMAT, "encoder": None, "predictor": None,
                              "encoder_id": metadata.get("encoder_id"), "metadata": metadata}
    tensors: dict[str, torch.Tensor] = {}
    for part, module in (("encoder", encoder), ("predictor", predictor)):
        if module is None:
            continue
        config[part] = module.config.to_dict()
        for key, value in module.state_dict().items():
            tensors[f"{part}.{key}"] = value.detach().to("cpu").contiguous()
    if encoder is not None:
        config["encoder_id"] = encoder.model_id
    elif config["encoder_id"] is None and getattr(predictor, "encoder_id", None):
        config["encoder_id"] = predictor.encoder_id
    tmp_weights, tmp_config = out / (WEIGHTS_FILE + ".tmp"), out / (CONFIG_FILE + ".tmp")
    save_file(tensors, str(tmp_weights), metadata={"format": FORMAT})
    tmp_config.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_weights, out / WEIGHTS_FILE)
    os.replace(tmp_config, out / CONFIG_FILE)
    return out

"""Hugging Face transformers interop: weight-name mapping (HF ``VJEPA2Model`` <-> ours) and loading encoders
from a hub id or a local HF directory. ``transformers`` is imported only inside :func:`load_hf_encoder`.

Name mapping (``i`` = block index; ours are the official V-JEPA 2 names):

=====================================================  ====================================================
ours                                                   HF ``VJEPA2Model``
=====================================================  ====================================================
``patch_embed.proj.*``                                 ``encoder.embeddings.patch_embeddings.proj.*``
``blocks.i.attn.qkv.*`` (q, k, v stacked on dim 0)     ``encoder.layer.i.attention.{query,key,value}.*``
``blocks.i.attn.proj.*``                               ``encoder.layer.i.attention.proj.*``
``blocks.i.{norm1,norm2,mlp.fc1,mlp.fc2}.*``           ``encoder.layer.i.{norm1,norm2,mlp.fc1,mlp.fc2}.*``
``norm.*``                                             ``encoder.layernorm.*``
=====================================================  ====================================================
HF's masked-pretraining ``predictor.*`` (and a classifier's ``pooler.*``/``classifier.*``) are ignored.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

import torch

from jepa_world_model.config import EncoderConfig
from jepa_world_model.errors import CheckpointError, ConfigError, ModelNotAvailableError
from jepa_world_model.presets import ENCODER_PRESETS

_HF_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_OUR_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_QKV = ("query", "key", "value")
_SAME_IN_BLOCK = ("norm1.", "norm2.", "mlp.fc1.", "mlp.fc2.")


def hf_to_ours(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Encoder weights of an HF ``VJEPA2Model`` (or ``VJEPA2ForVideoClassification``) state dict -> ours."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        name = key[len("vjepa2."):] if key.startswith("vjepa2.") else key
        if not name.startswith("encoder."):
            continue
        if name.startswith("encoder.embeddings.patch_embeddings.proj."):
            out["patch_embed.proj." + name.rsplit(".", 1)[1]] = value
        elif name.startswith("encoder.layernorm."):
            out["norm." + name.rsplit(".", 1)[1]] = value
        elif match := _HF_LAYER.match(name):
            index, rest = match.groups()
            if rest.startswith("attention.") and rest.split(".")[1] in _QKV:
                _, which, kind = rest.split(".")
                qkv.setdefault((index, kind), {})[which] = value
            elif rest.startswith("attention.proj."):
                out[f"blocks.{index}.attn.proj.{rest.rsplit('.', 1)[1]}"] = value
            elif rest.startswith(_SAME_IN_BLOCK):
                out[f"blocks.{index}.{rest}"] = value
            else:
                raise CheckpointError(f"unknown HF encoder weight {key!r}")
        else:
            raise CheckpointError(f"unknown HF encoder weight {key!r}")
    for (index, kind), parts in qkv.items():
        missing = [w for w in _QKV if w not in parts]
        if missing:
            raise CheckpointError(f"HF weights lack encoder.layer.{index}.attention.{missing[0]}.{kind}")
        out[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat([parts[w] for w in _QKV], dim=0)
    return out


def ours_to_hf(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our encoder weights -> the ``encoder.*`` part of an HF ``VJEPA2Model`` state dict."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("patch_embed.proj."):
            out["encoder.embeddings.patch_embeddings." + key[len("patch_embed."):]] = value
        elif key.startswith("norm."):
            out["encoder.layernorm." + key[len("norm."):]] = value
        elif match := _OUR_BLOCK.match(key):
            index, rest = match.groups()
            prefix = f"encoder.layer.{index}."
            if rest.startswith("attn.qkv."):
                kind = rest.rsplit(".", 1)[1]
                for which, part in zip(_QKV, value.chunk(3, dim=0)):
                    out[f"{prefix}attention.{which}.{kind}"] = part
            elif rest.startswith("attn.proj."):
                out[prefix + "attention." + rest[len("attn."):]] = value
            elif rest.startswith(_SAME_IN_BLOCK):
                out[prefix + rest] = value
            else:
                raise CheckpointError(f"unknown encoder weight {key!r}")
        else:
            raise CheckpointError(f"unknown encoder weight {key!r}")
    return out


def encoder_config_from_hf(hf_config: Any) -> EncoderConfig:
    """:class:`EncoderConfig` equivalent to an HF ``VJEPA2Config`` (preprocessing: the V-JEPA 2 defaults)."""
    if getattr(hf_config, "hidden_act", "gelu") != "gelu":
        raise ConfigError(f"HF config hidden_act={hf_config.hidden_act!r} is not supported (only 'gelu')")
    if getattr(hf_config, "in_chans", 3) != 3:
        raise ConfigError(f"HF config in_chans={hf_config.in_chans} is not supported (only 3)")
    patch = hf_config.patch_size
    if isinstance(patch, (list, tuple)):
        if len(set(patch)) != 1:
            raise ConfigError(f"non-square HF patch_size {patch} is not supported")
        patch = patch[0]
    width = hf_config.hidden_size
    fields = {"patch_size": int(patch), "tubelet_size": hf_config.tubelet_size, "crop_size": hf_config.crop_size,
              "width": width, "depth": hf_config.num_hidden_layers, "num_heads": hf_config.num_attention_heads,
              "mlp_hidden": int(width * hf_config.mlp_ratio), "qkv_bias": bool(hf_config.qkv_bias),
              "layer_norm_eps": hf_config.layer_norm_eps}
    name = next((n for n, p in ENCODER_PRESETS.items()
                 if all(getattr(p, k) == fields[k] for k in ("width", "depth", "crop_size", "patch_size"))), "hf")
    return EncoderConfig(name=name, **fields)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks for cached files only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_hf_encoder(source: str, local_dir: bool) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """Config and our-named encoder weights from a local HF directory or a hub id.

    Hub ids use the local cache only when ``HF_HUB_OFFLINE`` is set; without network a cached copy is used;
    an id that cannot be obtained raises :class:`ModelNotAvailableError` explaining how to use a local copy.
    """
    from transformers import VJEPA2Model

    try:
        model = VJEPA2Model.from_pretrained(source, local_files_only=local_dir or hub_offline())
    except OSError as exc:
        if local_dir:
            raise CheckpointError(f"{source}: cannot load the Hugging Face model directory ({exc})") from exc
        offline = hub_offline()
        how = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline
               else "it is not cached and the hub could not be reached (or has no such model)")
        raise ModelNotAvailableError(
            f"cannot load Hugging Face model {source!r}: {how}. On a machine with network run "
            f"`huggingface-cli download {source} --local-dir DIR` (newer hubs: `hf download ...`), copy DIR "
            f"here and pass DIR as the source{' (or unset HF_HUB_OFFLINE to download)' if offline else ''}."
        ) from exc
    state_dict = hf_to_ours(model.state_dict())
    return encoder_config_from_hf(model.config), state_dict

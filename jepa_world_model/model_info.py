"""``jepa model-info SOURCE [--json PATH]``: describe an encoder and/or predictor and time one forward pass.

SOURCE is anything the loaders accept (preset, jepa_ros checkpoint directory, official ``.pt`` file, Hugging
Face id or directory); every part it holds is reported: sizes, parameter count, action/state dims, and the output
shape and wall time of one pass on a dummy input (a black image; a one-step rollout from zero features).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .checkpoint import PARTS, classify_source, read_checkpoint_config
from .errors import WorldModelError
from .presets import ENCODER_PRESETS, PREDICTOR_PRESETS

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the CLI arguments."""
    parser.add_argument("source", help="preset name, checkpoint directory, official .pt file or HF id/directory")
    parser.add_argument("--json", dest="json_path", metavar="PATH", help="also write the report as JSON here")
    parser.add_argument("--device", default="cpu", help="torch device for the timing pass (default: cpu)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32", help="weights dtype (default: float32)")
    parser.add_argument("--preset", default="ac_vit_g",
                        help="predictor preset giving heads/grid for official .pt files (default: ac_vit_g)")


def _parts_of(source: str) -> tuple[str, ...]:
    kinds = {part: classify_source(source, presets)
             for part, presets in (("encoder", ENCODER_PRESETS), ("predictor", PREDICTOR_PRESETS))}
    if "preset" in kinds.values():
        return tuple(part for part, kind in kinds.items() if kind == "preset")
    kind = kinds["encoder"]
    if kind == "ours":
        config = read_checkpoint_config(source)
        return tuple(part for part in PARTS if config.get(part))
    if kind == "official":
        return PARTS
    return ("encoder",)


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1e3


def _param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_encoder(source: str, device: str, dtype: torch.dtype) -> dict:
    """Sizes of the encoder at ``source`` and one timed pass on a black image."""
    from .encoder import load_encoder

    encoder = load_encoder(source).to(device, dtype)
    cfg = encoder.config
    image = torch.zeros(1, cfg.crop_size, cfg.crop_size, 3, dtype=torch.uint8)
    with torch.inference_mode():
        out, ms = _timed(lambda: encoder(image))
    return {"kind": "encoder", "name": cfg.name, "width": cfg.width, "depth": cfg.depth, "heads": cfg.num_heads,
            "mlp_hidden": cfg.mlp_hidden, "patch_size": cfg.patch_size, "tubelet_size": cfg.tubelet_size,
            "crop_size": cfg.crop_size, "resize_mode": cfg.resize_mode, "output_layer_norm": cfg.output_layer_norm,
            "parameters": _param_count(encoder), "model_id": encoder.model_id,
            "forward": {"input_shape": list(image.shape), "output_shape": list(out.shape), "time_ms": round(ms, 3)}}


def describe_predictor(source: str, device: str, dtype: torch.dtype, preset: str = "ac_vit_g") -> dict:
    """Sizes of the predictor at ``source`` and one timed one-step rollout from zero features (``preset``
    fills in heads/grid for official files)."""
    from .predictor import load_predictor

    overrides = {"preset": preset} if classify_source(source, PREDICTOR_PRESETS) == "official" else {}
    predictor = load_predictor(source, **overrides).to(device, dtype)
    cfg = predictor.config
    features = torch.zeros(1, 1, cfg.tokens_per_frame, cfg.embed_dim)
    states = torch.tensor(cfg.state_space.mean).view(1, 1, -1)
    actions = torch.zeros(1, 1, cfg.action_dim)
    out, ms = _timed(lambda: predictor.rollout(features, states, actions))
    return {"kind": "predictor", "name": cfg.name, "width": cfg.width, "depth": cfg.depth, "heads": cfg.num_heads,
            "mlp_hidden": cfg.mlp_hidden, "embed_dim": cfg.embed_dim, "grid_size": list(cfg.grid_size),
            "action_dim": cfg.action_dim, "state_dim": cfg.state_dim, "action_names": list(cfg.action_space.names),
            "state_names": list(cfg.state_space.names), "state_update": cfg.state_update,
            "max_horizon": predictor.max_horizon, "encoder_id": predictor.encoder_id,
            "parameters": _param_count(predictor), "model_id": predictor.model_id,
            "forward": {"input_shape": list(features.shape), "actions_shape": list(actions.shape),
                        "output_shape": list(out.shape), "time_ms": round(ms, 3)}}


def describe(source: str, device: str = "cpu", dtype: torch.dtype = torch.float32,
             preset: str = "ac_vit_g") -> dict:
    """Report for every part ``source`` holds: {"source", "parts": {"encoder": {...}, "predictor": {...}}}."""
    parts, errors = {}, {}
    for part in _parts_of(source):
        try:
            if part == "encoder":
                parts[part] = describe_encoder(source, device, dtype)
            else:
                parts[part] = describe_predictor(source, device, dtype, preset)
        except WorldModelError as exc:
            errors[part] = str(exc)
    if not parts:
        raise WorldModelError(f"{source}: no loadable encoder or predictor: {errors}")
    return {"source": source, "device": device, "dtype": str(dtype).replace("torch.", ""), "parts": parts}


def _print(report: dict) -> None:
    print(f"source: {report['source']}  (device {report['device']}, {report['dtype']})")
    for info in report["parts"].values():
        fwd = info["forward"]
        print(f"{info['kind']} '{info['name']}': width {info['width']}, depth {info['depth']}, heads "
              f"{info['heads']}, mlp {info['mlp_hidden']}, {info['parameters']:,} parameters, id {info['model_id']}")
        if info["kind"] == "predictor":
            print(f"  features D={info['embed_dim']}, grid {info['grid_size']}, actions {info['action_dim']}-D "
                  f"{info['action_names']}, states {info['state_dim']}-D {info['state_names']}, "
                  f"max_horizon {info['max_horizon']}, encoder_id {info['encoder_id']}")
        print(f"  forward {fwd['input_shape']} -> {fwd['output_shape']} in {fwd['time_ms']:.1f} ms")


def main(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 1 when nothing could be loaded."""
    try:
        report = describe(os.fspath(args.source), args.device, _DTYPES[args.dtype], args.preset)
    except (WorldModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print(report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="jepa model-info", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

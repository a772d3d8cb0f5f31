"""``jepa model-info SOURCE [--json PATH]``: describe an encoder and/or predictor and time one forward pass.

SOURCE is anything the loaders accept (preset, ``default`` = the shipped sim model, jepa_ros checkpoint
directory, official ``.pt`` file, Hugging Face id or directory); every part it holds is reported: sizes,
parameter count, LayerNorm eps, action/state dims and state update, and the output shape and wall time of one
pass on a dummy input (a black image; a one-step rollout from zero features). A part that is present but cannot
be loaded is reported with the reason (exit status 1).
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

from jepa_world_model.checkpoints.files import PARTS, classify_source, official_parts, read_checkpoint_config
from jepa_world_model.errors import WorldModelError
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.presets import ENCODER_PRESETS, PREDICTOR_PRESETS

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_MISSING = "n/a"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the CLI arguments."""
    parser.add_argument("source", help="preset name, 'default' (the shipped sim model), checkpoint directory, "
                                       "official .pt file or HF id/directory")
    parser.add_argument("--json", dest="json_path", metavar="PATH",
                        help="also write the report as JSON here (default: print only)")
    parser.add_argument("--device", default="cpu", help="torch device for the timing pass (default: %(default)s)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32",
                        help="weights dtype (default: %(default)s)")
    parser.add_argument("--preset", default="ac_vit_g",
                        help="predictor preset giving grid, time steps, action/state spaces and, for its width, "
                             "the heads of official .pt files (default: %(default)s)")
    parser.add_argument("--encoder-heads", type=int, metavar="N",
                        help="attention heads of an official encoder whose width matches no preset "
                             "(default: from the preset of that width)")
    parser.add_argument("--predictor-heads", type=int, metavar="N",
                        help="attention heads of an official predictor whose width matches no preset "
                             "(default: from the preset of that width)")


def parts_of(source: str | os.PathLike) -> tuple[str, ...]:
    """The parts ("encoder", "predictor") that ``source`` (already resolved) holds."""
    kinds = {part: classify_source(source, presets)
             for part, presets in (("encoder", ENCODER_PRESETS), ("predictor", PREDICTOR_PRESETS))}
    if "preset" in kinds.values():
        return tuple(part for part, kind in kinds.items() if kind == "preset")
    kind = kinds["encoder"]
    if kind == "ours":
        config = read_checkpoint_config(source)
        return tuple(part for part in PARTS if config.get(part))
    if kind == "official":
        return official_parts(source)
    return ("encoder",)


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1e3


def _param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_encoder(source: str | os.PathLike, device: str, dtype: torch.dtype, **overrides: Any) -> dict:
    """Sizes of the encoder at ``source`` and one timed pass on a black image."""
    from jepa_world_model.networks.encoder import load_encoder

    encoder = load_encoder(source, **overrides).to(device, dtype)
    cfg = encoder.config
    image = torch.zeros(1, cfg.crop_size, cfg.crop_size, 3, dtype=torch.uint8)
    with torch.inference_mode():
        out, ms = _timed(lambda: encoder(image))
    return {"kind": "encoder", "name": cfg.name, "width": cfg.width, "depth": cfg.depth, "heads": cfg.num_heads,
            "mlp_hidden": cfg.mlp_hidden, "layer_norm_eps": cfg.layer_norm_eps, "patch_size": cfg.patch_size,
            "tubelet_size": cfg.tubelet_size, "crop_size": cfg.crop_size, "resize_mode": cfg.resize_mode,
            "output_layer_norm": cfg.output_layer_norm, "parameters": _param_count(encoder),
            "model_id": encoder.model_id,
            "forward": {"input_shape": list(image.shape), "output_shape": list(out.shape), "time_ms": round(ms, 2)}}


def describe_predictor(source: str | os.PathLike, device: str, dtype: torch.dtype, **overrides: Any) -> dict:
    """Sizes of the predictor at ``source`` and one timed one-step rollout from zero features."""
    from jepa_world_model.checkpoints.predictor_loading import load_predictor

    predictor = load_predictor(source, **overrides).to(device, dtype)
    cfg = predictor.config
    features = torch.zeros(1, 1, cfg.tokens_per_frame, cfg.embed_dim)
    states = torch.tensor(cfg.state_space.mean).view(1, 1, -1)
    actions = torch.zeros(1, 1, cfg.action_dim)
    out, ms = _timed(lambda: predictor.rollout(features, states, actions))
    return {"kind": "predictor", "name": cfg.name, "width": cfg.width, "depth": cfg.depth, "heads": cfg.num_heads,
            "mlp_hidden": cfg.mlp_hidden, "layer_norm_eps": cfg.layer_norm_eps, "embed_dim": cfg.embed_dim,
            "grid_size": list(cfg.grid_size), "action_dim": cfg.action_dim, "state_dim": cfg.state_dim,
            "action_names": list(cfg.action_space.names), "state_names": list(cfg.state_space.names),
            "state_update": cfg.state_update, "max_horizon": predictor.max_horizon,
            "encoder_id": predictor.encoder_id, "parameters": _param_count(predictor), "model_id": predictor.model_id,
            "forward": {"input_shape": list(features.shape), "actions_shape": list(actions.shape),
                        "output_shape": list(out.shape), "time_ms": round(ms, 2)}}


def describe(source: str | os.PathLike, device: str = "cpu", dtype: torch.dtype = torch.float32,
             preset: str = "ac_vit_g", encoder_heads: int | None = None,
             predictor_heads: int | None = None) -> dict:
    """Report for every part ``source`` holds: {"source", "path", "device", "dtype", "parts": {"encoder": {...},
    "predictor": {...}}, "errors": {part: reason}} (parts that are present but failed to load are in
    ``errors``); :class:`WorldModelError` when none loads."""
    path = resolve_model_source(source)
    official = classify_source(path, PREDICTOR_PRESETS) == "official"
    encoder_overrides = {"num_heads": encoder_heads} if official and encoder_heads else {}
    predictor_overrides = {"preset": preset} if official else {}
    if official and predictor_heads:
        predictor_overrides["num_heads"] = predictor_heads
    parts, errors = {}, {}
    for part in parts_of(path):
        try:
            if part == "encoder":
                parts[part] = describe_encoder(path, device, dtype, **encoder_overrides)
            else:
                parts[part] = describe_predictor(path, device, dtype, **predictor_overrides)
        except WorldModelError as exc:
            errors[part] = str(exc)
    if not parts:
        raise WorldModelError(f"{source}: no loadable encoder or predictor: {errors}")
    return {"source": os.fspath(source), "path": os.fspath(path), "device": device,
            "dtype": str(dtype).replace("torch.", ""), "parts": parts, "errors": errors}


def _text(value: Any) -> str:
    return _MISSING if value is None else str(value)


def format_report(report: dict) -> str:
    """The report as the lines ``jepa model-info`` prints."""
    where = "" if report["path"] == report["source"] else f" = {report['path']}"
    lines = [f"source: {report['source']}{where}  (device {report['device']}, {report['dtype']})"]
    for info in report["parts"].values():
        fwd = info["forward"]
        lines.append(f"{info['kind']} '{info['name']}': width {info['width']}, depth {info['depth']}, heads "
                     f"{info['heads']}, mlp {info['mlp_hidden']}, LayerNorm eps {info['layer_norm_eps']:g}, "
                     f"{info['parameters']:,} parameters, id {info['model_id']}")
        if info["kind"] == "encoder":
            lines.append(f"  patch {info['patch_size']}, tubelet {info['tubelet_size']}, crop {info['crop_size']} "
                         f"({info['resize_mode']}), output layer-norm {'on' if info['output_layer_norm'] else 'off'}")
        else:
            lines.append(f"  features D={info['embed_dim']}, grid {info['grid_size']}, actions {info['action_dim']}-D "
                         f"{info['action_names']}, states {info['state_dim']}-D {info['state_names']}, state update "
                         f"{info['state_update']}, max_horizon {info['max_horizon']}, encoder_id "
                         f"{_text(info['encoder_id'])}")
        lines.append(f"  forward {fwd['input_shape']} -> {fwd['output_shape']} in {fwd['time_ms']:.1f} ms")
    for part, reason in report["errors"].items():
        lines.append(f"{part}: not loaded: {reason}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the command; 0 when every part the source holds loaded, 1 otherwise."""
    try:
        report = describe(args.source, args.device, _DTYPES[args.dtype], args.preset, args.encoder_heads,
                          args.predictor_heads)
    except (WorldModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="jepa model-info", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

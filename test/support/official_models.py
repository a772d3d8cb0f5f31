"""Shared helpers of the tests that run official-format models (no tests here): a tiny V-JEPA 2 encoder file and a
tiny V-JEPA 2-AC predictor file, written as Meta releases them.

The files are what the official loaders meet in a release: torch ``.pt`` dicts with a top-level ``encoder`` /
``predictor`` entry, parameter names prefixed ``module.backbone.``, nothing else that says their sizes. The encoder
has ViT-L's width (1024; heads and the 256 px input come from the ``vit_l`` preset of that width) with one block
and a small MLP, so it encodes a 256 px frame in tens of milliseconds on a CPU; the predictor is ``ac_vit_g``'s
grid (16 x 16 tokens), 7-D actions and states and ``ee_pose`` state update on a width of 64 (heads from the
``tiny`` preset) and one block. Random weights: the models have never seen data.
"""
from __future__ import annotations

from pathlib import Path

#: what official files prefix their parameter names with (DDP's ``module.`` and the wrapper's ``backbone.``)
PREFIX = "module.backbone."
#: the input side (px) of the official V-JEPA 2 encoders, and of the tiny one written here
INPUT_SIZE = 256


def official_pair(directory: Path) -> tuple[Path, Path]:
    """Write ``encoder.pt`` and ``predictor.pt`` in official format into ``directory``; returns their paths."""
    import torch

    from jepa_world_model import load_encoder, load_predictor

    encoder = load_encoder("vit_l", depth=1, mlp_hidden=64, seed=1)
    predictor = load_predictor("ac_vit_g", embed_dim=encoder.embed_dim, width=64, num_heads=4, depth=1,
                               mlp_hidden=64, extrinsics_dim=None, seed=2)
    paths = directory / "encoder.pt", directory / "predictor.pt"
    for path, key, module in zip(paths, ("encoder", "predictor"), (encoder, predictor)):
        torch.save({key: {PREFIX + name: value for name, value in module.state_dict().items()}, "epoch": 1}, path)
    return paths

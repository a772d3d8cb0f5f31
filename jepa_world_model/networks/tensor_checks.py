"""Validation of tensors passed to the models: clear :class:`InputError` messages instead of shape errors deep
inside torch."""
from __future__ import annotations

from typing import Any

import torch

from jepa_world_model.errors import InputError


def check_tensor(name: str, x: Any, ndim: int, last: int | None = None) -> torch.Tensor:
    """``x`` itself when it is a finite floating-point tensor of ``ndim`` dims, none empty, whose last dim is
    ``last`` (when given); otherwise :class:`InputError` naming ``name`` and the problem."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dims, got shape {tuple(x.shape)}")
    if last is not None and x.shape[-1] != last:
        raise InputError(f"{name} has last dim {x.shape[-1]}, the predictor expects {last} (shape {tuple(x.shape)})")
    if 0 in x.shape:
        raise InputError(f"{name} has an empty dimension: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{name} must be floating point, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise InputError(f"{name} contains NaN or Inf")
    return x

"""The optimizer every recipe uses: AdamW with weight decay on matrices only.

Rules: biases and norm weights (1-D parameters) get no weight decay; frozen parameters are left out; the
parameter order is the module's, so a saved optimizer state loads back onto the same module.
"""
from __future__ import annotations

import torch
from torch import nn


def make_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over ``module``'s trainable parameters; biases and norm weights (1-D parameters) get no weight decay."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999))

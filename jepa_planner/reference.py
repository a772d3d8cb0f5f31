"""Reference CEM: a deliberately plain implementation of the published V-JEPA 2-AC planning procedure.

Sample Gaussian action sequences, clip each axis to the box, roll them out, score the final predicted
features with the L1 energy, refit mean/std to the top-k with momentum, repeat; return the final mean.
No early exit, no elite reuse, no buffer reuse, no NaN handling: it is the benchmark baseline.
"""
from __future__ import annotations

from typing import Sequence

import torch

from jepa_planner.cem import DynamicsModel
from jepa_planner.energy import EnergyFn, l1_energy

#: The published setting (V-JEPA 2-AC): 800 samples x 10 iterations, top 10, momentum 0.15 on mean and std.
PAPER = dict(samples=800, iterations=10, elites=10, momentum_mean=0.15, momentum_std=0.15)


def reference_cem(model: DynamicsModel, context: torch.Tensor, state: torch.Tensor, goal: torch.Tensor, *,
                  low: Sequence[float], high: Sequence[float], samples: int = PAPER["samples"],
                  iterations: int = PAPER["iterations"], elites: int = PAPER["elites"], horizon: int = 1,
                  momentum_mean: float = PAPER["momentum_mean"], momentum_std: float = PAPER["momentum_std"],
                  init_std: float | Sequence[float] | None = None, energy: EnergyFn = l1_energy,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Plan `horizon` actions (H, A) for context (1,C,N,D), state (1,C,S) towards goal features (N,D).

    The defaults are the published setting (`PAPER`); `init_std` None means half the box width per axis (as
    `CEMConfig`).
    """
    device = context.device
    low_t = torch.as_tensor(low, dtype=torch.float32, device=device)
    high_t = torch.as_tensor(high, dtype=torch.float32, device=device)
    if init_std is None:
        std = ((high_t - low_t) / 2).expand(horizon, -1).clone()
    else:
        std = torch.as_tensor(init_std, dtype=torch.float32, device=device).expand(horizon, low_t.numel()).clone()
    mean = torch.zeros(horizon, low_t.numel(), device=device)
    with torch.no_grad():
        for _ in range(iterations):
            noise = torch.randn(samples, horizon, low_t.numel(), generator=generator, device=device)
            actions = torch.clamp(mean + std * noise, min=low_t, max=high_t)
            predictions = model.rollout(context, state, actions)
            scores = energy(predictions[:, -1], goal)
            best = torch.argsort(scores)[:elites]
            elite_actions = actions[best]
            mean = (1 - momentum_mean) * elite_actions.mean(dim=0) + momentum_mean * mean
            std = (1 - momentum_std) * elite_actions.std(dim=0) + momentum_std * std
    return torch.clamp(mean, min=low_t, max=high_t)

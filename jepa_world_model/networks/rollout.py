"""Cached autoregressive rollout of an :class:`~jepa_world_model.networks.predictor.ACPredictor`, and
:class:`PreparedContext` for many rollouts from one shared context.

Keys/values of earlier frames are cached (exact, thanks to block-causal attention): each frame is processed
once, and a shared context is processed once per chunk of the batch (``ACPredictor.rollout_chunk_size``).
Future states follow ``config.state_update`` (:mod:`jepa_world_model.networks.state_update`). Entry points are the
predictor's ``rollout`` and ``prepare_context`` methods.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from jepa_world_model.errors import InputError
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.networks.state_update import context_actions as derive_context_actions
from jepa_world_model.networks.state_update import next_state
from jepa_world_model.networks.tensor_checks import check_tensor
from jepa_world_model.networks.vit import block_causal_mask

_CPU_CHUNK_ELEMENTS = 1 << 20  # see preferred_batch
Past = list[tuple[torch.Tensor, torch.Tensor] | None]


def rollout(predictor: "nn.Module", features: Any, states: Any, actions: Any,
            context_actions: Any = None) -> torch.Tensor:
    """Predictions (B, H, N, D); see :meth:`ACPredictor.rollout` (call it under inference mode)."""
    features, states, context_actions = check_context(predictor, features, states, context_actions)
    actions = check_actions(predictor, actions, features.shape[1])
    ctx_batch, ctx_steps = features.shape[:2]
    batch = actions.shape[0]
    if ctx_batch not in (1, batch):
        raise InputError(f"context batch {ctx_batch} must be 1 or match the {batch} action sequences")
    chunk = preferred_batch(predictor, actions.device) or batch
    if batch > chunk:
        parts = []
        for start in range(0, batch, chunk):
            pick = slice(start, start + chunk) if ctx_batch > 1 else slice(None)
            parts.append(rollout(predictor, features[pick], states[pick], actions[start:start + chunk],
                                 context_actions[pick]))
        return torch.cat(parts)
    cfg = predictor.config
    horizon = actions.shape[1]
    past = context_past(predictor, features, states, context_actions)
    x = predictor.tokens(predictor.predictor_embed(features[:, -1]).unsqueeze(1),
                         predictor.normalise(actions[:, :1], cfg.action_space),
                         predictor.normalise(states[:, -1:], cfg.state_space))
    cos, sin = predictor.rope(ctx_steps - 1, 1, x.device)
    for i, block in enumerate(predictor.predictor_blocks):
        x, kv = block.forward_cached(x, cos, sin, past[i])
        past[i] = kv if horizon > 1 else None
    return continue_rollout(predictor, x, past, features[:, -1], states[:, -1], actions, ctx_steps - 1)


def prepare_context(predictor: "nn.Module", features: Any, states: Any,
                    context_actions: Any = None) -> "PreparedContext":
    """A :class:`PreparedContext`; see :meth:`ACPredictor.prepare_context` (call it under inference mode)."""
    features, states, context_actions = check_context(predictor, features, states, context_actions)
    if features.shape[0] != 1:
        raise InputError(f"prepare_context needs a shared context (batch 1), got batch {features.shape[0]}")
    return PreparedContext(predictor, features, states, context_actions)


def check_context(predictor: "nn.Module", features: Any, states: Any, context_actions: Any
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate a rollout context and move it to the model's device; fills in default context actions."""
    cfg = predictor.config
    features = predictor.check_features("features", features)
    states = check_tensor("states", states, 3, cfg.state_dim)
    ctx_batch, ctx_steps = features.shape[:2]
    if states.shape[:2] != (ctx_batch, ctx_steps):
        raise InputError(f"states {tuple(states.shape)} and features {tuple(features.shape)} disagree on (B, C)")
    weight = predictor.predictor_embed.weight
    features = features.to(weight.device, weight.dtype)
    states = states.to(weight.device, torch.float32)
    if context_actions is None or ctx_steps == 1:
        return features, states, derive_context_actions(cfg, states)
    context_actions = check_tensor("context_actions", context_actions, 3, cfg.action_dim)
    if context_actions.shape[:2] != (ctx_batch, ctx_steps - 1):
        raise InputError(f"context_actions must be ({ctx_batch}, {ctx_steps - 1}, {cfg.action_dim}), got "
                         f"{tuple(context_actions.shape)}")
    return features, states, context_actions.to(weight.device, torch.float32)


def check_actions(predictor: "nn.Module", actions: Any, ctx_steps: int) -> torch.Tensor:
    """Validate planned actions (B, H, A) against the time steps left after ``ctx_steps`` context frames."""
    cfg = predictor.config
    actions = check_tensor("actions", actions, 3, cfg.action_dim)
    horizon = actions.shape[1]
    if ctx_steps + horizon - 1 > cfg.max_steps:
        raise InputError(f"horizon {horizon} with {ctx_steps} context frame(s) needs {ctx_steps + horizon - 1} "
                         f"time steps; the predictor supports max_steps={cfg.max_steps} "
                         f"(max_horizon={predictor.max_horizon} from one context frame)")
    return actions.to(predictor.predictor_embed.weight.device, torch.float32)


def preferred_batch(predictor: "nn.Module", device: torch.device) -> int | None:
    """Sequences per rollout pass: ``rollout_chunk_size``, or when that is None: with a single CPU thread as
    many sequences as keep one pass's largest activation within ``_CPU_CHUNK_ELEMENTS`` (elementwise work on
    cache-resident chunks is several times faster than streaming it through memory); otherwise None (any batch
    at once). Several CPU threads are left whole batches: every op is a fork/join, and on a shared, busy machine
    the many small ops of chunked passes made rollouts several times slower."""
    if predictor.rollout_chunk_size is not None:
        return predictor.rollout_chunk_size
    if device.type != "cpu" or torch.get_num_threads() > 1:
        return None
    cfg = predictor.config
    per_sequence = predictor.tokens_per_step * max(cfg.mlp_hidden, 3 * cfg.width)
    return max(1, _CPU_CHUNK_ELEMENTS // per_sequence)


def context_past(predictor: "nn.Module", features: torch.Tensor, states: torch.Tensor,
                 context_actions: torch.Tensor) -> Past:
    """Per-layer keys/values of the context frames before the last one (None for a one-frame context)."""
    cfg = predictor.config
    steps = features.shape[1] - 1
    if steps == 0:
        return [None] * cfg.depth
    x = predictor.tokens(predictor.predictor_embed(features[:, :-1]),
                         predictor.normalise(context_actions, cfg.action_space),
                         predictor.normalise(states[:, :-1], cfg.state_space))
    cos, sin = predictor.rope(0, steps, x.device)
    mask = block_causal_mask(steps, predictor.tokens_per_step, x.device)
    past: Past = []
    for block in predictor.predictor_blocks:
        x, kv = block.forward_cached(x, cos, sin, None, mask)
        past.append(kv)
    return past


def continue_rollout(predictor: "nn.Module", x: torch.Tensor, past: Past, frame: torch.Tensor, state: torch.Tensor,
                     actions: torch.Tensor, start: int) -> torch.Tensor:
    """Predictions (B, H, N, D) from the blocks' output ``x`` (B, 2+N, W) on the first rollout step (time
    ``start``, that step's frame ``frame`` (B|1, N, D) and state ``state`` (B|1, S)) and every layer's keys/values
    up to that step (used when H > 1)."""
    cfg = predictor.config
    batch, horizon = actions.shape[:2]
    out = torch.empty(batch, horizon, cfg.tokens_per_frame, cfg.embed_dim, device=x.device,
                      dtype=predictor.predictor_embed.weight.dtype)
    for step in range(horizon):
        keep = step < horizon - 1
        if step:
            x = predictor.tokens(predictor.predictor_embed(frame).unsqueeze(1),
                                 predictor.normalise(actions[:, step:step + 1], cfg.action_space),
                                 predictor.normalise(state.unsqueeze(1), cfg.state_space))
            cos, sin = predictor.rope(start + step, 1, x.device)
            for i, block in enumerate(predictor.predictor_blocks):
                x, kv = block.forward_cached(x, cos, sin, past[i])
                past[i] = kv if keep else None
        pred = predictor.readout(x)[:, 0]
        if cfg.residual:
            pred = pred + frame.to(pred.dtype)
        if cfg.normalize_rollout:
            pred = layer_norm_features(pred)
        out[:, step] = pred
        if keep:
            frame = pred
            state = next_state(cfg, state.expand(batch, -1), actions[:, step])
    return out


class PreparedContext:
    """A shared rollout context with the work that does not depend on the actions done once (built by
    :meth:`ACPredictor.prepare_context`; the predictor's weights must not change while it is used).

    Besides the cached keys/values of earlier context frames, the first rollout step's tokens [action, state,
    patches] differ between sequences only in the action token, so the first block's work on the state and
    patch tokens (layer norm, projections, rotary positions, their attention among themselves) is shared, and
    per sequence only the action token's own projections and its attention scores remain (the softmax split
    in :meth:`Block.forward_split` keeps the result exact). Later blocks and steps run as in ``rollout``.
    """

    def __init__(self, predictor: "nn.Module", features: torch.Tensor, states: torch.Tensor,
                 context_actions: torch.Tensor) -> None:
        cfg = predictor.config
        self.predictor = predictor
        self.context_steps = features.shape[1]
        self._state = states[:, -1]
        self._frame = features[:, -1]
        self._past = context_past(predictor, features, states, context_actions)
        shared = torch.cat([predictor.state_encoder(predictor.normalise(self._state, cfg.state_space)),
                            predictor.predictor_embed(features[0, -1])])
        cos, sin = predictor.rope(self.context_steps - 1, 1, features.device)
        self._own_tables = cos[:1], sin[:1]
        self._tables = cos, sin
        self._first = predictor.predictor_blocks[0].share(shared, cos[1:], sin[1:], self._past[0])

    @property
    def preferred_batch(self) -> int | None:
        """Sequences per ``rollout`` call that run fastest (larger batches are split into these; None: any)."""
        return preferred_batch(self.predictor, self._state.device)

    @torch.inference_mode()
    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        """Predictions (B, H, N, D) for action sequences (B, H, A) in physical units, as
        ``predictor.rollout(features, states, actions)`` for the prepared context."""
        predictor = self.predictor
        actions = check_actions(predictor, actions, self.context_steps)
        batch, horizon = actions.shape[:2]
        chunk = preferred_batch(predictor, actions.device) or batch
        if batch > chunk:
            return torch.cat([self.rollout(actions[start:start + chunk]) for start in range(0, batch, chunk)])
        blocks = predictor.predictor_blocks
        own = predictor.action_encoder(predictor.normalise(actions[:, 0], predictor.config.action_space))
        x, (k, v) = blocks[0].forward_split(self._first, own, *self._own_tables)
        past: Past = [None] * len(blocks)
        if horizon > 1:
            shape = (batch, *self._first.k.shape)
            past[0] = (torch.cat([self._first.k.expand(shape), k], dim=2),
                       torch.cat([self._first.v.expand(shape), v], dim=2))
        for i in range(1, len(blocks)):
            x, kv = blocks[i].forward_cached(x, *self._tables, self._past[i])
            past[i] = kv if horizon > 1 else None
        return continue_rollout(predictor, x, past, self._frame, self._state, actions, self.context_steps - 1)

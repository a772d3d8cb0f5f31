"""Action-conditioned predictor (V-JEPA 2-AC layout) with teacher-forced and autoregressive interfaces, and
``load_predictor``.

Per time step t the token sequence holds [action token, state token, N patch tokens]. Actions and states are
normalised with the config's ``ActionSpace``/``StateSpace`` and embedded by linear layers; patch features by
``predictor_embed`` (D -> width). Blocks use 3D rotary positions (action/state tokens only get the temporal
part) and block-causal attention (a token of step t sees every token of steps <= t). Patch outputs go through
``predictor_norm`` and ``predictor_proj`` (width -> D). Output t is the prediction of frame t+1.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (FingerprintCache, build_module, checkpoint_part, classify_source, load_strictly,
                         official_part, read_checkpoint_config, resolve_source)
from .config import ActionSpace, PredictorConfig, StateSpace
from .errors import CheckpointError, ConfigError, InputError
from .features import layer_norm_features
from .presets import PREDICTOR_PRESETS, predictor_preset
from .rope import rope_tables
from .vit import Block

_COND_TOKENS = 2  # action, state
_CPU_CHUNK_ELEMENTS = 1 << 20  # see ACPredictor._chunk_size


def _check_tensor(name: str, x: Any, ndim: int, last: int | None = None) -> torch.Tensor:
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


def block_causal_mask(steps: int, tokens_per_step: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(L, L) bool, True where query token may attend to key token: key step <= query step."""
    step = torch.arange(steps * tokens_per_step, device=device) // tokens_per_step
    return step.unsqueeze(1) >= step.unsqueeze(0)


class ACPredictor(nn.Module):
    """V-JEPA 2-AC style predictor; see the module docstring. Satisfies the planner's ``DynamicsModel``."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.predictor_embed = nn.Linear(config.embed_dim, width)
        self.action_encoder = nn.Linear(config.action_dim, width)
        self.state_encoder = nn.Linear(config.state_dim, width)
        if config.extrinsics_dim is not None:
            self.extrinsics_encoder = nn.Linear(config.extrinsics_dim, width)  # kept for strict loading; unused
        self.predictor_blocks = nn.ModuleList(
            Block(width, config.num_heads, config.mlp_hidden, config.qkv_bias, config.layer_norm_eps)
            for _ in range(config.depth))
        self.predictor_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.predictor_proj = nn.Linear(width, config.embed_dim)
        #: ``model_id`` of the encoder whose features this predictor was trained on (from the checkpoint).
        self.encoder_id: str | None = None
        #: Largest number of action sequences one rollout pass processes; bounds the key/value cache memory, about
        #: 2 * depth * chunk * tokens * width elements. None: automatic (cache-sized chunks on the CPU, see
        #: ``_chunk_size``; the whole batch elsewhere).
        self.rollout_chunk_size: int | None = None
        self._fingerprint = FingerprintCache()
        self._rope_tables: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # -- descriptive attributes -------------------------------------------------------------------------------
    @property
    def max_horizon(self) -> int:
        """Most rollout steps from one context frame (time positions supported: ``config.max_steps``)."""
        return self.config.max_steps

    @property
    def action_space(self) -> ActionSpace:
        """Physical action space (names, units, bounds, normalisation)."""
        return self.config.action_space

    @property
    def state_space(self) -> StateSpace:
        """Physical state space."""
        return self.config.state_space

    @property
    def embed_dim(self) -> int:
        """D, the feature width it consumes and predicts."""
        return self.config.embed_dim

    @property
    def model_id(self) -> str:
        """Identifies weights and config (16 hex chars)."""
        return self._fingerprint.get(self, self.config.to_dict())

    # -- pieces -----------------------------------------------------------------------------------------------
    def _normalise(self, x: torch.Tensor, space: ActionSpace | StateSpace) -> torch.Tensor:
        mean = torch.tensor(space.mean, dtype=torch.float32, device=x.device)
        std = torch.tensor(space.std, dtype=torch.float32, device=x.device)
        return ((x.to(torch.float32) - mean) / std).to(self.predictor_embed.weight.dtype)

    def _rope(self, start: int, steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables of time steps ``start .. start+steps-1`` (computed once per layout and device)."""
        key = (start, steps, str(device))
        if key not in self._rope_tables:
            with torch.inference_mode(False):  # normal tensors: training may use them after a rollout did
                self._rope_tables[key] = self._rope_uncached(start, steps, device)
        return self._rope_tables[key]

    def _rope_uncached(self, start: int, steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rows, cols = self.config.grid_size
        per_step = _COND_TOKENS + rows * cols
        patch = torch.arange(rows * cols, device=device)
        cond = torch.zeros(_COND_TOKENS, dtype=torch.long, device=device)
        h = torch.cat([cond, patch // cols]).repeat(steps)
        w = torch.cat([cond, patch % cols]).repeat(steps)
        spatial = (torch.arange(per_step, device=device) >= _COND_TOKENS).repeat(steps)
        t = torch.arange(start, start + steps, device=device).repeat_interleave(per_step)
        return rope_tables(self.config.head_dim, t, h, w, spatial)

    def _tokens(self, patches: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Embedded patches (B,T,N,W), normalised actions (B,T,A) and states (B,T,S) -> (B, T*(2+N), W)."""
        a = self.action_encoder(actions).unsqueeze(2)
        s = self.state_encoder(states).unsqueeze(2)
        batch = max(patches.shape[0], a.shape[0], s.shape[0])
        parts = [p.expand(batch, *p.shape[1:]) for p in (a, s, patches)]
        return torch.cat(parts, dim=2).flatten(1, 2)

    def _readout(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T*(2+N), W) -> predicted features (B, T, N, D)."""
        x = x.unflatten(1, (-1, _COND_TOKENS + self.config.tokens_per_frame))[:, :, _COND_TOKENS:]
        return self.predictor_proj(self.predictor_norm(x))

    def _check_features(self, name: str, features: Any) -> torch.Tensor:
        features = _check_tensor(name, features, 4, self.config.embed_dim)
        if features.shape[2] != self.config.tokens_per_frame:
            raise InputError(f"{name} has {features.shape[2]} tokens per frame, the predictor expects "
                             f"{self.config.tokens_per_frame} (grid {self.config.grid_size})")
        return features

    def _next_state(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Physical state after physical action, per ``config.state_update``."""
        if self.config.state_update == "none":
            return state
        mapping = torch.tensor(self.config.action_to_state, device=state.device)
        used = mapping >= 0
        return state.index_add(1, mapping[used], action[:, used].to(state.dtype))

    def _context_actions(self, states: torch.Tensor) -> torch.Tensor:
        """Actions between consecutive context states (B, C-1, A): state differences on mapped dims, else 0."""
        batch, steps = states.shape[:2]
        actions = states.new_zeros(batch, steps - 1, self.config.action_dim)
        if self.config.state_update == "add":
            for i, j in enumerate(self.config.action_to_state):
                if j >= 0:
                    actions[:, :, i] = states[:, 1:, j] - states[:, :-1, j]
        return actions

    # -- public API -------------------------------------------------------------------------------------------
    def forward(self, features: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Teacher-forced: features (B,T,N,D), actions (B,T,A), states (B,T,S) in physical units ->
        predictions (B,T,N,D); output t predicts frame t+1 and depends only on inputs of steps <= t."""
        cfg = self.config
        features = self._check_features("features", features)
        actions = _check_tensor("actions", actions, 3, cfg.action_dim)
        states = _check_tensor("states", states, 3, cfg.state_dim)
        batch, steps = features.shape[:2]
        if actions.shape[:2] != (batch, steps) or states.shape[:2] != (batch, steps):
            raise InputError(f"features {tuple(features.shape)}, actions {tuple(actions.shape)} and states "
                             f"{tuple(states.shape)} disagree on (B, T)")
        if steps > cfg.max_steps:
            raise InputError(f"T={steps} time steps exceed the predictor's max_steps={cfg.max_steps}")
        weight = self.predictor_embed.weight
        patches = self.predictor_embed(features.to(weight.device, weight.dtype))
        x = self._tokens(patches, self._normalise(actions.to(weight.device), cfg.action_space),
                         self._normalise(states.to(weight.device), cfg.state_space))
        cos, sin = self._rope(0, steps, x.device)
        mask = block_causal_mask(steps, _COND_TOKENS + cfg.tokens_per_frame, x.device) if steps > 1 else None
        for block in self.predictor_blocks:
            x = block(x, cos, sin, mask)
        return self._readout(x)

    @torch.inference_mode()
    def rollout(self, features: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                context_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive prediction of H future frames for B action sequences.

        ``features`` (B|1, C, N, D) and ``states`` (B|1, C, S) describe the context (a first dim of 1 is shared
        by all sequences), ``actions`` (B, H, A) the plans, in physical units; ``actions[:, 0]`` acts at the last
        context frame. ``context_actions`` (B|1, C-1, A) are the actions between context frames (default:
        state differences on the dims ``action_to_state`` maps, 0 elsewhere). Future states follow
        ``config.state_update``. Each predicted frame is layer-normed (no affine) when
        ``config.normalize_rollout`` and fed back; returns those frames, (B, H, N, D).

        Keys/values of earlier frames are cached (exact, thanks to block-causal attention): each frame is
        processed once, and a shared context is processed once per chunk of the batch (see
        ``rollout_chunk_size``). To roll out many batches from one shared context, :meth:`prepare_context`
        also shares the work on the last context frame.
        """
        cfg = self.config
        features, states, context_actions = self._check_context(features, states, context_actions)
        actions = self._check_actions(actions, features.shape[1])
        ctx_batch, ctx_steps = features.shape[:2]
        batch = actions.shape[0]
        if ctx_batch not in (1, batch):
            raise InputError(f"context batch {ctx_batch} must be 1 or match the {batch} action sequences")
        chunk = self._chunk_size(batch, actions.device)
        if batch > chunk:
            parts = []
            for start in range(0, batch, chunk):
                pick = slice(start, start + chunk) if ctx_batch > 1 else slice(None)
                parts.append(self.rollout(features[pick], states[pick], actions[start:start + chunk],
                                          context_actions[pick]))
            return torch.cat(parts)
        horizon = actions.shape[1]
        past = self._context_past(features, states, context_actions)
        x = self._tokens(self.predictor_embed(features[:, -1]).unsqueeze(1),
                         self._normalise(actions[:, :1], cfg.action_space),
                         self._normalise(states[:, -1:], cfg.state_space))
        cos, sin = self._rope(ctx_steps - 1, 1, x.device)
        for i, block in enumerate(self.predictor_blocks):
            x, kv = block.forward_cached(x, cos, sin, past[i])
            past[i] = kv if horizon > 1 else None
        return self._continue_rollout(x, past, states[:, -1], actions, ctx_steps - 1)

    @torch.inference_mode()
    def prepare_context(self, features: torch.Tensor, states: torch.Tensor,
                        context_actions: torch.Tensor | None = None) -> "PreparedContext":
        """Process a shared context (1, C, N, D), states (1, C, S) once for many rollouts: returns a
        :class:`PreparedContext` whose ``rollout(actions)`` equals ``rollout(features, states, actions,
        context_actions)`` (to float rounding) but skips everything that does not depend on the actions."""
        features, states, context_actions = self._check_context(features, states, context_actions)
        if features.shape[0] != 1:
            raise InputError(f"prepare_context needs a shared context (batch 1), got batch {features.shape[0]}")
        return PreparedContext(self, features, states, context_actions)

    # -- rollout internals ------------------------------------------------------------------------------------
    def _check_context(self, features: Any, states: Any, context_actions: Any
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate a rollout context and move it to the model's device; fills in default context actions."""
        cfg = self.config
        features = self._check_features("features", features)
        states = _check_tensor("states", states, 3, cfg.state_dim)
        ctx_batch, ctx_steps = features.shape[:2]
        if states.shape[:2] != (ctx_batch, ctx_steps):
            raise InputError(f"states {tuple(states.shape)} and features {tuple(features.shape)} disagree on (B, C)")
        weight = self.predictor_embed.weight
        features = features.to(weight.device, weight.dtype)
        states = states.to(weight.device, torch.float32)
        if context_actions is None or ctx_steps == 1:
            return features, states, self._context_actions(states)
        context_actions = _check_tensor("context_actions", context_actions, 3, cfg.action_dim)
        if context_actions.shape[:2] != (ctx_batch, ctx_steps - 1):
            raise InputError(f"context_actions must be ({ctx_batch}, {ctx_steps - 1}, {cfg.action_dim}), got "
                             f"{tuple(context_actions.shape)}")
        return features, states, context_actions.to(weight.device, torch.float32)

    def _check_actions(self, actions: Any, ctx_steps: int) -> torch.Tensor:
        cfg = self.config
        actions = _check_tensor("actions", actions, 3, cfg.action_dim)
        horizon = actions.shape[1]
        if ctx_steps + horizon - 1 > cfg.max_steps:
            raise InputError(f"horizon {horizon} with {ctx_steps} context frame(s) needs {ctx_steps + horizon - 1} "
                             f"time steps; the predictor supports max_steps={cfg.max_steps} "
                             f"(max_horizon={self.max_horizon} from one context frame)")
        return actions.to(self.predictor_embed.weight.device, torch.float32)

    def _chunk_size(self, batch: int, device: torch.device) -> int:
        """Sequences per rollout pass (see :meth:`_preferred_batch`)."""
        return self._preferred_batch(device) or batch

    def _preferred_batch(self, device: torch.device) -> int | None:
        """``rollout_chunk_size``, or when that is None: with a single CPU thread as many sequences as keep one
        pass's largest activation within ``_CPU_CHUNK_ELEMENTS`` (elementwise work on cache-resident chunks is
        several times faster than streaming it through memory); otherwise None (any batch at once). Several
        CPU threads are left whole batches: every op is a fork/join, and on a shared, busy machine the many small
        ops of chunked passes made rollouts several times slower."""
        if self.rollout_chunk_size is not None:
            return self.rollout_chunk_size
        if device.type != "cpu" or torch.get_num_threads() > 1:
            return None
        cfg = self.config
        per_sequence = (_COND_TOKENS + cfg.tokens_per_frame) * max(cfg.mlp_hidden, 3 * cfg.width)
        return max(1, _CPU_CHUNK_ELEMENTS // per_sequence)

    def _context_past(self, features: torch.Tensor, states: torch.Tensor, context_actions: torch.Tensor
                      ) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per-layer keys/values of the context frames before the last one (None for a one-frame context)."""
        cfg = self.config
        steps = features.shape[1] - 1
        if steps == 0:
            return [None] * cfg.depth
        x = self._tokens(self.predictor_embed(features[:, :-1]), self._normalise(context_actions, cfg.action_space),
                         self._normalise(states[:, :-1], cfg.state_space))
        cos, sin = self._rope(0, steps, x.device)
        mask = block_causal_mask(steps, _COND_TOKENS + cfg.tokens_per_frame, x.device)
        past: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for block in self.predictor_blocks:
            x, kv = block.forward_cached(x, cos, sin, None, mask)
            past.append(kv)
        return past

    def _continue_rollout(self, x: torch.Tensor, past: list[tuple[torch.Tensor, torch.Tensor] | None],
                          state: torch.Tensor, actions: torch.Tensor, start: int) -> torch.Tensor:
        """Predictions (B, H, N, D) from the blocks' output ``x`` (B, 2+N, W) on the first rollout step (time
        ``start``, state ``state`` (B|1, S)) and every layer's keys/values up to that step (used when H > 1)."""
        cfg = self.config
        batch, horizon = actions.shape[:2]
        out = torch.empty(batch, horizon, cfg.tokens_per_frame, cfg.embed_dim, device=x.device,
                          dtype=self.predictor_embed.weight.dtype)
        for step in range(horizon):
            keep = step < horizon - 1
            if step:
                x = self._tokens(self.predictor_embed(frame).unsqueeze(1),
                                 self._normalise(actions[:, step:step + 1], cfg.action_space),
                                 self._normalise(state.unsqueeze(1), cfg.state_space))
                cos, sin = self._rope(start + step, 1, x.device)
                for i, block in enumerate(self.predictor_blocks):
                    x, kv = block.forward_cached(x, cos, sin, past[i])
                    past[i] = kv if keep else None
            pred = self._readout(x)[:, 0]
            if cfg.normalize_rollout:
                pred = layer_norm_features(pred)
            out[:, step] = pred
            if keep:
                frame = pred
                state = self._next_state(state.expand(batch, -1), actions[:, step])
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

    def __init__(self, predictor: ACPredictor, features: torch.Tensor, states: torch.Tensor,
                 context_actions: torch.Tensor) -> None:
        cfg = predictor.config
        self.predictor = predictor
        self.context_steps = features.shape[1]
        self._state = states[:, -1]
        self._past = predictor._context_past(features, states, context_actions)
        shared = torch.cat([predictor.state_encoder(predictor._normalise(self._state, cfg.state_space)),
                            predictor.predictor_embed(features[0, -1])])
        cos, sin = predictor._rope(self.context_steps - 1, 1, features.device)
        self._own_tables = cos[:1], sin[:1]
        self._tables = cos, sin
        self._first = predictor.predictor_blocks[0].share(shared, cos[1:], sin[1:], self._past[0])

    @property
    def preferred_batch(self) -> int | None:
        """Sequences per ``rollout`` call that run fastest (larger batches are split into these; None: any)."""
        return self.predictor._preferred_batch(self._state.device)

    @torch.inference_mode()
    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        """Predictions (B, H, N, D) for action sequences (B, H, A) in physical units, as
        ``predictor.rollout(features, states, actions)`` for the prepared context."""
        predictor = self.predictor
        actions = predictor._check_actions(actions, self.context_steps)
        batch, horizon = actions.shape[:2]
        chunk = predictor._chunk_size(batch, actions.device)
        if batch > chunk:
            return torch.cat([self.rollout(actions[start:start + chunk]) for start in range(0, batch, chunk)])
        blocks = predictor.predictor_blocks
        own = predictor.action_encoder(predictor._normalise(actions[:, 0], predictor.config.action_space))
        x, (k, v) = blocks[0].forward_split(self._first, own, *self._own_tables)
        past: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(blocks)
        if horizon > 1:
            shape = (batch, *self._first.k.shape)
            past[0] = (torch.cat([self._first.k.expand(shape), k], dim=2),
                       torch.cat([self._first.v.expand(shape), v], dim=2))
        for i in range(1, len(blocks)):
            x, kv = blocks[i].forward_cached(x, *self._tables, self._past[i])
            past[i] = kv if horizon > 1 else None
        return predictor._continue_rollout(x, past, self._state, actions, self.context_steps - 1)


def infer_predictor_config(state_dict: dict[str, torch.Tensor], base: PredictorConfig,
                           overrides: dict[str, Any]) -> PredictorConfig:
    """Sizes from official weights (widths, depth, MLP, action/state/extrinsics dims); heads, grid, max_steps
    and spaces of matching dims from ``base``; ``overrides`` win."""
    for key in ("predictor_embed.weight", "action_encoder.weight", "state_encoder.weight"):
        if key not in state_dict:
            raise CheckpointError(f"predictor weights lack {key!r}; keys start with {sorted(state_dict)[:5]}")
    width, embed_dim = state_dict["predictor_embed.weight"].shape
    fc1 = state_dict.get("predictor_blocks.0.mlp.fc1.weight")
    extrinsics = state_dict.get("extrinsics_encoder.weight")
    inferred: dict[str, Any] = {
        "width": width, "embed_dim": embed_dim,
        "depth": len({k.split(".")[1] for k in state_dict if k.startswith("predictor_blocks.")}),
        "mlp_hidden": fc1.shape[0] if fc1 is not None else 4 * width,
        "extrinsics_dim": extrinsics.shape[1] if extrinsics is not None else None,
        "qkv_bias": "predictor_blocks.0.attn.qkv.bias" in state_dict,
        "action_dim": state_dict["action_encoder.weight"].shape[1],
        "state_dim": state_dict["state_encoder.weight"].shape[1],
    }
    return base.replace(**{**inferred, **overrides})


def load_predictor(source: str | os.PathLike, **overrides: Any) -> ACPredictor:
    """Build an :class:`ACPredictor` from ``source`` and put it in eval mode.

    ``source``: a preset name ("tiny", "ac_vit_g"; random weights seeded by ``seed=``, default 0), "default" (the
    shipped sim model), our checkpoint directory, or an official ``.pt`` file (entry ``predictor``, or
    ``checkpoint_key=``; head count, grid and spaces from ``preset=`` (default "ac_vit_g")). ``overrides`` are
    :class:`PredictorConfig` fields plus ``action_dim`` / ``state_dim``.
    """
    seed = overrides.pop("seed", 0)
    checkpoint_key = overrides.pop("checkpoint_key", None)
    source = resolve_source(source)
    preset = overrides.pop("preset", "ac_vit_g")
    kind = classify_source(source, PREDICTOR_PRESETS)
    encoder_id = None
    if kind == "preset":
        config = predictor_preset(os.fspath(source)).replace(**overrides)
        return build_module(lambda: ACPredictor(config), seed).eval()
    if kind == "ours":
        config_dict, state_dict = checkpoint_part(source, "predictor")
        config = PredictorConfig.from_dict(config_dict).replace(**overrides)
        encoder_id = read_checkpoint_config(source).get("encoder_id")
    elif kind == "official":
        state_dict = official_part(source, (checkpoint_key or "predictor",))
        config = infer_predictor_config(state_dict, predictor_preset(preset), overrides)
    else:
        raise ConfigError(f"{source}: Hugging Face models hold no action-conditioned predictor; load it from an "
                          f"official .pt file (e.g. vjepa2-ac-vitg.pt) or a jepa_ros checkpoint directory")
    with torch.device("meta"):
        predictor = ACPredictor(config)
    load_strictly(predictor, state_dict, "predictor")
    predictor.encoder_id = encoder_id
    return predictor.eval()

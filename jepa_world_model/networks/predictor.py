"""Action-conditioned predictor (V-JEPA 2-AC layout): the model and its teacher-forced forward pass.

Per time step t the token sequence holds [action token, state token, N patch tokens]. Actions and states are
normalised with the config's ``ActionSpace``/``StateSpace`` and embedded by linear layers; patch features by
``predictor_embed`` (D -> width). Blocks use 3D rotary positions (action/state tokens only get the temporal
part) and block-causal attention (a token of step t sees every token of steps <= t). Patch outputs go through
``predictor_norm`` and ``predictor_proj`` (width -> D). Output t is the prediction of frame t+1; with
``config.residual`` the readout is the change from frame t, added to it.

The autoregressive rollout lives in :mod:`jepa_world_model.networks.rollout`, future states in
:mod:`jepa_world_model.networks.state_update`, the loaders in :mod:`jepa_world_model.checkpoints.predictor_loading`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from jepa_world_model.networks import rollout as _rollout
from jepa_world_model.checkpoints.files import FingerprintCache
from jepa_world_model.config import ActionSpace, PredictorConfig, StateSpace
from jepa_world_model.errors import InputError
from jepa_world_model.networks.rope import rope_tables
from jepa_world_model.networks.tensor_checks import check_tensor
from jepa_world_model.networks.vit import Block, block_causal_mask

if TYPE_CHECKING:
    from jepa_world_model.networks.rollout import PreparedContext

__all__ = ["ACPredictor", "block_causal_mask"]

COND_TOKENS = 2  # action, state


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
        #: 2 * depth * chunk * tokens * width elements. None: automatic (cache-sized chunks on a single CPU
        #: thread, the whole batch elsewhere; see :func:`jepa_world_model.networks.rollout.preferred_batch`).
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
    def tokens_per_step(self) -> int:
        """Tokens of one time step: action, state and the frame's patches."""
        return COND_TOKENS + self.config.tokens_per_frame

    @property
    def model_id(self) -> str:
        """Identifies weights and config (16 hex chars)."""
        return self._fingerprint.get(self, self.config.to_dict())

    # -- pieces (shared with the rollout) ---------------------------------------------------------------------
    def normalise(self, x: torch.Tensor, space: ActionSpace | StateSpace) -> torch.Tensor:
        """Physical actions/states -> normalised, in the weights' dtype."""
        mean = torch.tensor(space.mean, dtype=torch.float32, device=x.device)
        std = torch.tensor(space.std, dtype=torch.float32, device=x.device)
        return ((x.to(torch.float32) - mean) / std).to(self.predictor_embed.weight.dtype)

    def rope(self, start: int, steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables of time steps ``start .. start+steps-1`` (computed once per layout and device)."""
        key = (start, steps, str(device))
        if key not in self._rope_tables:
            with torch.inference_mode(False):  # normal tensors: training may use them after a rollout did
                self._rope_tables[key] = self._rope_uncached(start, steps, device)
        return self._rope_tables[key]

    def _rope_uncached(self, start: int, steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rows, cols = self.config.grid_size
        patch = torch.arange(rows * cols, device=device)
        cond = torch.zeros(COND_TOKENS, dtype=torch.long, device=device)
        h = torch.cat([cond, patch // cols]).repeat(steps)
        w = torch.cat([cond, patch % cols]).repeat(steps)
        spatial = (torch.arange(self.tokens_per_step, device=device) >= COND_TOKENS).repeat(steps)
        t = torch.arange(start, start + steps, device=device).repeat_interleave(self.tokens_per_step)
        return rope_tables(self.config.head_dim, t, h, w, spatial)

    def tokens(self, patches: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Embedded patches (B,T,N,W), normalised actions (B,T,A) and states (B,T,S) -> (B, T*(2+N), W)."""
        a = self.action_encoder(actions).unsqueeze(2)
        s = self.state_encoder(states).unsqueeze(2)
        batch = max(patches.shape[0], a.shape[0], s.shape[0])
        parts = [p.expand(batch, *p.shape[1:]) for p in (a, s, patches)]
        return torch.cat(parts, dim=2).flatten(1, 2)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T*(2+N), W) -> predicted features (B, T, N, D)."""
        x = x.unflatten(1, (-1, self.tokens_per_step))[:, :, COND_TOKENS:]
        return self.predictor_proj(self.predictor_norm(x))

    def check_features(self, name: str, features: Any) -> torch.Tensor:
        """``features`` when they are (B, T, N, D) for this predictor, else :class:`InputError`."""
        features = check_tensor(name, features, 4, self.config.embed_dim)
        if features.shape[2] != self.config.tokens_per_frame:
            raise InputError(f"{name} has {features.shape[2]} tokens per frame, the predictor expects "
                             f"{self.config.tokens_per_frame} (grid {self.config.grid_size})")
        return features

    # -- public API -------------------------------------------------------------------------------------------
    def forward(self, features: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Teacher-forced: features (B,T,N,D), actions (B,T,A), states (B,T,S) in physical units ->
        predictions (B,T,N,D); output t predicts frame t+1 and depends only on inputs of steps <= t."""
        cfg = self.config
        features = self.check_features("features", features)
        actions = check_tensor("actions", actions, 3, cfg.action_dim)
        states = check_tensor("states", states, 3, cfg.state_dim)
        batch, steps = features.shape[:2]
        if actions.shape[:2] != (batch, steps) or states.shape[:2] != (batch, steps):
            raise InputError(f"features {tuple(features.shape)}, actions {tuple(actions.shape)} and states "
                             f"{tuple(states.shape)} disagree on (B, T)")
        if steps > cfg.max_steps:
            raise InputError(f"T={steps} time steps exceed the predictor's max_steps={cfg.max_steps}")
        weight = self.predictor_embed.weight
        patches = self.predictor_embed(features.to(weight.device, weight.dtype))
        x = self.tokens(patches, self.normalise(actions.to(weight.device), cfg.action_space),
                        self.normalise(states.to(weight.device), cfg.state_space))
        cos, sin = self.rope(0, steps, x.device)
        mask = block_causal_mask(steps, self.tokens_per_step, x.device) if steps > 1 else None
        for block in self.predictor_blocks:
            x = block(x, cos, sin, mask)
        out = self.readout(x)
        return out + features.to(out) if cfg.residual else out

    @torch.inference_mode()
    def rollout(self, features: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                context_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive prediction of H future frames for B action sequences.

        ``features`` (B|1, C, N, D) and ``states`` (B|1, C, S) describe the context (a first dim of 1 is shared
        by all sequences), ``actions`` (B, H, A) the plans, in physical units; ``actions[:, 0]`` acts at the last
        context frame. ``context_actions`` (B|1, C-1, A) are the actions between context frames (default:
        derived from the context states, see :func:`jepa_world_model.networks.state_update.context_actions`). Future
        states follow ``config.state_update``. Each predicted frame is layer-normed (no affine) when
        ``config.normalize_rollout`` and fed back; returns those frames, (B, H, N, D). Keys/values of earlier
        frames are cached (see :mod:`jepa_world_model.networks.rollout`).
        """
        return _rollout.rollout(self, features, states, actions, context_actions)

    @torch.inference_mode()
    def prepare_context(self, features: torch.Tensor, states: torch.Tensor,
                        context_actions: torch.Tensor | None = None) -> "PreparedContext":
        """Process a shared context (1, C, N, D), states (1, C, S) once for many rollouts: returns a
        :class:`~jepa_world_model.networks.rollout.PreparedContext` whose ``rollout(actions)`` equals ``rollout(features,
        states, actions, context_actions)`` (to float rounding) but skips everything that does not depend on
        the actions."""
        return _rollout.prepare_context(self, features, states, context_actions)


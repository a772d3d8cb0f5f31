"""Configuration dataclasses of the world model: encoder, action-conditioned predictor, action and state spaces.

All configs are frozen, validated on construction and round-trip through plain JSON dicts (``to_dict`` /
``from_dict``), which is how checkpoints store them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from jepa_world_model.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("short_side", "if_needed", "none")
#: Rollout state integration rules (see :class:`PredictorConfig`).
STATE_UPDATES = ("add", "ee_pose", "none")
#: State dimension names of an orientation as extrinsic x-y-z Euler angles, and of a gripper opening.
ROTATION_NAMES = ("roll", "pitch", "yaw")
GRIPPER_NAME = "gripper"
#: eps of the affine-free layer-norm applied to features (encoder output option, rollout feedback).
FEATURE_NORM_EPS = 1e-5


def _floats(name: str, values: Sequence[float]) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a sequence of numbers, got {values!r}") from exc
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{name} must be finite, got {out}")
    return out


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def _reject_unknown(cls: type, data: dict) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(known)}")


@dataclass(frozen=True)
class _Space:
    """A named vector space in physical units with bounds and normalisation statistics."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        kind = type(self).__name__
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "units", tuple(str(u) for u in self.units))
        for name in ("low", "high", "mean", "std"):
            object.__setattr__(self, name, _floats(f"{kind}.{name}", getattr(self, name)))
        dim = len(self.names)
        if dim == 0:
            raise ConfigError(f"{kind}.names must not be empty")
        if len(set(self.names)) != dim:
            raise ConfigError(f"{kind}.names must be unique, got {self.names}")
        for name in ("units", "low", "high", "mean", "std"):
            if len(getattr(self, name)) != dim:
                raise ConfigError(f"{kind}.{name} has {len(getattr(self, name))} entries, names has {dim}")
        for i, (lo, hi) in enumerate(zip(self.low, self.high)):
            if lo > hi:
                raise ConfigError(f"{kind}.low[{i}]={lo} exceeds high[{i}]={hi} ({self.names[i]})")
        for i, s in enumerate(self.std):
            if s <= 0:
                raise ConfigError(f"{kind}.std[{i}]={s} must be > 0 ({self.names[i]})")

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return len(self.names)

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "_Space":
        """Inverse of :meth:`to_dict`."""
        _reject_unknown(cls, data)
        return cls(**data)

    @classmethod
    def generic(cls, dim: int, prefix: str, unit: str = "", bound: float = 1.0) -> "_Space":
        """A ``dim``-D space named ``prefix0..`` with symmetric bounds and identity normalisation."""
        _positive_int("dim", dim)
        return cls(
            names=tuple(f"{prefix}{i}" for i in range(dim)),
            units=(unit,) * dim,
            low=(-bound,) * dim,
            high=(bound,) * dim,
            mean=(0.0,) * dim,
            std=(1.0,) * dim,
        )


@dataclass(frozen=True)
class ActionSpace(_Space):
    """Actions in physical units (e.g. end-effector displacement per control step)."""

    @classmethod
    def default(cls, dim: int) -> "ActionSpace":
        """3-D xyz displacement [m] for ``dim == 3``, otherwise generic ``a0..``."""
        if dim == 3:
            return cls(("dx", "dy", "dz"), ("m",) * 3, (-0.05,) * 3, (0.05,) * 3, (0.0,) * 3, (1.0,) * 3)
        return cls.generic(dim, "a")


@dataclass(frozen=True)
class StateSpace(_Space):
    """Proprioceptive state in physical units (e.g. end-effector position)."""

    @classmethod
    def default(cls, dim: int) -> "StateSpace":
        """3-D xyz position [m] for ``dim == 3``, otherwise generic ``s0..``."""
        if dim == 3:
            return cls(("x", "y", "z"), ("m",) * 3, (-1.0,) * 3, (1.0,) * 3, (0.0,) * 3, (1.0,) * 3)
        return cls.generic(dim, "s", bound=10.0)


def rotation_slice(names: Sequence[str]) -> slice | None:
    """Where consecutive dimensions named [roll, pitch, yaw] sit in ``names`` (None: nowhere)."""
    names = tuple(names)
    for start in range(len(names) - 2):
        if names[start:start + 3] == ROTATION_NAMES:
            return slice(start, start + 3)
    return None


def rotation_action_dims(action_to_state: Sequence[int], state_names: Sequence[str]) -> tuple[int, int, int] | None:
    """The action dims driving the states' [roll, pitch, yaw] (in that order), or None when the states have no
    such triple or one of its dims is not driven by exactly one action dim."""
    rot = rotation_slice(state_names)
    if rot is None:
        return None
    dims = []
    for j in range(rot.start, rot.stop):
        driving = [i for i, m in enumerate(action_to_state) if m == j]
        if len(driving) != 1:
            return None
        dims.append(driving[0])
    return dims[0], dims[1], dims[2]


def derive_action_to_state(actions: ActionSpace, states: StateSpace) -> tuple[int, ...]:
    """For each action dim, the state dim it is added to (-1: none).

    An action named ``n`` or ``d<n>`` maps to the state named ``n``. When no name matches and the dims are
    equal, the mapping is the identity.
    """
    index = {name: i for i, name in enumerate(states.names)}
    mapping = []
    for name in actions.names:
        if name in index:
            mapping.append(index[name])
        elif name.startswith("d") and name[1:] in index:
            mapping.append(index[name[1:]])
        else:
            mapping.append(-1)
    if all(m < 0 for m in mapping) and actions.dim == states.dim:
        return tuple(range(actions.dim))
    return tuple(mapping)


@dataclass(frozen=True)
class EncoderConfig:
    """Video ViT encoder (V-JEPA 2 layout) plus its input preprocessing.

    Preprocessing (inside the encoder): uint8 -> [0,1]; resize the short side to ``crop_size * resize_ratio``
    and centre-crop ``crop_size`` (``resize_mode``: ``short_side`` always, ``if_needed`` skips it when the
    input already is ``crop_size`` square, ``none`` requires that size); normalise with ``mean``/``std``;
    repeat a single image to fill one tubelet. ``output_layer_norm`` applies a final layer-norm without affine
    to the features (what V-JEPA 2-AC consumes). ``pooled_dim`` > 0 gives one feature vector per tubelet instead
    of one per patch: the patch features averaged, then a two-layer MLP head (``width`` -> ``mlp_hidden`` ->
    ``pooled_dim``), as the jointly trained encoders of `jepa train --recipe joint` have (0: the patch tokens, as
    V-JEPA 2).
    """

    name: str = "custom"
    patch_size: int = 16
    tubelet_size: int = 2
    crop_size: int = 256
    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_hidden: int = 4096
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    resize_mode: str = "short_side"
    resize_ratio: float = 256 / 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    output_layer_norm: bool = False
    pooled_dim: int = 0

    def __post_init__(self) -> None:
        for name in ("patch_size", "tubelet_size", "crop_size", "width", "depth", "num_heads", "mlp_hidden"):
            _positive_int(f"EncoderConfig.{name}", getattr(self, name))
        if isinstance(self.pooled_dim, bool) or not isinstance(self.pooled_dim, int) or self.pooled_dim < 0:
            raise ConfigError(f"EncoderConfig.pooled_dim must be an integer >= 0, got {self.pooled_dim!r}")
        if self.width % self.num_heads:
            raise ConfigError(f"EncoderConfig.width={self.width} is not divisible by num_heads={self.num_heads}")
        if self.crop_size % self.patch_size:
            raise ConfigError(
                f"EncoderConfig.crop_size={self.crop_size} is not divisible by patch_size={self.patch_size}")
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"EncoderConfig.resize_mode={self.resize_mode!r}; expected one of {RESIZE_MODES}")
        if not (isinstance(self.resize_ratio, (int, float)) and self.resize_ratio >= 1.0):
            raise ConfigError(f"EncoderConfig.resize_ratio={self.resize_ratio!r} must be a number >= 1")
        object.__setattr__(self, "resize_ratio", float(self.resize_ratio))
        object.__setattr__(self, "layer_norm_eps", float(self.layer_norm_eps))
        for name in ("mean", "std"):
            values = _floats(f"EncoderConfig.{name}", getattr(self, name))
            if len(values) != 3:
                raise ConfigError(f"EncoderConfig.{name} needs 3 values (RGB), got {values}")
            object.__setattr__(self, name, values)
        if min(self.std) <= 0:
            raise ConfigError(f"EncoderConfig.std must be > 0, got {self.std}")

    @property
    def grid_size(self) -> int:
        """Patches per side of the (square) crop."""
        return self.crop_size // self.patch_size

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.width // self.num_heads

    @property
    def token_grid(self) -> int:
        """Feature tokens per side of one frame's output: the patch grid, or 1 for a pooled encoder."""
        return 1 if self.pooled_dim else self.grid_size

    @property
    def feature_dim(self) -> int:
        """D, the width of the output features: ``pooled_dim`` for a pooled encoder, else ``width``."""
        return self.pooled_dim or self.width

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        if not self.pooled_dim:  # patch-token encoders keep the dict (and so the model_id) they always had
            del data["pooled_dim"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        _reject_unknown(cls, data)
        return cls(**data)

    def replace(self, **overrides: Any) -> "EncoderConfig":
        """A copy with some fields changed; unknown field names raise :class:`ConfigError`."""
        _reject_unknown(type(self), overrides)
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class PredictorConfig:
    """Action-conditioned predictor (V-JEPA 2-AC layout).

    ``embed_dim`` is the encoder feature width D, ``width`` the predictor's own width. ``grid_size`` is the
    patch grid (rows, cols) of one frame, ``max_steps`` the number of time steps its positions support.
    ``state_update`` says how rollout integrates future states from actions (and how default context actions
    are derived from context states): ``add``: ``s += a`` on the state dims given by ``action_to_state``;
    ``ee_pose``: as V-JEPA 2-AC does for end-effector poses, the [roll, pitch, yaw] dims (extrinsic x-y-z Euler
    angles) are composed as rotations, R(s') = R(a) R(s), the other mapped dims are added, and a ``gripper`` dim
    is clipped to the state space's bounds; ``none``: keep the last state. Not given (None): ``ee_pose`` when the
    states hold a [roll, pitch, yaw] triple that actions map onto, else ``add``. ``normalize_rollout``
    layer-norms (no affine) each predicted frame before it is fed back, matching layer-normed training targets.
    ``residual`` makes each output the input frame's features plus the predicted change (the project's option for
    its own models, off in the official layout): doing nothing predicts the frame it was given, so the little that
    one control step changes is all the network has to learn.
    ``layer_norm_eps`` is the eps of every LayerNorm (official files: the reference's 1e-6).
    """

    name: str = "custom"
    embed_dim: int = 1408
    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_hidden: int = 4096
    grid_size: tuple[int, int] = (16, 16)
    max_steps: int = 32
    action_space: ActionSpace = field(default_factory=lambda: ActionSpace.default(7))
    state_space: StateSpace = field(default_factory=lambda: StateSpace.default(7))
    extrinsics_dim: int | None = None
    state_update: str | None = None
    action_to_state: tuple[int, ...] | None = None
    normalize_rollout: bool = True
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    residual: bool = False

    DIM_OVERRIDES: ClassVar[tuple[str, ...]] = ("action_dim", "state_dim")

    def __post_init__(self) -> None:
        for name in ("embed_dim", "width", "depth", "num_heads", "mlp_hidden", "max_steps"):
            _positive_int(f"PredictorConfig.{name}", getattr(self, name))
        if not isinstance(self.residual, bool):
            raise ConfigError(f"PredictorConfig.residual must be true or false, got {self.residual!r}")
        if self.width % self.num_heads:
            raise ConfigError(
                f"PredictorConfig.width={self.width} is not divisible by num_heads={self.num_heads}")
        grid = tuple(self.grid_size) if isinstance(self.grid_size, (list, tuple)) else (self.grid_size,) * 2
        if len(grid) != 2:
            raise ConfigError(f"PredictorConfig.grid_size must be (rows, cols), got {self.grid_size!r}")
        for g in grid:
            _positive_int("PredictorConfig.grid_size", g)
        object.__setattr__(self, "grid_size", grid)
        if isinstance(self.action_space, dict):
            object.__setattr__(self, "action_space", ActionSpace.from_dict(self.action_space))
        if isinstance(self.state_space, dict):
            object.__setattr__(self, "state_space", StateSpace.from_dict(self.state_space))
        if not isinstance(self.action_space, ActionSpace) or not isinstance(self.state_space, StateSpace):
            raise ConfigError("PredictorConfig.action_space/state_space must be ActionSpace/StateSpace")
        if self.extrinsics_dim is not None:
            _positive_int("PredictorConfig.extrinsics_dim", self.extrinsics_dim)
        object.__setattr__(self, "layer_norm_eps", float(self.layer_norm_eps))
        mapping = self.action_to_state
        if mapping is None:
            mapping = derive_action_to_state(self.action_space, self.state_space)
        mapping = tuple(int(m) for m in mapping)
        if len(mapping) != self.action_dim:
            raise ConfigError(
                f"PredictorConfig.action_to_state has {len(mapping)} entries, action_dim is {self.action_dim}")
        for i, m in enumerate(mapping):
            if not -1 <= m < self.state_dim:
                raise ConfigError(f"PredictorConfig.action_to_state[{i}]={m} is not a state index or -1")
        object.__setattr__(self, "action_to_state", mapping)
        self._check_state_update()

    def _check_state_update(self) -> None:
        """Fill in a derived ``state_update`` and check that the spaces support it."""
        rotation = rotation_action_dims(self.action_to_state, self.state_space.names)
        if self.state_update is None:
            object.__setattr__(self, "state_update", "add" if rotation is None else "ee_pose")
        if self.state_update not in STATE_UPDATES:
            raise ConfigError(f"PredictorConfig.state_update={self.state_update!r}; expected one of {STATE_UPDATES}")
        if self.state_update != "none" and all(m < 0 for m in self.action_to_state):
            raise ConfigError(
                f"PredictorConfig.state_update={self.state_update!r} but no action dim maps to a state dim: name "
                f"actions 'd<state name>', give action_to_state explicitly, or use state_update='none'")
        if self.state_update == "ee_pose" and rotation is None:
            raise ConfigError(
                f"PredictorConfig.state_update='ee_pose' needs states with consecutive dims {ROTATION_NAMES} each "
                f"driven by one action dim; states are {self.state_space.names}, action_to_state "
                f"{self.action_to_state}. Use state_update='add' for other spaces")

    @property
    def action_dim(self) -> int:
        """A, the action dimension."""
        return self.action_space.dim

    @property
    def state_dim(self) -> int:
        """S, the state dimension."""
        return self.state_space.dim

    @property
    def rotation_action_dims(self) -> tuple[int, int, int] | None:
        """Action dims of the [roll, pitch, yaw] deltas (see :func:`rotation_action_dims`)."""
        return rotation_action_dims(self.action_to_state, self.state_space.names)

    @property
    def tokens_per_frame(self) -> int:
        """N, patch tokens per frame."""
        return self.grid_size[0] * self.grid_size[1]

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.width // self.num_heads

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["action_space"] = self.action_space.to_dict()
        data["state_space"] = self.state_space.to_dict()
        data["grid_size"] = list(self.grid_size)
        data["action_to_state"] = list(self.action_to_state)
        if not self.residual:  # models without it keep the dict (and so the model_id) they always had
            del data["residual"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PredictorConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        _reject_unknown(cls, data)
        return cls(**data)

    def replace(self, **overrides: Any) -> "PredictorConfig":
        """A copy with some fields changed.

        Besides the fields, ``action_dim`` / ``state_dim`` are accepted: they swap in a default space of that
        size unless the matching space is overridden too. Changing a space re-derives ``action_to_state`` and
        (unless it is ``none``) ``state_update``, each unless given.
        """
        overrides = dict(overrides)
        action_dim = overrides.pop("action_dim", None)
        state_dim = overrides.pop("state_dim", None)
        _reject_unknown(type(self), overrides)
        if action_dim is not None and "action_space" not in overrides and action_dim != self.action_dim:
            overrides["action_space"] = ActionSpace.default(_positive_int("action_dim", action_dim))
        if state_dim is not None and "state_space" not in overrides and state_dim != self.state_dim:
            overrides["state_space"] = StateSpace.default(_positive_int("state_dim", state_dim))
        for key in ("action_space", "state_space"):
            if isinstance(overrides.get(key), dict):
                overrides[key] = (ActionSpace if key == "action_space" else StateSpace).from_dict(overrides[key])
        if "action_space" in overrides or "state_space" in overrides:
            overrides.setdefault("action_to_state", None)
            if self.state_update != "none":
                overrides.setdefault("state_update", None)
        new = dataclasses.replace(self, **overrides)
        if action_dim is not None and new.action_dim != action_dim:
            raise ConfigError(f"action_dim={action_dim} conflicts with action_space of dim {new.action_dim}")
        if state_dim is not None and new.state_dim != state_dim:
            raise ConfigError(f"state_dim={state_dim} conflicts with state_space of dim {new.state_dim}")
        return new

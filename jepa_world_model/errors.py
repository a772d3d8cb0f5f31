"""Exception types raised by the world-model library.

Every error derives from :class:`WorldModelError`; the ones about bad input also derive from ``ValueError`` so
callers that only know the standard library can still catch them.
"""


class WorldModelError(Exception):
    """Base class of all errors raised by ``jepa_world_model``."""


class ConfigError(WorldModelError, ValueError):
    """An invalid configuration value, unknown preset or unknown override."""


class InputError(WorldModelError, ValueError):
    """A tensor passed to a model has the wrong shape, dtype, range or contains NaN/Inf."""


class CheckpointError(WorldModelError, ValueError):
    """A checkpoint file is malformed, unsafe to read, or does not match the model (names the key)."""


class ModelNotAvailableError(WorldModelError, FileNotFoundError):
    """Weights that cannot be obtained: not a file, not cached, and the hub cannot be reached."""

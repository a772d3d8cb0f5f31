"""Composable safety filters for velocity commands (ROS-free).

A command is a velocity vector (Cartesian linear or angular velocity, or joint velocities). The pieces:

- :func:`limit_vector`: per-axis magnitude limits, then a limit on the Euclidean norm (direction kept).
- :func:`braking_speed`: the highest speed from which a stop within a distance is possible when the speed may drop
  by at most ``max_accel * dt`` per period (this period's travel included).
- :class:`BoxLimit`: keeps a position inside a box (the end-effector workspace, or joint limits): a command that
  would leave the box is shortened so that it stops on the face (with an acceleration limit: so that braking at
  that limit still stops on the face); from outside only motion back toward the box is allowed.
- :class:`RateLimiter`: limits the change of the command per period (acceleration limit), speeding up and
  slowing down alike.
- :class:`SafetyFilter`: the three in that order, applied every control period.
- :class:`Watchdog`: freshness of a timestamped input (plan, state), judged so that no single message can hold it off.
- :class:`EStop`: a latching emergency stop.

Only stops bypass the rate limiter (a stop is immediate; see :meth:`SafetyFilter.stop`), and the box's last
resort: an axis whose measured position leaves less room than the braking distance is cut at once.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


RATE_TOLERANCE = 1e-6  # relative slack of the acceleration limit (float32 rounding of plan values)
BOX_BRAKING = 0.5   # fraction of the acceleration limit the box plans its braking with (the rest absorbs jitter)


class SafetyConfigError(ValueError):
    """An invalid safety setting; the message names it."""


def _vector(name: str, values, dim: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if dim is not None and array.size != dim:
        raise SafetyConfigError(f"{name} must have {dim} values, got {array.size}")
    if np.isnan(array).any():
        raise SafetyConfigError(f"{name} contains NaN: {array.tolist()}")
    return array


def limit_vector(velocity: np.ndarray, per_axis: np.ndarray | float | None = None,
                 norm: float | None = None) -> np.ndarray:
    """Clip each axis to [-per_axis, per_axis], then scale the vector down so that ||v|| <= norm.

    Non-finite entries are treated as zero (a NaN command never reaches the robot).
    """
    v = np.nan_to_num(np.asarray(velocity, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if per_axis is not None:
        limit = np.abs(np.asarray(per_axis, dtype=np.float64))
        v = np.clip(v, -limit, limit)
    if norm is not None:
        length = float(np.linalg.norm(v))
        if length > norm:
            v = v * (norm / length)
    return v


def braking_speed(distance, max_accel, dt: float) -> np.ndarray:
    """Per axis, the largest speed v >= 0 such that moving at v for this period and then slowing down by
    ``max_accel * dt`` per period (v, v - a dt, v - 2 a dt, ... while positive) covers at most ``distance``.

    With u = a dt that travel is dt * ((m + 1) v - u m (m + 1) / 2) for v in [m u, (m + 1) u], so
    m = floor((sqrt(1 + 8 D / (u dt)) - 1) / 2) and v = (D / dt + u m (m + 1) / 2) / (m + 1). A negative distance
    counts as zero. Property used by the box: if v is allowed now, v - u is allowed after travelling v dt.
    """
    if dt <= 0:
        raise SafetyConfigError(f"dt must be positive, got {dt}")
    d = np.maximum(np.asarray(distance, dtype=np.float64), 0.0) / dt
    u = np.broadcast_to(np.abs(np.asarray(max_accel, dtype=np.float64)) * dt, d.shape)
    m = np.floor((np.sqrt(1.0 + 8.0 * d / u) - 1.0) / 2.0)
    return (d + u * m * (m + 1.0) / 2.0) / (m + 1.0)


class BoxLimit:
    """Axis-aligned box [low, high] for a position; filters velocities so the position stays (or gets) inside."""

    def __init__(self, low: Sequence[float], high: Sequence[float]):
        self.low = _vector("box low", low)
        self.high = _vector("box high", high, self.low.size)
        bad = np.nonzero(self.low > self.high)[0]
        if bad.size:
            raise SafetyConfigError("box low > high on axes " + ", ".join(
                f"{i} ({self.low[i]:g} > {self.high[i]:g})" for i in bad))

    def contains(self, position: Sequence[float]) -> bool:
        """Whether the position is inside the box (faces included)."""
        p = np.asarray(position, dtype=np.float64)
        return bool(np.all(p >= self.low) and np.all(p <= self.high))

    def filter(self, position: Sequence[float], velocity: np.ndarray, dt: float,
               max_accel: Sequence[float] | float | None = None) -> np.ndarray:
        """The velocity, per axis, shortened so that position + velocity*dt stays in the box; with ``max_accel``
        so that braking from it at that deceleration still stops inside (see :func:`braking_speed`).

        An axis that is already outside may only move back toward the box (it may not overshoot the far face).
        """
        if dt <= 0:
            raise SafetyConfigError(f"dt must be positive, got {dt}")
        p = _vector("position", position, self.low.size)
        v = np.asarray(velocity, dtype=np.float64)
        up, down = self.high - p, p - self.low   # room toward each face (negative: beyond that face)
        if max_accel is None:
            up_limit, down_limit = np.maximum(up, 0.0) / dt, np.maximum(down, 0.0) / dt
        else:
            up_limit, down_limit = braking_speed(up, max_accel, dt), braking_speed(down, max_accel, dt)
        return np.clip(v, -down_limit, up_limit)


class RateLimiter:
    """Limits the per-axis change of a command to ``max_accel * dt`` per period (acceleration limit)."""

    def __init__(self, max_accel: Sequence[float] | float, dim: int):
        self.max_accel = np.abs(_vector("max_accel", np.broadcast_to(np.asarray(max_accel, float), (dim,))))
        self.previous = np.zeros(dim)

    def step(self, target: np.ndarray, dt: float) -> np.ndarray:
        """Move the last output toward ``target`` by at most max_accel*dt per axis and return it.

        A change within ``RATE_TOLERANCE`` (relative) of the limit is made in full, so that float32 plan values
        leave no residue of a few nano-units (a stop one period later than planned).
        """
        limit = self.max_accel * dt
        change = np.asarray(target, float) - self.previous
        within = np.abs(change) <= limit * (1.0 + RATE_TOLERANCE)
        self.previous = self.previous + np.where(within, change, np.clip(change, -limit, limit))
        return self.previous.copy()

    def reset(self, value: np.ndarray | None = None) -> None:
        """Forget the history (the command is now ``value``, default zero)."""
        self.previous = np.zeros_like(self.previous) if value is None else np.asarray(value, float).copy()


class SafetyFilter:
    """Per-axis and norm limits -> optional box -> acceleration limit, for one velocity vector of ``dim`` axes.

    ``max_accel`` of None disables rate limiting; ``box`` of None disables the position check.
    """

    def __init__(self, dim: int, max_speed: Sequence[float] | float | None = None, max_norm: float | None = None,
                 box: BoxLimit | None = None, max_accel: Sequence[float] | float | None = None):
        if dim <= 0:
            raise SafetyConfigError(f"dim must be positive, got {dim}")
        if max_norm is not None and not max_norm >= 0:
            raise SafetyConfigError(f"max_norm must be >= 0, got {max_norm}")
        if box is not None and box.low.size != dim:
            raise SafetyConfigError(f"box has {box.low.size} axes, the command has {dim}")
        self.dim = dim
        self.max_speed = None if max_speed is None else np.abs(
            _vector("max_speed", np.broadcast_to(np.asarray(max_speed, float), (dim,))))
        self.max_norm = max_norm
        self.box = box
        self.rate = None if max_accel is None else RateLimiter(max_accel, dim)

    def apply(self, velocity: Sequence[float], dt: float, position: Sequence[float] | None = None) -> np.ndarray:
        """The safe version of ``velocity`` for the next period of ``dt`` seconds at ``position``.

        With an acceleration limit the box plans its braking at ``BOX_BRAKING`` times that limit, so that slowing
        down for a face obeys the limit even when the measured position jumps ahead (state jitter) by using the
        rest. The box is checked again after the rate limiter (without braking: the position must not leave the
        box within this period), so that the limiter's lag can never carry it out; that second check cuts only
        when the measured position leaves less room than braking needs (the last resort).
        """
        v = np.asarray(velocity, dtype=np.float64).reshape(-1)
        if v.size != self.dim:
            raise SafetyConfigError(f"command has {v.size} axes, expected {self.dim}")
        v = limit_vector(v, self.max_speed, self.max_norm)
        if self.box is not None:
            if position is None:
                raise SafetyConfigError("a box limit needs the current position")
            brake = None if self.rate is None else self.rate.max_accel * BOX_BRAKING
            v = self.box.filter(position, v, dt, brake)
        if self.rate is not None:
            v = self.rate.step(v, dt)
            if self.box is not None:
                v = self.box.filter(position, v, dt)
                self.rate.reset(v)
        return v

    def stop(self) -> np.ndarray:
        """A zero command, immediately (no deceleration ramp); the rate limiter restarts from zero."""
        if self.rate is not None:
            self.rate.reset()
        return np.zeros(self.dim)


class Watchdog:
    """Freshness of an input judged on its timestamps: expired when now - time of the latest input > timeout (or
    never fed).

    No single message can hold it off: an input stamped more than ``max_future`` seconds ahead of the receiver's
    clock is refused, the time of an accepted input is its stamp bounded by its receive time (min(stamp, now)),
    and the latest input counts (not the newest stamp ever seen), so the age grows from the last receipt at least.
    """

    def __init__(self, timeout: float, max_future: float = 0.0):
        if not timeout > 0 or not math.isfinite(timeout):
            raise SafetyConfigError(f"watchdog timeout must be a positive finite number, got {timeout}")
        if not 0 <= max_future < math.inf:
            raise SafetyConfigError(f"watchdog max_future must be a finite number >= 0, got {max_future}")
        self.timeout = timeout
        self.max_future = max_future
        self.stamp: float | None = None

    def feed(self, stamp: float, now: float) -> bool:
        """Record an input stamped ``stamp`` received at ``now`` (seconds); False (not recorded) when the stamp
        is not finite or more than ``max_future`` ahead of ``now``."""
        if not math.isfinite(stamp) or stamp > now + self.max_future:
            return False
        self.stamp = min(stamp, now)
        return True

    def age(self, now: float) -> float:
        """Seconds since the last stamp (inf when never fed)."""
        return math.inf if self.stamp is None else now - self.stamp

    def expired(self, now: float) -> bool:
        """Whether the input is stale at time ``now``."""
        return self.age(now) > self.timeout

    def reset(self) -> None:
        """Forget the last stamp (the input must arrive again)."""
        self.stamp = None


class EStop:
    """A latching emergency stop: once engaged it stays engaged until :meth:`clear` is called."""

    def __init__(self) -> None:
        self.engaged = False
        self.reason = ""

    def engage(self, reason: str) -> None:
        """Engage (idempotent; the first reason is kept)."""
        if not self.engaged:
            self.engaged = True
            self.reason = reason

    def clear(self) -> None:
        """Release the stop."""
        self.engaged = False
        self.reason = ""

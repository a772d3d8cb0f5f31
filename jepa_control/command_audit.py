"""Judge a recorded actuator command stream against the controller's promises, without ROS.

:func:`check_commands` takes the commands (stamp, linear and angular velocity), the genuine end-effector poses,
the plan times and the gates (arm requests, e-stops, disarms) recorded during a run and returns every rule a
command broke, in time order, against :class:`Limits` (from :class:`jepa_control.arm_controller.ControllerSettings`,
see :func:`controller_limits`):

- speed per axis and norm (linear and angular); a non-finite command breaks it too;
- acceleration between consecutive commands, except the documented immediate stops (e-stop, disarm, watchdogs,
  the stale-state hold, the box's last resort);
- the workspace box: the latest pose plus one period of the commanded motion stays inside the box + tolerance,
  or moves back toward it; a pose outside the box + tolerance is reported once per excursion;
- no motion while e-stopped or disarmed, or with a state or plan older than its timeout.

Every time rule is judged on stamps with a margin (default two control periods). `jepa soak` (jepa_ros.soak.run)
records the streams and reports what this finds.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from jepa_control.arm_controller import ControllerSettings
from jepa_common.settings import make_settings

DIAG_PERIOD = 1.0        # s between /diagnostics messages of a node (a reported stop may lag that much)


@dataclass(frozen=True)
class Limits:
    """What the controller promises about its commands (from its settings)."""
    dt: float
    plan_timeout: float
    state_timeout: float
    max_axis_speed: float
    max_linear_speed: float
    max_angular_speed: float
    max_linear_accel: float
    max_angular_accel: float
    box_low: tuple[float, float, float]
    box_high: tuple[float, float, float]
    motion_state_age: float | None = None   # state age that holds motion (immediate stop); None: state_timeout

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> "Limits":
        """The limits a controller with these settings keeps."""
        return cls(dt=1.0 / float(settings.rate), plan_timeout=float(settings.plan_timeout),
                   state_timeout=float(settings.state_timeout), max_axis_speed=float(settings.max_axis_speed),
                   max_linear_speed=float(settings.max_linear_speed),
                   max_angular_speed=float(settings.max_angular_speed),
                   max_linear_accel=float(settings.max_linear_accel),
                   max_angular_accel=float(settings.max_angular_accel),
                   box_low=tuple(float(v) for v in settings.workspace_min),
                   box_high=tuple(float(v) for v in settings.workspace_max),
                   motion_state_age=float(settings.motion_state_age))


def controller_limits(parameters: Mapping[str, Any] | None = None) -> Limits:
    """The limits of a controller whose parameters are ``parameters`` (e.g. a deployment's YAML section) over
    the :class:`ControllerSettings` defaults; an unknown name or a bad value raises SettingsError."""
    return Limits.from_settings(make_settings(ControllerSettings, parameters))


@dataclass(frozen=True)
class Command:
    """One recorded actuator command (a TwistStamped): stamp [s], linear [m/s] and angular [rad/s] velocity."""
    t: float
    linear: tuple[float, float, float]
    angular: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def moving(self) -> bool:
        """Whether any component is non-zero (NaN counts as moving)."""
        return any(v != 0.0 for v in self.linear + self.angular)


@dataclass(frozen=True)
class Pose:
    """One genuine end-effector state (/ee_pose): stamp [s] and position [m]."""
    t: float
    position: tuple[float, float, float]


@dataclass(frozen=True)
class Gate:
    """A change of what the controller may do: ``allow`` (a successful ~/arm, sent at ``t``, answered at
    ``settled``) or a stop from ``t`` on (e-stop, disarm; ``from_diagnostics`` for a disarm the controller
    reported itself, which is ignored while an arm request was in flight)."""
    t: float
    allow: bool
    reason: str
    settled: float | None = None
    from_diagnostics: bool = False


@dataclass(frozen=True)
class Violation:
    """A command (or pose) that broke a rule."""
    t: float
    kind: str
    detail: str
    command: tuple[float, ...]

    def to_dict(self, t0: float = 0.0) -> dict:
        """JSON-ready form; ``t`` relative to ``t0``."""
        return {"t": round(self.t - t0, 4), "stamp": self.t, "kind": self.kind, "detail": self.detail,
                "command": [round(v, 6) for v in self.command]}


def _within(value: float, limit: float) -> bool:
    return abs(value) <= limit * (1.0 + 1e-9) + 1e-12


def stop_intervals(gates: Sequence[Gate], margin: float, dt: float) -> list[tuple[float, float, str]]:
    """Times (start, end, reason) during which no command may move: before the first arm, and from each stop
    until the next successful arm request. A stop the soak caused takes effect ``margin`` after it was sent; one
    the controller reported takes effect at once (it had already happened)."""
    arms = [g for g in gates if g.allow]
    events = []
    for g in gates:
        if g.from_diagnostics and any(a.t <= g.t <= (a.settled or a.t) + 2 * dt for a in arms):
            continue  # the status may predate the arm that was in flight
        events.append((g.t, g.allow, g.reason, g.t + (0.0 if g.allow or g.from_diagnostics else margin)))
    events.sort(key=lambda e: (e[0], e[1]))
    intervals, start, reason, stopped = [], -math.inf, "not armed yet", True
    for t, allow, why, effective in events:
        if allow and stopped:
            if t > start:
                intervals.append((start, t, reason))
            stopped = False
        elif not allow and not stopped:
            start, reason, stopped = effective, why, True
    if stopped:
        intervals.append((start, math.inf, reason))
    return intervals


class _Timeline:
    """Sorted times with 'latest at or before t' and 'any within [a, b]' look-ups."""

    def __init__(self, times: Sequence[float]):
        self.times = sorted(times)

    def latest(self, t: float) -> float | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i - 1] if i else None

    def between(self, a: float, b: float) -> bool:
        i = bisect.bisect_left(self.times, a)
        return i < len(self.times) and self.times[i] <= b


def check_commands(commands: Sequence[Command], poses: Sequence[Pose], plan_times: Sequence[float],
                   gates: Sequence[Gate], limits: Limits, margin: float | None = None,
                   box_tolerance: float = 0.01) -> list[Violation]:
    """Every rule broken by a recorded command stream, in time order.

    ``poses``: the genuine state (not the soak's hostile ones); ``plan_times``: for each plan seen on /jepa/plan,
    the earlier of its stamp and its arrival (a future stamp proves nothing); ``margin`` (default two control
    periods) is granted on every time rule. Kinds: speed, accel, box, outside_box, stopped, state_stale,
    plan_stale.
    """
    dt = limits.dt
    margin = 2 * dt if margin is None else margin
    low, high = np.asarray(limits.box_low), np.asarray(limits.box_high)
    commands = sorted(commands, key=lambda c: c.t)
    poses = sorted(poses, key=lambda p: p.t)
    pose_times = [p.t for p in poses]
    plans = _Timeline(plan_times)
    stops = stop_intervals(gates, margin, dt)
    stop_starts = [s for s, _, _ in stops]
    stop_times = _Timeline([g.t for g in gates if not g.allow])
    violations: list[Violation] = []

    def stopped_at(t: float) -> str | None:
        i = bisect.bisect_right(stop_starts, t) - 1
        return stops[i][2] if i >= 0 and stops[i][0] <= t < stops[i][1] else None

    def state_age(t: float) -> float:
        i = bisect.bisect_right(pose_times, t)
        return t - pose_times[i - 1] if i else math.inf

    def plan_age(t: float) -> float:
        latest = plans.latest(t + margin)
        return math.inf if latest is None else t - latest

    hold_age = limits.state_timeout if limits.motion_state_age is None else limits.motion_state_age

    def immediate_stop(c: Command, t: float) -> bool:
        """A zero command right after (or just before the report of) an e-stop, disarm or watchdog cause, or a
        stale-state hold (judged half a period earlier: the controller may not have had the newest pose)."""
        return not c.moving and (stop_times.between(t - 0.5, t + DIAG_PERIOD + margin)
                                 or state_age(t - dt / 2) + dt / 2 > hold_age
                                 or state_age(t) > limits.state_timeout - margin
                                 or plan_age(t) > limits.plan_timeout - margin)

    def last_resort(t: float, axes: np.ndarray, v: np.ndarray) -> bool:
        """The box's last resort: on each of ``axes`` the latest pose had less room to the face ahead of the
        previous velocity ``v`` than braking at the acceleration limit needs (+ tolerance)."""
        i = bisect.bisect_right(pose_times, t)
        if not i:
            return False
        p, u = np.asarray(poses[i - 1].position), limits.max_linear_accel * dt
        speed = np.abs(v)
        n = np.floor(speed / u)
        braking = dt * ((n + 1) * speed - u * n * (n + 1) / 2)
        room = np.where(v > 0, high - p, p - low)
        return bool(np.all((room < braking + box_tolerance)[axes]))

    def box_ok(position: np.ndarray, v: np.ndarray) -> bool:
        nxt = position + v * dt
        inside = (nxt >= low - box_tolerance) & (nxt <= high + box_tolerance)
        back_up = (position < low) & (v > 0) & (nxt <= high + box_tolerance)
        back_down = (position > high) & (v < 0) & (nxt >= low - box_tolerance)
        return bool(np.all(inside | back_up | back_down))

    previous: Command | None = None
    for c in commands:
        t, lin, ang = c.t, np.asarray(c.linear, float), np.asarray(c.angular, float)
        values = tuple(c.linear) + tuple(c.angular)

        def add(kind: str, detail: str) -> None:
            violations.append(Violation(t, kind, detail, values))

        if not np.all(np.isfinite(lin)) or not np.all(np.isfinite(ang)):
            add("speed", "non-finite command")
        elif not (all(_within(v, limits.max_axis_speed) for v in lin)
                  and _within(float(np.linalg.norm(lin)), limits.max_linear_speed)
                  and _within(float(np.linalg.norm(ang)), limits.max_angular_speed)):
            add("speed", f"|linear| {np.linalg.norm(lin):.4f} (axes {np.round(lin, 4).tolist()}), |angular| "
                         f"{np.linalg.norm(ang):.4f} > max_axis_speed {limits.max_axis_speed} / max_linear_speed "
                         f"{limits.max_linear_speed} / max_angular_speed {limits.max_angular_speed}")
        if previous is not None and t - previous.t <= 1.5 * dt and not immediate_stop(c, t):
            d_lin = lin - np.asarray(previous.linear, float)
            d_ang = ang - np.asarray(previous.angular, float)
            over = np.array([not _within(v, limits.max_linear_accel * dt) for v in d_lin])
            box_stop = over.any() and last_resort(t, over, np.asarray(previous.linear, float))
            if not ((box_stop or not over.any()) and all(_within(v, limits.max_angular_accel * dt) for v in d_ang)):
                add("accel", f"change {np.round(d_lin, 4).tolist()} m/s, {np.round(d_ang, 4).tolist()} rad/s in one "
                             f"period; limit {limits.max_linear_accel * dt:.4f} m/s, "
                             f"{limits.max_angular_accel * dt:.4f} rad/s")
        previous = c
        if not c.moving:
            continue
        why = stopped_at(t)
        if why is not None:
            add("stopped", f"motion while stopped ({why})")
        age = state_age(t)
        if age > limits.state_timeout + margin:
            add("state_stale", f"motion with the state {age:.3f} s old (state_timeout {limits.state_timeout} s)")
        age = plan_age(t)
        if age > limits.plan_timeout + margin:
            add("plan_stale", f"motion with the newest plan {age:.3f} s old (plan_timeout {limits.plan_timeout} s)")
        if np.any(lin != 0.0):
            lo = bisect.bisect_left(pose_times, t - 2 * dt - margin)
            hi = bisect.bisect_right(pose_times, t)
            candidates = poses[lo:hi] or poses[max(hi - 1, 0):hi]
            if candidates and not any(box_ok(np.asarray(p.position), lin) for p in candidates):
                p = np.asarray(candidates[-1].position)
                add("box", f"from {np.round(p, 4).tolist()} the command reaches {np.round(p + lin * dt, 4).tolist()},"
                           f" outside the box {list(limits.box_low)}..{list(limits.box_high)} + {box_tolerance} m")
    outside = False
    for p in poses:
        position = np.asarray(p.position)
        out = bool(np.any(position < low - box_tolerance) or np.any(position > high + box_tolerance))
        if out and not outside:
            violations.append(Violation(p.t, "outside_box", f"end effector at {np.round(position, 4).tolist()}, "
                                        f"outside the box + {box_tolerance} m", tuple(p.position)))
        outside = out
    return sorted(violations, key=lambda v: v.t)

"""The gripper rules without ROS: a plan's ``dgripper`` action in, one safe gripper command per control cycle out.

Convention (V-JEPA 2-AC / DROID): the gripper state is its closedness in [0, 1], 0 = fully open, 1 = fully closed;
the action ``dgripper`` is the change of that state over one action, so the target of a plan is
``clip(current + dgripper, range)`` with ``current`` the measured closedness (else the last commanded one), the
same rule by which the world model integrates its rollouts (the sum clipped to [0, 1]).

:class:`Gripper` holds the rules; :class:`jepa_control.arm_controller.ArmController` calls it:

- Refusal: a ``dgripper`` that is NaN or infinite, or outside [-1, 1] (no two closedness values differ by more), is
  refused, and with it the whole plan (:func:`check_delta` gives the reason).
- Arming: only an armed controller takes a new target (:meth:`Gripper.plan`); while disarmed no command goes out
  except the one hold of a stop.
- Range limit: targets and commands stay inside [``low``, ``high``] (a sub-range of [0, 1]).
- Rate limit: the command moves toward the target by at most ``max_speed`` (closedness per second) per second.
- Stops (e-stop, disarming, watchdog): the gripper holds, it never opens (opening could drop the object). The held
  value is the measured closedness while fresh, else the last commanded one, and never below the last commanded
  one: a position-controlled gripper squeezing an object measures less closed than commanded, and holding the
  measurement would release its grip. The hold is sent once, with the arm's stop.
"""
from __future__ import annotations

import math


#: The action name of the gripper and its allowed units (closedness is unitless).
GRIPPER_NAME = "dgripper"
GRIPPER_UNITS = ("1", "")
#: The largest |dgripper|: closedness lies in [0, 1].
MAX_DELTA = 1.0


def check_delta(delta: float) -> str:
    """Why a plan's ``dgripper`` is refused, or "" when it is fine."""
    if not math.isfinite(delta):
        return f"action {GRIPPER_NAME} is {delta} (NaN or Inf): the gripper closedness change must be finite"
    if abs(delta) > MAX_DELTA:
        return (f"action {GRIPPER_NAME}={delta:g} is outside [-{MAX_DELTA:g}, {MAX_DELTA:g}] (closedness lies in "
                f"[0, 1], 1 = closed)")
    return ""


class Gripper:
    """The commanded closedness of one gripper; see the module docstring for the rules.

    Times are seconds on the controller's clock. ``max_age``: how long a measurement counts as the gripper's
    position (the controller's state_timeout).
    """

    def __init__(self, low: float, high: float, max_speed: float, period: float, max_age: float):
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"gripper range [{low}, {high}] must be a non-empty sub-range of [0, 1]")
        self.low, self.high = float(low), float(high)
        self._max_step = float(max_speed) * float(period)
        self._max_age = float(max_age)
        self.measured: float | None = None
        self._measured_at = -math.inf
        self.commanded: float | None = None   # the last command sent (or the held value)
        self.target: float | None = None      # where the commands go (rate limited)
        self.active = False                   # a plan's target is being commanded (since the last stop)

    def measure(self, value: float, now: float) -> bool:
        """A measured closedness (not clipped: a slightly out-of-range reading still counts); False if not finite."""
        if not math.isfinite(value):
            return False
        self.measured, self._measured_at = float(value), now
        return True

    def fresh_measurement(self, now: float) -> float | None:
        """The measured closedness if younger than ``max_age``, else None."""
        if self.measured is not None and now - self._measured_at <= self._max_age:
            return self.measured
        return None

    def current(self, now: float) -> float | None:
        """Where the gripper is taken to be: the fresh measurement, else the last command, else None (unknown)."""
        measured = self.fresh_measurement(now)
        return measured if measured is not None else self.commanded

    def plan(self, delta: float, armed: bool, now: float) -> str:
        """Take a plan's ``dgripper``: the target becomes clip(current + delta); returns why it was refused, or ""
        (a refusal refuses the whole plan). Disarmed: refused without a reason (nothing to command)."""
        problem = check_delta(delta)
        if problem or not armed:
            return problem
        current = self.current(now)
        if current is None:
            return ("gripper position unknown: no fresh measured gripper state (gripper_joint in /joint_states) "
                    "and nothing commanded yet")
        self.target = self._clip(current + delta)
        if not self.active or self.commanded is None:
            self.commanded = self._clip(current)
        self.active = True
        return ""

    def cycle(self) -> float | None:
        """This cycle's command (None when there is nothing to command): a step of at most ``max_speed * period``
        toward the target."""
        if not self.active or self.target is None or self.commanded is None:
            return None
        change = min(max(self.target - self.commanded, -self._max_step), self._max_step)
        self.commanded = self._clip(self.commanded + change)
        return self.commanded

    def hold(self, now: float) -> float | None:
        """A stop: the value to hold (sent once) if the gripper was being commanded, else None. Never opens."""
        if not self.active:
            return None
        self.active = False
        current = self.current(now)
        candidates = [v for v in (None if current is None else self._clip(current), self.commanded)
                      if v is not None]
        if not candidates:
            return None
        self.commanded = self.target = held = max(candidates)
        return held

    def _clip(self, value: float) -> float:
        return min(max(value, self.low), self.high)

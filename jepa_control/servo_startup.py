"""MoveIt Servo start-up without ROS: which service starts Servo, and the state of the attempts to call it.

MoveIt Servo accepts commands on ``<servo_node>/delta_twist_cmds`` only after its start-up:
- ``humble``: ``<servo_node>/start_servo`` (std_srvs/srv/Trigger), MoveIt 2 Humble's servo server;
- ``jazzy``: ``<servo_node>/switch_command_type`` (moveit_msgs/srv/ServoCommandType, ``command_type: 1`` = TWIST),
  the servo node of MoveIt 2 for Jazzy and later (it logs "Command type has not been set, cannot accept input"
  until then).
:class:`ServoStartup` is the controller node's bookkeeping: it says when to (re)try the call, gives up on calls
that are not answered, blocks arming until one succeeded, and starts again when the service disappears after
start-up (a restarted Servo has forgotten its command type); the node only makes the calls.
"""
from __future__ import annotations

from dataclasses import dataclass

SERVO_STARTUPS = ("none", "humble", "jazzy")
CALL_TIMEOUT = 5.0   # [s] a start-up call not answered within this is given up and retried


@dataclass(frozen=True)
class StartupCall:
    """The service that starts Servo: ``service`` (fully qualified) of type ``srv_type``."""

    service: str
    srv_type: str


def startup_call(mode: str, servo_node: str) -> StartupCall | None:
    """The start-up service of ``mode`` (one of :data:`SERVO_STARTUPS`) for the Servo node ``servo_node``."""
    if mode == "humble":
        return StartupCall(f"{servo_node}/start_servo", "std_srvs/srv/Trigger")
    if mode == "jazzy":
        return StartupCall(f"{servo_node}/switch_command_type", "moveit_msgs/srv/ServoCommandType")
    if mode == "none":
        return None
    raise ValueError(f"servo_startup={mode!r}: must be one of {list(SERVO_STARTUPS)}")


class ServoStartup:
    """State of the start-up: ``not needed``, ``skipped (dry run)``, ``waiting``, ``calling`` or ``done``.

    The node asks :meth:`due` each cycle; when due it reports :meth:`unavailable` (service not offered) or calls
    the service after :meth:`attempt` and reports the answer with :meth:`result`; :meth:`timed_out` says when a call
    in flight is to be given up (:meth:`give_up`).
    """

    def __init__(self, call: StartupCall | None, retry: float, dry_run: bool = False):
        self.call = call
        self.retry = retry
        self.state = "skipped (dry run)" if call and dry_run else ("not needed" if call is None else "waiting")
        self.attempts = 0
        self.last_error = ""
        self._next_attempt = float("-inf")
        self._started: float | None = None

    @property
    def ready(self) -> bool:
        """Whether commands may go out (start-up done, or none to do)."""
        return self.state not in ("waiting", "calling")

    def due(self, now: float) -> bool:
        """Whether to try the start-up now."""
        return self.state == "waiting" and now >= self._next_attempt

    def unavailable(self, now: float) -> None:
        """The service is not offered (Servo not running yet, or another distro's Servo): retry later."""
        self.last_error = f"{self.call.service} ({self.call.srv_type}) not available"
        self._next_attempt = now + self.retry

    def attempt(self, now: float) -> None:
        """A call goes out now."""
        self.state, self._started = "calling", now
        self.attempts += 1

    def timed_out(self, now: float) -> bool:
        """Whether the call in flight has waited longer than :data:`CALL_TIMEOUT` (then :meth:`give_up`)."""
        return self.state == "calling" and now - self._started > CALL_TIMEOUT

    def give_up(self, now: float) -> None:
        """The call in flight is abandoned (its late answer is to be ignored): retry after ``retry`` seconds."""
        self.state, self._next_attempt = "waiting", now + self.retry
        self.last_error = f"{self.call.service}: no answer within {CALL_TIMEOUT} s (call given up)"

    def result(self, success: bool, message: str, now: float) -> None:
        """The answer to the call: done, or retry after ``retry`` seconds."""
        if success:
            self.state, self.last_error = "done", ""
            return
        self.state = "waiting"
        self.last_error = f"{self.call.service} answered failure{': ' + message if message else ''}"
        self._next_attempt = now + self.retry

    def lost(self, now: float) -> bool:
        """The start-up service is gone after start-up (Servo stopped or restarted, which resets its command
        type): wait for it and start again. True when this ended a done start-up (the caller disarms)."""
        if self.state != "done":
            return False
        self.state, self._next_attempt = "waiting", now
        self.last_error = f"{self.call.service} went away after start-up (Servo stopped or restarted)"
        return True

    def blocker(self) -> str:
        """Why arming must wait ("" when it need not)."""
        if self.ready:
            return ""
        reason = f": {self.last_error}" if self.last_error else ""
        return f"MoveIt Servo start-up ({self.call.service}) not done yet{reason}; retrying every {self.retry} s"

    def status(self, level: str, message: str, values: dict) -> tuple[str, str, dict]:
        """The controller's (level, message, values) with the start-up's state added (a WARN while waiting)."""
        values = {**values, "servo_startup": self.state, "servo_startup_attempts": self.attempts,
                  "servo_startup_error": self.last_error}
        if not self.ready and level != "error":
            return "warn", f"{self.blocker()} ({message})", values
        return level, message, values

"""The chaos of `jepa soak` against a started Stack: goals, peer kills and restarts, e-stops, hostile messages,
crash and memory bookkeeping.

:class:`Soak` sends ReachGoal goals one after the other (in a thread), and on a random schedule publishes hostile
messages (:mod:`jepa_ros.soak.hostile`), kills one of :data:`VICTIMS` (SIGKILL or SIGINT) and restarts it,
engages and clears the e-stop or disarms and re-arms the controller. It records what it did (kills, crashes: a
node that exited although the soak did not kill it, goals and how they ended, gates for the command checker) and
samples the RSS of every node process (:class:`Incarnation`, :func:`memory_report`).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from jepa_control.command_audit import Gate
from jepa_ros.soak.hostile import HOSTILE_KINDS

if TYPE_CHECKING:
    from jepa_ros.soak.recorder import SoakNode

VICTIMS = ("planner_node", "perception_node", "sim_node")


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process from /proc (KiB), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Incarnation:
    """One process of a node: its RSS samples (monotonic s, KiB)."""
    node: str
    pid: int
    started: float
    samples: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    def growth(self, warmup: float) -> dict | None:
        """RSS after ``warmup`` s vs the last sample, or None when it did not live long enough."""
        measured = [s for s in self.samples if s[0] >= self.started + warmup]
        if len(measured) < 2:
            return None
        (t0, first), (t1, last) = measured[0], measured[-1]
        return {"pid": self.pid, "start_mib": round(first / 1024, 1), "end_mib": round(last / 1024, 1),
                "growth_pct": round(100.0 * (last - first) / first, 2), "over_s": round(t1 - t0, 1)}


def memory_report(incarnations: Sequence[Incarnation], warmup: float) -> dict[str, dict]:
    """Per node: the growth of its longest-measured process (and how many processes it had)."""
    report: dict[str, dict] = {}
    for node in sorted({i.node for i in incarnations}):
        own = [i for i in incarnations if i.node == node]
        measured = [g for g in (i.growth(warmup) for i in own) if g is not None]
        best = max(measured, key=lambda g: g["over_s"]) if measured else None
        report[node] = {"processes": len(own), **(best or {"growth_pct": None})}
    return report


# --------------------------------------------------------------------------------------------------- goals
def goal_deadline(budget: int) -> float:
    """Wall-clock seconds a goal of ``budget`` steps may take before it counts as not ended (as `jepa eval`)."""
    return 30.0 + 3.0 * budget


@dataclass
class GoalRecord:
    """One ReachGoal the soak sent."""
    index: int
    target: list[float]
    budget: int
    started_s: float
    duration_s: float
    outcome: str            # ended | orphaned (planner SIGKILL/SIGINT/crash: it went away meanwhile) | not ended
    reason: str
    steps: int
    final_distance: float | None


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------- the soak
class Soak:
    """Runs the chaos schedule against a started Stack; see the module docstring."""

    def __init__(self, stack, soak: "SoakNode", client, args: argparse.Namespace):
        self.stack, self.soak, self.client, self.args = stack, soak, client, args
        self.rng = np.random.default_rng([args.seed, 2])
        self.goal_rng = np.random.default_rng([args.seed, 1])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.kills: list[dict] = []
        self.crashes: list[dict] = []
        self.down: dict[str, float] = {}      # node -> when to restart it
        self.abandoned: set[str] = set()      # nodes that crashed too often to restart
        self.restart_failures: list[dict] = []
        self.incarnations: list[Incarnation] = []
        self.goals: list[GoalRecord] = []
        self.goal_image_failures = 0
        self.goal_loop_errors: list[dict] = []
        self.hostile = Counter()
        self.events: list[tuple[float, str]] = []          # (ROS time, what the soak did) for the report
        self.estops = Counter()
        self._estop: tuple[str, float] | None = None     # (kind, when to release it)
        self._released = threading.Event()                # clear while an e-stop or disarm is held: no arming
        self._released.set()
        self.t0 = soak.now()        # ROS time; every time in the report is relative to it
        for name in stack.processes:
            self._track(name)

    # --- processes ----------------------------------------------------------------------------------------
    def _track(self, name: str) -> None:
        self.incarnations.append(Incarnation(name, self.stack.processes[name].pid, time.monotonic()))

    def sample_memory(self) -> None:
        """One RSS sample of every live node process."""
        now = time.monotonic()
        for inc in self.incarnations:
            if self.stack.alive(inc.node) and self.stack.processes[inc.node].pid == inc.pid:
                rss = rss_kib(inc.pid)
                if rss is not None:
                    inc.samples.append((now, rss))

    def check_processes(self, restart: bool = True) -> None:
        """Record crashes (a process that exited although the soak did not kill it); restart nodes that are due
        (a node that crashed more than 5 times stays down)."""
        now = time.monotonic()
        for name in list(self.stack.processes):
            if name in self.down:
                if restart and now >= self.down[name]:
                    self.events.append((self.soak.now(), f"restart {name}"))
                    try:
                        self.stack.start(name)
                    except OSError as exc:      # e.g. the executable is being reinstalled: try again later
                        self.restart_failures.append({"node": name, "t": round(self.soak.now() - self.t0, 2),
                                                      "error": str(exc)})
                        self.down[name] = now + 5.0
                        continue
                    self._track(name)
                    del self.down[name]
            elif name not in self.abandoned and not self.stack.alive(name):
                code = self.stack.processes[name].returncode
                with self._lock:
                    self.crashes.append({"node": name, "t": round(self.soak.now() - self.t0, 2), "exit_code": code,
                                         "log_tail": self.stack.log_tail(name, 15), "monotonic": now})
                print(f"[soak] CRASH: {name} exited with {code}", flush=True)
                if name == "controller_node":   # a restarted controller starts disarmed
                    self.soak.add_gate(Gate(self.soak.now(), False, "controller_node exited"))
                if sum(c["node"] == name for c in self.crashes) < 5:
                    self.down[name] = now + 2.0
                else:
                    self.abandoned.add(name)

    def kill(self, name: str, sig: int) -> None:
        """Kill one peer with ``sig`` and schedule its restart."""
        started = time.monotonic()
        self.events.append((self.soak.now(), f"kill {name} {signal.Signals(sig).name}"))
        self.stack.stop(name, sig)
        process = self.stack.processes[name]
        record = {"node": name, "signal": signal.Signals(sig).name, "t": round(self.soak.now() - self.t0, 2),
                  "exit_code": process.returncode, "stop_s": round(time.monotonic() - started, 2),
                  "clean": sig != signal.SIGINT or process.returncode == 0, "monotonic": started}
        with self._lock:
            self.kills.append(record)
        self.down[name] = time.monotonic() + float(self.rng.uniform(0.5, 5.0))
        print(f"[soak] t={record['t']:.0f}s killed {name} ({record['signal']}, exit {process.returncode})",
              flush=True)

    def planner_lost_since(self, started: float, grace: float = 5.0) -> str | None:
        """How the planner went away (its kill signal, or "crash") after ``started`` and at least ``grace`` s
        ago; None if it did not."""
        now = time.monotonic()
        with self._lock:
            losses = [(k["monotonic"], k.get("signal", "crash")) for k in self.kills + self.crashes
                      if k["node"] == "planner_node"]
        return next((how for t, how in reversed(losses) if started <= t <= now - grace), None)

    # --- e-stop and arming --------------------------------------------------------------------------------
    def engage_estop(self) -> None:
        """Engage the e-stop (topic or service) or disarm; :meth:`release_estop` ends it after a random hold."""
        choice = str(self.rng.choice(["topic", "service", "disarm"]))
        self.estops[choice] += 1
        self.events.append((self.soak.now(), f"{choice} e-stop" if choice != "disarm" else "disarm"))
        if choice == "topic":
            self.soak.estop_topic(True)
        elif choice == "service":
            self.soak.estop_service(True)
        else:
            self.soak.arm(False)
        self._released.clear()
        self._estop = (choice, time.monotonic() + float(self.rng.uniform(0.3, 3.0)))

    def release_estop(self) -> None:
        """Clear the e-stop (a disarm needs nothing cleared) and re-arm once (the goal loop retries)."""
        choice, _ = self._estop
        self._estop = None
        self.events.append((self.soak.now(), "release " + choice))
        if choice != "disarm":
            self.soak.estop_service(False)
            self.soak.estop_topic(False)   # the latched value must not stop a controller that joins later
        self._released.set()
        self.soak.arm(True)

    def arm(self, tries: int) -> bool:
        """Arm the controller, retrying (it refuses while the state is stale or the e-stop engaged); never while
        the soak holds an e-stop or disarm."""
        for _ in range(tries):
            if self._released.is_set() and self.soak.arm(True):
                return True
            time.sleep(0.5)
        return False

    def sleep(self, seconds: float) -> None:
        """Sleep, watching the processes (crashes, due restarts) meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check_processes()
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    # --- goals --------------------------------------------------------------------------------------------
    def goal_loop(self, targets: np.ndarray) -> None:
        """Send goals one after the other until stopped (run in a thread); an unexpected error is recorded and
        the loop goes on."""
        while not self._stop.is_set():
            try:
                self._next_goal(targets)
            except Exception as exc:  # noqa: BLE001 - the soak must keep going; the error is in the report
                traceback.print_exc()
                self.goal_loop_errors.append({"t": round(self.soak.now() - self.t0, 2), "error": repr(exc)})
                time.sleep(1.0)

    def _next_goal(self, targets: np.ndarray) -> None:
        """Arm, then send one goal and record how it ended (nothing when the stack is not ready)."""
        index = len(self.goals)
        try:
            self.client.wait_until_ready(timeout=20.0)
        except TimeoutError:
            return
        if not self.arm(tries=10):
            return
        target = targets[index % len(targets)]
        budget = int(self.goal_rng.integers(5, self.args.max_budget + 1))
        if self.goal_rng.random() < 0.3:
            try:
                self.client.reset_sim()
            except (TimeoutError, RuntimeError):
                pass
        started, started_ros = time.monotonic(), self.soak.now()
        try:
            result = self.client.run_episode(target, budget, timeout=goal_deadline(budget),
                                             alive=lambda: self.planner_lost_since(started) is None)
        except TimeoutError:
            self.goal_image_failures += 1     # the sim was down: no goal image, no goal sent
            time.sleep(0.5)
            return
        ended = time.monotonic()
        lost = self.planner_lost_since(started - 15.0, grace=0.0)  # killed during it or still starting up
        unanswered = result.reason.startswith("no result") or result.reason == "goal rejected by the planner"
        if result.reason == "a node of the stack died" or (lost and unanswered):
            outcome = f"orphaned (planner {lost})"
        elif result.reason.startswith("no result"):
            outcome = "not ended"
        else:
            outcome = "ended"
        record = GoalRecord(index, [round(float(v), 4) for v in target], budget, round(started_ros - self.t0, 2),
                            round(ended - started, 2), outcome, result.reason, result.steps,
                            _finite(result.final_distance))
        with self._lock:
            self.goals.append(record)
        print(f"[soak] goal {index}: {outcome} ({result.reason}) after {record.duration_s:.1f} s, "
              f"{result.steps} steps", flush=True)

    # --- the schedule -------------------------------------------------------------------------------------
    def run(self, seconds: float) -> None:
        """Chaos for ``seconds``: hostile messages, kills and restarts, e-stops; memory sampled every 5 s."""
        rng, args = self.rng, self.args

        def after(mean: float) -> float:
            return time.monotonic() + float(rng.uniform(0.5, 1.5)) * mean

        end = time.monotonic() + seconds
        next_hostile, next_kill, next_estop = after(args.hostile_every), after(args.kill_every), after(
            args.estop_every)
        next_sample = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            self.check_processes()
            if now >= next_sample:
                self.sample_memory()
                next_sample = now + 5.0
            if now >= next_hostile:
                kind = str(rng.choice(HOSTILE_KINDS))
                if self.soak.hostile(kind, rng):
                    self.hostile[kind] += 1
                    self.events.append((self.soak.now(), kind))
                next_hostile = after(args.hostile_every)
            if now >= next_kill:
                up = [n for n in VICTIMS if n not in self.down and self.stack.alive(n)]
                if up:
                    self.kill(str(rng.choice(up)), int(rng.choice([signal.SIGKILL, signal.SIGINT])))
                next_kill = after(args.kill_every)
            if self._estop is None and now >= next_estop:
                self.engage_estop()
            elif self._estop is not None and now >= self._estop[1]:
                self.release_estop()
                next_estop = after(args.estop_every)
            time.sleep(0.05)

    def finish(self, goal_thread: threading.Thread) -> None:
        """Stop sending goals and let the running one end (up to its deadline; killed nodes still come back)."""
        self._stop.set()
        if self._estop is not None:
            self.release_estop()
        deadline = time.monotonic() + goal_deadline(self.args.max_budget) + 40.0
        while goal_thread.is_alive() and time.monotonic() < deadline:
            self.check_processes()
            goal_thread.join(0.2)
        self.check_processes(restart=False)
        self.sample_memory()

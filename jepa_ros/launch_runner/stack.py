"""Starts the nodes of a launch file as separate OS processes (the no-ROS-install stand-in for ros2 launch).

Rules: our nodes run from the console scripts next to this interpreter (a missing one is an error: `make
setup`); a node of another package runs from `<prefix>/lib/<package>/<exec>` of an AMENT_PREFIX_PATH prefix (as
`ros2 run` finds it), else from PATH. A viewer (`VIEWERS`: rviz2) that is not installed is left out with one
clear line on stderr and the stack goes on without it; any other missing executable is an error when it starts.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from jepa_common.package_data import launch_file
from jepa_ros.launch_runner.substitutions import PACKAGE
from jepa_ros.launch_runner.launch_file import LaunchFileError, NodeSpec, read_launch_file

SIM_LAUNCH = launch_file("sim.launch.xml")
#: What a node logs when it cannot start (`jepa_ros.ros_util.run_node`), before its reason.
CANNOT_START = "cannot start: "
#: Packages whose nodes only show the stack (no node needs them): left out when not installed.
VIEWERS = frozenset({"rviz2"})


def isolate_ros_graph() -> str:
    """Give a stack started by `jepa demo`/`jepa eval` a DDS domain of its own unless the user chose one.

    Two demos (or a demo and a real robot) on one network would otherwise see each other's topics and actions.
    Returns the domain id in use; set ROS_DOMAIN_ID yourself to watch the stack with other tools.
    """
    if "ROS_DOMAIN_ID" not in os.environ:
        os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(101, 199))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return os.environ["ROS_DOMAIN_ID"]


def executable_path(name: str, package: str = PACKAGE) -> str:
    """A node executable: our console scripts next to this interpreter (a venv's bin/), another package's in
    `<prefix>/lib/<package>/` of AMENT_PREFIX_PATH or on PATH; FileNotFoundError says where it was looked for."""
    if package == PACKAGE:
        path = Path(sys.executable).parent / name
        if not path.exists():
            raise FileNotFoundError(f"executable {name!r} not found next to {sys.executable}; run `make setup`")
        return str(path)
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        path = Path(prefix) / "lib" / package / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"executable {name!r} of package {package!r} not found in the AMENT_PREFIX_PATH "
                                f"prefixes {prefixes or '(none set)'} nor on PATH")
    return found


class Stack:
    """The processes of one launch file. Use as a context manager; every process is stopped on exit.

    Each node's output goes to `<log_dir>/<node>.log`.
    """

    def __init__(self, launch_file: Path = SIM_LAUNCH, arguments: dict[str, str] | None = None,
                 log_dir: Path | None = None, extra_params: dict[str, dict[str, str]] | None = None):
        specs = read_launch_file(launch_file, arguments)
        names = [spec.name for spec in specs]
        shared = sorted({name for name in names if names.count(name) > 1})
        if shared:
            raise LaunchFileError(f"{launch_file}: several nodes are named {shared}; Stack needs unique names "
                                  f"(logs and stop() go by name)")
        self.specs = {spec.name: spec for spec in specs}
        self.left_out: dict[str, str] = {}   # viewer node -> why it is not started
        for spec in specs:
            if spec.package in VIEWERS:
                try:
                    executable_path(spec.executable, spec.package)
                except FileNotFoundError as exc:
                    self.left_out[spec.name] = str(exc)
                    del self.specs[spec.name]
                    print(f"{spec.executable} is not installed: going on without it ({exc}; with a ROS 2 "
                          f"install, use ros2 launch)", file=sys.stderr, flush=True)
        for node, params in (extra_params or {}).items():
            self.specs[node].params.update({k: str(v) for k, v in params.items()})
        self.log_dir = Path(log_dir or Path("artifacts") / "logs")
        self.processes: dict[str, subprocess.Popen] = {}

    def command(self, spec: NodeSpec) -> list[str]:
        """The full command line of a node."""
        return [executable_path(spec.executable, spec.package), *spec.arguments, *spec.ros_args()]

    def start(self, name: str | None = None) -> None:
        """Start one node (or all of them when name is None)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in ([self.specs[name]] if name else self.specs.values()):
            # a fresh log per stack; a restarted node appends to its own
            log = open(self.log_dir / f"{spec.name}.log", "ab" if spec.name in self.processes else "wb")
            self.processes[spec.name] = subprocess.Popen(self.command(spec), stdout=log, stderr=subprocess.STDOUT,
                                                         env=os.environ.copy(), start_new_session=True)
            log.close()

    def alive(self, name: str) -> bool:
        """Whether the node's process is running."""
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def dead(self) -> list[str]:
        """Names of nodes whose process has exited."""
        return [name for name in self.processes if not self.alive(name)]

    def stop(self, name: str, sig: int = signal.SIGINT, timeout: float = 5.0) -> None:
        """Stop one node: `sig` first (SIGINT = a clean shutdown, SIGKILL = a crash), then SIGKILL."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def stop_all(self) -> None:
        """Stop every node, the controller last so the arm gets its stop command."""
        for name in sorted(self.processes, key=lambda n: n == "controller_node"):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines a node printed."""
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def exit_reason(self, name: str) -> str:
        """Why a node exited, in one line: its "cannot start" reason when it logged one, else its last line."""
        process = self.processes.get(name)
        code = "" if process is None or process.poll() is None else f" with code {process.returncode}"
        lines = self.log_tail(name, 200).splitlines()
        reasons = [line.split(CANNOT_START, 1)[1] for line in lines if CANNOT_START in line]
        reason = reasons[-1] if reasons else (lines[-1] if lines else "no output")
        return f"{name} exited{code}: {reason.strip()}"

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())

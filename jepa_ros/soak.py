"""`jepa soak`: the whole sim stack under hostile conditions, every actuator command checked.

The stack of `launch/sim.launch.xml` (plus a second perception node that decodes CompressedImage frames, the
target of decompression bombs) runs for ``--minutes`` while the soak

- sends random ReachGoal goals (goal images rendered by the sim, as `jepa eval` does) one after the other,
- kills (SIGKILL or SIGINT) and restarts random peers (planner, perception, sim) at random times,
- interleaves hostile messages on the real topics (malformed and non-finite plans, stamps far in the future or
  past, future embeddings and poses, camera frames of wrong sizes and encodings, a PNG that decodes to 6000x6000),
- engages and clears the e-stop and disarms/re-arms the controller,

and records every command on /servo_node/delta_twist_cmds and the state on /ee_pose. At the end every command is
checked (:func:`check_commands`) against the controller's limits (speed per axis and norm, acceleration between
consecutive commands except immediate stops), the workspace box (the latest pose plus one period of the commanded
motion stays inside the box + tolerance, or moves back toward it) and the watchdog / e-stop rules (no motion while
e-stopped or disarmed, or with a state or plan older than its timeout), all judged on stamps with a margin.
The report (printed, and ``--json``) lists crashes (a node that died without being killed by the soak),
violations, goals sent / ended / not ended, and memory growth per node; the exit code is 1 on any crash,
violation or goal that did not end.
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import signal
import struct
import sys
import threading
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from jepa_ros.launch_xml import REPO_ROOT

CONTROLLER_YAML = REPO_ROOT / "config" / "controller.yaml"
VICTIMS = ("planner_node", "perception_node", "sim_node")
COMPRESSED_NODE = "perception_compressed"
COMPRESSED_TOPIC = "/soak/camera/compressed"
DIAG_PERIOD = 1.0        # s between /diagnostics messages of a node
MAX_LISTED = 200         # violations kept per kind in the report (all are counted)


# ------------------------------------------------------------------------------------------------ the limits
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
    def from_settings(cls, values: dict) -> "Limits":
        """From controller parameter values (name -> value); a missing one raises KeyError naming it."""
        return cls(dt=1.0 / float(values["rate"]), plan_timeout=float(values["plan_timeout"]),
                   state_timeout=float(values["state_timeout"]), max_axis_speed=float(values["max_axis_speed"]),
                   max_linear_speed=float(values["max_linear_speed"]),
                   max_angular_speed=float(values["max_angular_speed"]),
                   max_linear_accel=float(values["max_linear_accel"]),
                   max_angular_accel=float(values["max_angular_accel"]),
                   box_low=tuple(float(v) for v in values["workspace_min"]),
                   box_high=tuple(float(v) for v in values["workspace_max"]),
                   motion_state_age=float(values.get("motion_state_age", values["state_timeout"])))


def controller_limits(path: Path = CONTROLLER_YAML) -> Limits:
    """The deployed controller's limits: the YAML's values merged over the controller's settings defaults.

    The one place that knows where the limits come from: the node module's ``SETTINGS`` dataclass when it has
    one (its defaults, the YAML's values checked by `make_settings`), otherwise the YAML alone.
    """
    import yaml

    from jepa_ros.nodes import controller_node
    from jepa_world_model.settings import make_settings

    section = (yaml.safe_load(path.read_text()) or {}).get("controller_node", {}).get("ros__parameters") or {}
    settings_class = getattr(controller_node, "SETTINGS", None)
    values = dataclasses.asdict(make_settings(settings_class, section)) if settings_class else section
    return Limits.from_settings(values)


# ------------------------------------------------------------------------------------------------ the checker
@dataclass(frozen=True)
class Command:
    """One TwistStamped: header stamp [s], linear [m/s] and angular [rad/s] velocity."""
    t: float
    linear: tuple[float, float, float]
    angular: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def moving(self) -> bool:
        """Whether any component is non-zero (NaN counts as moving)."""
        return any(v != 0.0 for v in self.linear + self.angular)


@dataclass(frozen=True)
class Pose:
    """One genuine /ee_pose: header stamp [s] and position [m]."""
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


# -------------------------------------------------------------------------------------------- hostile inputs
HOSTILE_KINDS = (
    "plan_nan_actions", "plan_inf_actions", "plan_nan_energy", "plan_huge", "plan_big", "plan_wrong_size",
    "plan_no_names", "plan_future_far", "plan_future_near", "plan_past_far", "plan_past_near",
    "embedding_future", "embedding_nan", "embedding_wrong_shape",
    "image_wrong_size", "image_bad_encoding", "image_huge_header", "image_future",
    "compressed_bomb", "compressed_garbage", "compressed_valid",
    "pose_future", "pose_nan",
)


def png_bomb(width: int = 6000, height: int = 6000) -> bytes:
    """A valid RGB PNG of width x height black pixels (about 105 KB that decode to 108 MB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row, compressor = bytes(1 + 3 * width), zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG."""
    import io

    from PIL import Image as PILImage
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


# -------------------------------------------------------------------------------------------- the ROS side
class SoakNode:
    """The soak's rclpy node (spun in a background thread): records commands, state, plans and the controller's
    diagnostics, publishes hostile messages and calls the controller's services."""

    def __init__(self, controller: str = "/controller_node"):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from jepa_msgs.msg import Embedding, Plan
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import Bool
        from std_srvs.srv import SetBool

        from jepa_ros.ros_util import latched_qos, reliable_qos, sensor_qos

        self.node = node = Node("jepa_soak")
        self._lock = threading.Lock()
        self._service_lock = threading.Lock()
        self.commands: list[Command] = []
        self.poses: list[Pose] = []
        self.future_poses = 0
        self.plan_times: list[float] = []
        self.gates: list[Gate] = []
        self.controller_values: dict[str, str] = {}
        self.last_embedding = None
        self.last_image = None
        node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", self._on_twist, reliable_qos(200))
        node.create_subscription(PoseStamped, "/ee_pose", self._on_pose, reliable_qos(200))
        node.create_subscription(Plan, "/jepa/plan", self._on_plan, reliable_qos(50))
        node.create_subscription(Embedding, "/jepa/embedding", self._on_embedding, reliable_qos(5))
        node.create_subscription(Image, "/camera/image_raw", self._on_image, sensor_qos())
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable_qos(50))
        self.plan_pub = node.create_publisher(Plan, "/jepa/plan", reliable_qos(5))
        self.embedding_pub = node.create_publisher(Embedding, "/jepa/embedding", reliable_qos(5))
        self.image_pub = node.create_publisher(Image, "/camera/image_raw", sensor_qos())
        self.compressed_pub = node.create_publisher(CompressedImage, COMPRESSED_TOPIC, sensor_qos())
        self.pose_pub = node.create_publisher(PoseStamped, "/ee_pose", reliable_qos(5))
        self.estop_pub = node.create_publisher(Bool, "/jepa/estop", latched_qos())
        self._arm = node.create_client(SetBool, f"{controller}/arm")
        self._estop = node.create_client(SetBool, f"{controller}/estop")
        self._diag_name = f"jepa_ros: {controller.strip('/')}"
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    # --- time ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        """ROS time [s] (the nodes' clock: the system clock)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def stamp(self, seconds: float):
        """builtin_interfaces/Time for ``seconds``."""
        from builtin_interfaces.msg import Time
        sec = math.floor(seconds)
        return Time(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))

    # --- recording ----------------------------------------------------------------------------------------
    def _on_twist(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        t, a = msg.twist.linear, msg.twist.angular
        with self._lock:
            self.commands.append(Command(stamp_seconds(msg.header.stamp), (t.x, t.y, t.z), (a.x, a.y, a.z)))

    def _on_pose(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        stamp, p = stamp_seconds(msg.header.stamp), msg.pose.position
        position = (p.x, p.y, p.z)
        with self._lock:
            if stamp > self.now() + 0.5 or not all(math.isfinite(v) for v in position):
                self.future_poses += 1   # a hostile one (ours): not the state of the arm
                return
            self.poses.append(Pose(stamp, position))

    def _on_plan(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        with self._lock:
            self.plan_times.append(min(stamp_seconds(msg.header.stamp), self.now()))

    def _on_embedding(self, msg) -> None:
        if msg.header.stamp.sec < self.now() + 60:  # not one of ours
            self.last_embedding = msg

    def _on_image(self, msg) -> None:
        if msg.height * msg.width <= 4096 * 4096 and len(msg.data) == msg.height * msg.step and msg.step:
            self.last_image = msg

    def _on_diagnostics(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        for status in msg.status:
            if status.name != self._diag_name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            with self._lock:
                self.controller_values = values
                if values.get("armed") == "False" or values.get("estop") == "True":
                    self.gates.append(Gate(stamp_seconds(msg.header.stamp), False,
                                           f"controller reports: {status.message}", from_diagnostics=True))

    def add_gate(self, gate: Gate) -> None:
        """Record a gate the soak caused."""
        with self._lock:
            self.gates.append(gate)

    def snapshot(self) -> tuple[list[Command], list[Pose], list[float], list[Gate]]:
        """Copies of what was recorded."""
        with self._lock:
            return list(self.commands), list(self.poses), list(self.plan_times), list(self.gates)

    # --- services -----------------------------------------------------------------------------------------
    def _call(self, client, data: bool, timeout: float = 3.0):
        from std_srvs.srv import SetBool

        from jepa_ros.stack import wait_until
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(SetBool.Request(data=data))
        return future.result() if wait_until(future.done, timeout) else None

    def arm(self, armed: bool = True) -> bool:
        """One ~/arm call; the gate it opens (or closes) is recorded. True when the controller agreed."""
        with self._service_lock:
            sent = self.now()
            response = self._call(self._arm, armed)
            ok = response is not None and response.success
            if ok or not armed:
                self.add_gate(Gate(sent, armed, "armed" if armed else "disarmed by ~/arm", settled=self.now()))
            return ok

    def estop_service(self, engage: bool) -> bool:
        """~/estop true (engage, recorded as a stop) or false (clear)."""
        with self._service_lock:
            sent = self.now()
            if engage:
                self.add_gate(Gate(sent, False, "e-stop by ~/estop"))
            response = self._call(self._estop, engage)
            return response is not None and response.success

    def estop_topic(self, value: bool) -> None:
        """Publish on /jepa/estop (a true is recorded as a stop)."""
        from std_msgs.msg import Bool
        if value:
            self.add_gate(Gate(self.now(), False, "e-stop by /jepa/estop"))
        self.estop_pub.publish(Bool(data=value))

    # --- hostile messages ---------------------------------------------------------------------------------
    def hostile(self, kind: str, rng: np.random.Generator) -> bool:
        """Publish one hostile message of ``kind`` (see HOSTILE_KINDS); False when it needs a message that has
        not been seen yet (embedding, image, pose)."""
        now = self.now()
        if kind.startswith("plan_"):
            self.plan_pub.publish(self._hostile_plan(kind, now, rng))
        elif kind.startswith("embedding_"):
            msg = self._hostile_embedding(kind, now)
            if msg is None:
                return False
            self.embedding_pub.publish(msg)
        elif kind.startswith("image_"):
            msg = self._hostile_image(kind, now)
            if msg is None:
                return False
            self.image_pub.publish(msg)
        elif kind.startswith("compressed_"):
            msg = self._hostile_compressed(kind, now, rng)
            if msg is None:
                return False
            self.compressed_pub.publish(msg)
        elif kind.startswith("pose_"):
            if not self.poses:
                return False
            self.pose_pub.publish(self._hostile_pose(kind, now))
        else:
            raise ValueError(f"unknown hostile kind {kind!r}")
        return True

    def _hostile_plan(self, kind: str, now: float, rng: np.random.Generator):
        from jepa_msgs.msg import Plan

        from jepa_ros.msg_validation import fill_plan
        stamp = {"plan_future_far": now + 3600.0, "plan_future_near": now + 1.2, "plan_past_far": now - 3600.0,
                 "plan_past_near": now - 5.0}.get(kind, now)
        actions = rng.uniform(-0.04, 0.04, size=(1, 3))
        energies = [0.1]
        if kind == "plan_nan_actions":
            actions[0, int(rng.integers(3))] = math.nan
        elif kind == "plan_inf_actions":
            actions[0, int(rng.integers(3))] = math.inf
        elif kind == "plan_nan_energy":
            energies = [math.nan]
        elif kind == "plan_huge":
            actions = rng.choice([-1e30, 1e30], size=(1, 3))
        elif kind == "plan_big":
            actions = rng.uniform(-1.0, 1.0, size=(1, 3))
        msg = Plan()
        msg.header.stamp = self.stamp(stamp)
        msg.header.frame_id = "camera"
        fill_plan(msg, actions, action_names=["dx", "dy", "dz"], action_units=["m", "m", "m"], energies=energies,
                  energy=energies[0], sequence=int(rng.integers(1 << 40, 1 << 50)))
        if kind == "plan_wrong_size":
            msg.horizon = 2
        elif kind == "plan_no_names":
            msg.action_names, msg.action_units = [], []
        return msg

    def _hostile_embedding(self, kind: str, now: float):
        from jepa_msgs.msg import Embedding
        source = self.last_embedding
        if source is None:
            return None
        msg = Embedding(model_id=source.model_id, shape=list(source.shape), data=source.data,
                        state_names=list(source.state_names), state=list(source.state))
        msg.header.frame_id = source.header.frame_id
        msg.header.stamp = self.stamp(now + 86400.0 if kind == "embedding_future" else now)
        if kind == "embedding_nan":
            data = np.asarray(source.data, dtype=np.float32).copy()
            data[0] = math.nan
            msg.data = data
        elif kind == "embedding_wrong_shape":
            msg.shape = [int(s) + 1 for s in source.shape]
        return msg

    def _hostile_image(self, kind: str, now: float):
        from sensor_msgs.msg import Image
        source = self.last_image
        if kind == "image_future":
            if source is None:
                return None
            msg = Image(height=source.height, width=source.width, encoding=source.encoding, step=source.step,
                        data=source.data)
            msg.header.frame_id = source.header.frame_id
            msg.header.stamp = self.stamp(now + 86400.0)
            return msg
        msg = {"image_wrong_size": Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(1000)),
               "image_bad_encoding": Image(height=8, width=8, encoding="yuv9000", step=24, data=bytes(192)),
               "image_huge_header": Image(height=60000, width=60000, encoding="rgb8", step=180000,
                                          data=bytes(64))}[kind]
        msg.header.frame_id = "camera_optical_frame"
        msg.header.stamp = self.stamp(now)
        return msg

    def _hostile_compressed(self, kind: str, now: float, rng: np.random.Generator):
        from sensor_msgs.msg import CompressedImage
        from jepa_ros.reach_client import image_to_array
        if kind == "compressed_bomb":
            data, fmt = _bomb(), "png"
        elif kind == "compressed_garbage":
            data, fmt = b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(), "jpeg"
        else:
            if self.last_image is None:
                return None
            data, fmt = png_bytes(image_to_array(self.last_image)), "png"
        msg = CompressedImage(format=fmt, data=data)
        msg.header.frame_id = "camera_optical_frame"
        msg.header.stamp = self.stamp(now)
        return msg

    def _hostile_pose(self, kind: str, now: float):
        from geometry_msgs.msg import PoseStamped
        position = self.poses[-1].position
        msg = PoseStamped()
        msg.header.frame_id = "base_link"
        msg.header.stamp = self.stamp(now + 3600.0 if kind == "pose_future" else now)
        p = msg.pose.position
        p.x, p.y, p.z = (math.nan, position[1], position[2]) if kind == "pose_nan" else position
        msg.pose.orientation.w = 1.0
        return msg

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._executor.shutdown()
        self.node.destroy_node()


_BOMB: list[bytes] = []


def _bomb() -> bytes:
    if not _BOMB:
        _BOMB.append(png_bomb())
    return _BOMB[0]


# ------------------------------------------------------------------------------------------------- memory
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


# ------------------------------------------------------------------------------------------------ the report
def summarise(soak: Soak, violations: list[Violation], limits: Limits, args, duration: float,
              commands: list[Command], poses: list[Pose], gates: list[Gate]) -> dict:
    """The JSON report; times in seconds since the soak started."""
    t0_ros = soak.t0
    counts = Counter(v.kind for v in violations)
    listed: list[dict] = []
    per_kind: Counter = Counter()
    for v in violations:
        per_kind[v.kind] += 1
        if per_kind[v.kind] <= MAX_LISTED:
            listed.append(v.to_dict(t0_ros))
    goals = soak.goals
    by_reason = Counter(g.reason for g in goals if g.outcome == "ended")
    memory = memory_report(soak.incarnations, args.warmup)
    kills = [{k: v for k, v in kill.items() if k != "monotonic"} for kill in soak.kills]
    crashes = [{k: v for k, v in crash.items() if k != "monotonic"} for crash in soak.crashes]
    for name, entry in memory.items():
        entry["kills"] = sum(k["node"] == name for k in kills)
        entry["crashes"] = sum(c["node"] == name for c in soak.crashes)
    not_ended = [dataclasses.asdict(g) for g in goals if g.outcome == "not ended"]
    report = {
        "command": "jepa soak " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["soak"] else "jepa soak",
        "minutes": args.minutes, "seed": args.seed, "duration_s": round(duration, 1),
        "limits": dataclasses.asdict(limits), "margin_s": args.margin if args.margin is not None else 2 * limits.dt,
        "box_tolerance_m": args.box_tolerance,
        "crashes": crashes,
        "kills": kills,
        "restart_failures": soak.restart_failures,
        "goal_loop_errors": soak.goal_loop_errors,
        "violations": {"total": len(violations), "by_kind": dict(counts), "listed": listed},
        "goals": {"sent": len(goals), "ended": sum(g.outcome == "ended" for g in goals),
                  "orphaned": sum(g.outcome.startswith("orphaned") for g in goals), "not_ended": len(not_ended),
                  "orphaned_by": dict(Counter(g.outcome for g in goals if g.outcome.startswith("orphaned"))),
                  "by_reason": dict(by_reason), "no_goal_image": soak.goal_image_failures,
                  "list": [dataclasses.asdict(g) for g in goals]},
        "memory": memory,
        "hostile_messages": dict(soak.hostile),
        "estops": dict(soak.estops),
        "commands": {"recorded": len(commands), "moving": sum(c.moving for c in commands),
                     "gaps": sum(1 for a, b in zip(commands, commands[1:]) if b.t - a.t > 1.5 * limits.dt)},
        "poses": len(poses),
        "events": [[round(t - t0_ros, 3), what] for t, what in soak.events],
        "gates": [{"t": round(g.t - t0_ros, 3), "allow": g.allow, "reason": g.reason,
                   "from_diagnostics": g.from_diagnostics} for g in sorted(gates, key=lambda g: g.t)],
        "controller_diagnostics": dict(soak.soak.controller_values),
    }
    report["ok"] = not soak.crashes and not violations and not not_ended
    return report


def print_report(report: dict) -> None:
    """The report as a few tables."""
    print(f"\njepa soak: {report['duration_s']:.0f} s of chaos, seed {report['seed']}")
    print(f"{'node':<22}{'processes':>10}{'kills':>7}{'crashes':>9}{'RSS start MiB':>15}{'RSS end MiB':>13}"
          f"{'growth %':>10}{'over s':>8}")
    for name, m in report["memory"].items():
        print(f"{name:<22}{m['processes']:>10}{m['kills']:>7}{m['crashes']:>9}{m.get('start_mib', '-'):>15}"
              f"{m.get('end_mib', '-'):>13}{m['growth_pct'] if m['growth_pct'] is not None else '-':>10}"
              f"{m.get('over_s', '-'):>8}")
    g = report["goals"]
    print(f"goals: {g['sent']} sent, {g['ended']} ended {g['by_reason']}, {g['orphaned']} orphaned "
          f"{g['orphaned_by']}, {g['not_ended']} NOT ended; {g['no_goal_image']} attempts without a goal image")
    c = report["commands"]
    print(f"commands: {c['recorded']} recorded ({c['moving']} moving, {c['gaps']} gaps), {report['poses']} poses; "
          f"hostile messages: {sum(report['hostile_messages'].values())}; e-stops/disarms: {report['estops']}")
    v = report["violations"]
    print(f"violations: {v['total']} {v['by_kind']}")
    shown = Counter()
    for item in v["listed"]:
        shown[item["kind"]] += 1
        if shown[item["kind"]] <= 3:
            print(f"  t={item['t']:8.2f}s {item['kind']:<12} {item['detail']}  command={item['command']}")
    for crash in report["crashes"]:
        print(f"CRASH t={crash['t']}s {crash['node']} exit {crash['exit_code']}:\n{crash['log_tail']}")
    for failure in report["restart_failures"] + report["goal_loop_errors"]:
        print(f"soak problem: {failure}")
    print("PASS" if report["ok"] else "FAIL")


# ------------------------------------------------------------------------------------------------ the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa soak`."""
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of chaos (after start-up and warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="seed of goals, hostile messages, kills and e-stops")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "artifacts" / "soak" / "soak.json",
                        help="report file (the recorded commands and poses go next to it as .npz)")
    parser.add_argument("--logs", type=Path, default=REPO_ROOT / "artifacts" / "soak" / "logs", help="node logs")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds of plain goals before the chaos; memory is measured from then on")
    parser.add_argument("--kill-every", type=float, default=45.0, help="mean seconds between peer kills")
    parser.add_argument("--hostile-every", type=float, default=1.5, help="mean seconds between hostile messages")
    parser.add_argument("--estop-every", type=float, default=30.0, help="mean seconds between e-stops/disarms")
    parser.add_argument("--max-budget", type=int, default=15, help="goals get 5..this many control steps")
    parser.add_argument("--margin", type=float, default=None,
                        help="slack on every time rule [s] (default: two control periods)")
    parser.add_argument("--box-tolerance", type=float, default=0.01, help="slack on the workspace box [m]")
    parser.add_argument("--encoder", default="default", help="encoder source")
    parser.add_argument("--predictor", default="default", help="predictor source")
    parser.add_argument("--device", default=None, help="torch device of the nodes (default: the launch file's)")


def compressed_spec(stack) -> object:
    """A second perception node that decodes CompressedImage frames from COMPRESSED_TOPIC (bomb target); its
    embeddings go to /soak/compressed_embedding, away from the planner."""
    base = stack.specs["perception_node"]
    params = dict(base.params, compressed="true", image_topic=COMPRESSED_TOPIC)
    return dataclasses.replace(base, name=COMPRESSED_NODE, param_files=[], params=params,
                               remaps=[("/jepa/embedding", "/soak/compressed_embedding")])


def wait_for_stack(stack, client, timeout: float = 180.0) -> None:
    """Wait until the stack's interfaces are up; RuntimeError with the node's last output if one exits first."""
    deadline = time.monotonic() + timeout
    while True:
        dead = stack.dead()
        if dead:
            raise RuntimeError(f"{dead[0]} exited during start-up; last output:\n{stack.log_tail(dead[0])}")
        try:
            client.wait_until_ready(timeout=5.0)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def save_record(path: Path, commands: list[Command], poses: list[Pose], plan_times: list[float]) -> None:
    """Every command (t, vx, vy, vz, wx, wy, wz), pose (t, x, y, z) and plan time as arrays in an .npz file."""
    np.savez_compressed(path, commands=np.array([(c.t, *c.linear, *c.angular) for c in commands]).reshape(-1, 7),
                        poses=np.array([(p.t, *p.position) for p in poses]).reshape(-1, 4),
                        plan_times=np.asarray(plan_times, dtype=np.float64))


def main(args: argparse.Namespace) -> int:
    """Run `jepa soak`."""
    import rclpy

    from jepa_ros.evaluation import sample_targets
    from jepa_ros.reach_client import ReachClient
    from jepa_ros.stack import Stack, isolate_ros_graph

    limits = controller_limits()
    targets = sample_targets(max(50, int(args.minutes * 30)), args.seed)
    _bomb()
    print(f"ROS_DOMAIN_ID={isolate_ros_graph()}; node logs in {args.logs}", flush=True)
    launch_args = {"encoder": args.encoder, "predictor": args.predictor}
    if args.device:
        launch_args["device"] = args.device
    stack = Stack(arguments=launch_args, log_dir=args.logs)
    stack.specs[COMPRESSED_NODE] = compressed_spec(stack)
    rclpy.init()
    soak_node = client = None
    try:
        with stack:
            soak_node = SoakNode()
            client = ReachClient()
            try:
                wait_for_stack(stack, client)
            except (RuntimeError, TimeoutError) as exc:
                print(f"jepa soak: the stack did not come up: {exc}", file=sys.stderr)
                return 1
            soak = Soak(stack, soak_node, client, args)
            goal_thread = threading.Thread(target=soak.goal_loop, args=(targets,), daemon=True)
            goal_thread.start()
            soak.sleep(args.warmup)
            soak.sample_memory()
            print(f"[soak] warm-up done; {args.minutes:g} min of chaos", flush=True)
            started = time.monotonic()
            try:
                soak.run(60.0 * args.minutes)
            except KeyboardInterrupt:
                print("[soak] interrupted: ending the running goal, then the report", flush=True)
            soak.finish(goal_thread)
            duration = time.monotonic() - started
            stack.stop_all()
            commands, poses, plan_times, gates = soak_node.snapshot()
    finally:
        if client is not None:
            client.close()
        if soak_node is not None:
            soak_node.close()
        rclpy.try_shutdown()
    violations = check_commands(commands, poses, plan_times, gates, limits, args.margin, args.box_tolerance)
    report = summarise(soak, violations, limits, args, duration, commands, poses, gates)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    save_record(args.json.with_suffix(".npz"), commands, poses, plan_times)
    print_report(report)
    print(f"report -> {args.json}")
    return 0 if report["ok"] else 1

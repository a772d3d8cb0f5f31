"""Perception node: camera frames -> world-model embeddings paired with the robot state.

``python -m jepa_ros.nodes.perception_node --ros-args --params-file config/perception.yaml``

Subscribes /camera/image_raw (sensor_msgs/Image, sensor-data QoS; or sensor_msgs/CompressedImage when
``compressed`` is true) and the state (/ee_pose geometry_msgs/PoseStamped or /joint_states sensor_msgs/JointState,
parameter ``state_source``). Publishes /jepa/embedding (jepa_msgs/Embedding): header = the image's header (stamp
and frame_id), the encoder's model_id, features (N, D), and the latest state (empty when none has arrived).

Frames are converted in the subscription callback (cheap, so every malformed frame is seen and counted) and
encoded by a worker thread that only ever takes the newest frame: when encoding falls behind, older frames are
replaced (counted as ``superseded``), never queued. A frame older than ``max_frame_age`` when its turn comes is
dropped (``stale``). A malformed frame never stops the node: each kind of problem is logged once, then only
counted, and the counts are in /diagnostics ("jepa_ros: perception_node", WARN while problems are recent).
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from jepa_msgs.msg import Embedding
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
from transforms3d.euler import quat2euler

from jepa_ros.msg_validation import fill_embedding
from jepa_ros.ros_util import OK, WARN, Diagnostics, declare, reliable_qos, run_node, sensor_qos, stamp_seconds
from jepa_world_model.image_encoding import (CROP_MODES, DEFAULT_MAX_PIXELS, ImageEncodingError, compressed_to_rgb,
                                             image_to_rgb, prepare_image)

STATE_SOURCES = ("ee_pose", "joint_states", "none")
POSE_FIELDS = ("x", "y", "z", "qx", "qy", "qz", "qw", "roll", "pitch", "yaw")
WARN_WINDOW = 5.0  # seconds a bad or stale frame keeps /diagnostics at WARN


def pose_state(msg: PoseStamped, names: list[str]) -> list[float]:
    """The requested fields of a pose (position, quaternion, static-axis xyz Euler angles), in order."""
    p, q = msg.pose.position, msg.pose.orientation
    values = {"x": p.x, "y": p.y, "z": p.z, "qx": q.x, "qy": q.y, "qz": q.z, "qw": q.w}
    if any(n in ("roll", "pitch", "yaw") for n in names):
        values["roll"], values["pitch"], values["yaw"] = quat2euler((q.w, q.x, q.y, q.z), "sxyz")
    return [float(values[n]) for n in names]


class PerceptionNode(Node):
    """Image -> Embedding with the latest state; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("perception_node", **kwargs)
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None  # destroy_node may run after a failed start
        p = self._declare_parameters()
        import torch  # after the parameters: a bad parameter fails fast, before the slow import

        from jepa_world_model import load_encoder
        if p["torch_threads"] > 0:
            torch.set_num_threads(p["torch_threads"])
        self._torch = torch
        self._device = torch.device(p["device"])
        self._encoder = load_encoder(p["model"]).to(self._device)
        self._model_id = self._encoder.model_id
        self._size = p["image_size"] or self._encoder.config.crop_size
        self._crop = p["crop"]
        self._max_age = p["max_frame_age"]
        self._max_pixels = p["max_image_pixels"]
        self._compressed = p["compressed"]

        self._pending: tuple | None = None   # (header, rgb) of the newest unencoded frame
        self._state: tuple | None = None     # (stamp seconds, values)
        self._counts = {"received": 0, "encoded": 0, "superseded": 0}
        self._bad: dict[str, int] = {}
        self._last_problem = -float("inf")
        self._logged_kinds: set[str] = set()
        self._last_gap: float | None = None
        self._last_encode_ms: float | None = None

        self._publisher = self.create_publisher(Embedding, "/jepa/embedding", reliable_qos(5))
        image_type = CompressedImage if self._compressed else Image
        self.create_subscription(image_type, p["image_topic"], self._on_image, sensor_qos())
        if self._state_source == "ee_pose":
            self.create_subscription(PoseStamped, "/ee_pose", self._on_pose, reliable_qos(5))
        elif self._state_source == "joint_states":
            self.create_subscription(JointState, "/joint_states", self._on_joint_state, reliable_qos(5))
        self._diagnostics = Diagnostics(self, "perception_node")
        self.create_timer(0.5, self._report)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="encoder", daemon=True)
        self._worker.start()
        self.get_logger().info(f"encoder {p['model']!r} (model_id {self._model_id}) on {self._device}, input "
                               f"{self._size}x{self._size}, crop={self._crop}, state from {self._state_source}")

    def _declare_parameters(self) -> dict:
        d = {}
        d["model"] = declare(self, "model", "tiny", "encoder: preset name, checkpoint directory, .pt file or "
                             "Hugging Face id", read_only=True)
        d["device"] = declare(self, "device", "cpu", "torch device for the encoder (cpu, cuda, cuda:1)",
                              read_only=True)
        d["crop"] = declare(self, "crop", "center", "center: centre-crop to the input aspect then resize; "
                            "none: resize the whole frame", read_only=True)
        d["image_size"] = declare(self, "image_size", 0, "encoder input size [px]; 0 = the encoder's crop size",
                                  low=0, high=4096, read_only=True)
        d["image_topic"] = declare(self, "image_topic", "/camera/image_raw", "camera topic", read_only=True)
        d["compressed"] = declare(self, "compressed", False, "subscribe sensor_msgs/CompressedImage (jpeg/png) "
                                  "on image_topic instead of sensor_msgs/Image", read_only=True)
        d["state_source"] = declare(self, "state_source", "ee_pose", "paired state: ee_pose (/ee_pose), "
                                    "joint_states (/joint_states) or none", read_only=True)
        d["state_names"] = declare(self, "state_names", ["x", "y", "z"], "state dims: pose fields (x y z qx qy "
                                   "qz qw roll pitch yaw) or joint names (positions)", read_only=True)
        d["max_frame_age"] = declare(self, "max_frame_age", 1.0, "drop frames whose stamp is older than this "
                                     "when their turn comes [s]; 0 disables", low=0.0, high=3600.0, read_only=True)
        d["max_image_pixels"] = declare(self, "max_image_pixels", DEFAULT_MAX_PIXELS, "larger frames are "
                                        "rejected as corrupt", low=1, high=1 << 31, read_only=True)
        d["torch_threads"] = declare(self, "torch_threads", 0, "torch CPU threads; 0 = torch's default",
                                     low=0, high=256, read_only=True)
        if d["crop"] not in CROP_MODES:
            raise ValueError(f"parameter crop={d['crop']!r}: must be one of {list(CROP_MODES)}")
        if d["state_source"] not in STATE_SOURCES:
            raise ValueError(f"parameter state_source={d['state_source']!r}: must be one of {list(STATE_SOURCES)}")
        names = [str(n) for n in d["state_names"]]
        if d["state_source"] != "none" and (not names or "" in names):
            raise ValueError(f"parameter state_names={names}: name the state dims for {d['state_source']}")
        if d["state_source"] == "ee_pose":
            unknown = [n for n in names if n not in POSE_FIELDS]
            if unknown:
                raise ValueError(f"parameter state_names: {unknown} are not pose fields {list(POSE_FIELDS)}")
        self._state_source, self._state_names = d["state_source"], names
        return d

    # -------------------------------------------------------------------------------------------- callbacks
    def _problem(self, kind: str, message: str) -> None:
        """Count a bad/dropped frame; log the first of each kind only."""
        with self._lock:
            self._bad[kind] = self._bad.get(kind, 0) + 1
            self._last_problem = time.monotonic()
            first = kind not in self._logged_kinds
            self._logged_kinds.add(kind)
        if first:
            self.get_logger().warning(f"bad input ({kind}): {message} [further '{kind}' problems are only "
                                      f"counted in /diagnostics]")

    def _on_image(self, msg) -> None:
        with self._lock:
            self._counts["received"] += 1
        try:
            if self._compressed:
                rgb = compressed_to_rgb(msg, self._max_pixels)
            else:
                rgb = image_to_rgb(msg, self._max_pixels)
        except ImageEncodingError as exc:
            self._problem(exc.kind, str(exc))
            return
        with self._lock:
            if self._pending is not None:
                self._counts["superseded"] += 1
            self._pending = (msg.header, rgb)
            self._lock.notify()

    def _set_state(self, stamp, values: list[float]) -> None:
        if not all(np.isfinite(values)):
            self._problem("state_nonfinite", f"state {values} contains NaN/Inf; message ignored")
            return
        with self._lock:
            self._state = (stamp_seconds(stamp), values)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._set_state(msg.header.stamp, pose_state(msg, self._state_names))

    def _on_joint_state(self, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        try:
            values = [float(msg.position[index[n]]) for n in self._state_names]
        except (KeyError, IndexError):
            self._problem("state_mismatch", f"JointState lacks positions for some of {self._state_names} "
                                            f"(names {list(msg.name)}); message ignored")
            return
        self._set_state(msg.header.stamp, values)

    # ------------------------------------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._running and self._pending is None:
                    self._lock.wait(0.5)
                if not self._running:
                    return
                (header, rgb), self._pending = self._pending, None
                state = self._state
            age = self.get_clock().now().nanoseconds * 1e-9 - stamp_seconds(header.stamp)
            if self._max_age > 0 and age > self._max_age:
                self._problem("stale", f"frame stamped {age:.3f} s ago (max_frame_age {self._max_age} s) dropped")
                continue
            try:
                self._encode_and_publish(header, rgb, state)
            except Exception as exc:  # the encoder must not take the node down; the failure is counted instead
                self._problem("encoder", f"{type(exc).__name__}: {exc}")

    def _encode_and_publish(self, header, rgb: np.ndarray, state: tuple | None) -> None:
        start = time.perf_counter()
        image = prepare_image(rgb, self._size, self._crop)
        batch = self._torch.from_numpy(np.ascontiguousarray(image))[None].to(self._device)
        with self._torch.inference_mode():
            features = self._encoder(batch)[0].float().cpu().numpy()
        msg = Embedding()
        if state is None:
            fill_embedding(msg, features, header=header, model_id=self._model_id)
        else:
            fill_embedding(msg, features, header=header, model_id=self._model_id, state_names=self._state_names,
                           state=state[1])
        self._publisher.publish(msg)
        with self._lock:
            self._counts["encoded"] += 1
            self._last_encode_ms = (time.perf_counter() - start) * 1e3
            self._last_gap = None if state is None else stamp_seconds(header.stamp) - state[0]

    # ----------------------------------------------------------------------------------------- diagnostics
    def _report(self) -> None:
        with self._lock:
            counts, bad = dict(self._counts), dict(self._bad)
            recent = time.monotonic() - self._last_problem < WARN_WINDOW
            gap, encode_ms, has_state = self._last_gap, self._last_encode_ms, self._state is not None
        values = {**counts, **{f"dropped_{k}": v for k, v in sorted(bad.items())},
                  "model_id": self._model_id,
                  "state_gap": "none" if gap is None else f"{gap:.3f}",
                  "encode_ms": "none" if encode_ms is None else f"{encode_ms:.1f}"}
        problems = []
        if recent:
            problems.append("bad or stale frames: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
        if self._state_source != "none" and not has_state:
            problems.append(f"no state from {self._state_source}: embeddings carry an empty state")
        if counts["encoded"] == 0:
            problems.append("no frame encoded yet")
        if problems:
            self._diagnostics.set(WARN, "; ".join(problems), **values)
        else:
            self._diagnostics.set(OK, f"encoding ({counts['encoded']} frames)", **values)

    def destroy_node(self) -> None:
        """Stop the worker thread, then the node."""
        with self._lock:
            self._running = False
            self._lock.notify()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the perception node until shutdown; returns a process exit code (2: cannot start)."""
    return run_node(PerceptionNode, "perception_node", args,
                    startup_errors=(ValueError, ParameterException, OSError))


if __name__ == "__main__":
    sys.exit(main())

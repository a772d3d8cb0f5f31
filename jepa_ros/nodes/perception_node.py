"""Perception node: camera frames -> world-model embeddings paired with the robot state.

``python -m jepa_ros.nodes.perception_node --ros-args --params-file config/perception.yaml``

Subscribes /camera/image_raw (sensor_msgs/Image, sensor-data QoS; or sensor_msgs/CompressedImage when
``compressed`` is true) and the state (/ee_pose geometry_msgs/PoseStamped or /joint_states sensor_msgs/JointState,
parameter ``state_source``). Publishes /jepa/embedding (jepa_msgs/Embedding): header = the image's header (stamp
and frame_id), the encoder's model_id, features (N, D), and the state paired with the frame.

The rules (future stamps, stale frames, pairing, "waiting for state") are in
:class:`jepa_world_model.perception.FrameGate`; parameters are :class:`PerceptionSettings`. Frames are converted
in the subscription callback (cheap, so every malformed frame is seen and counted; oversized frames are refused
from their header) and encoded by a worker thread that only ever takes the newest frame: when encoding falls
behind, older frames are replaced (counted as ``superseded``), never queued. A bad frame never stops the node: each
kind of problem is logged once, then only counted, and the counts are in /diagnostics
("jepa_ros: perception_node", WARN while problems are recent or while waiting for state).
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

from jepa_common import topics
from jepa_ros.msg_validation import fill_embedding
from jepa_ros.ros_util import (OK, WARN, Diagnostics, declare_settings, reliable_qos, run_node, sensor_qos,
                               stamp_seconds)
from jepa_world_model.data.image_encoding import ImageEncodingError, compressed_to_rgb, image_to_rgb
from jepa_world_model.perception import (FrameEncoder, FrameGate, PairedState, PerceptionSettings, Refusal,
                                         gripper_state, joint_state, malformed_joint_state, pose_state)

SETTINGS = PerceptionSettings
WARN_WINDOW = 5.0  # seconds a bad or stale frame keeps /diagnostics at WARN


class PerceptionNode(Node):
    """Image -> Embedding with its paired state; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("perception_node", **kwargs)
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None  # destroy_node may run after a failed start
        self.settings = s = declare_settings(self, PerceptionSettings)
        self._gate = FrameGate(s)
        self._encoder = FrameEncoder(s)
        self._pending: tuple | None = None   # (header, rgb) of the newest unencoded frame
        self._counts = {"received": 0, "encoded": 0, "superseded": 0}
        self._bad: dict[str, int] = {}
        self._last_problem = -float("inf")
        self._logged_kinds: set[str] = set()
        self._last_gap: float | None = None
        self._last_encode_ms: float | None = None

        self._publisher = self.create_publisher(Embedding, topics.EMBEDDING, reliable_qos(5))
        image_type = CompressedImage if s.compressed else Image
        self.create_subscription(image_type, s.image_topic, self._on_image, sensor_qos())
        if s.state_source == "ee_pose":
            self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, reliable_qos(5))
            if s.wants_gripper:
                self.create_subscription(JointState, topics.JOINT_STATES, self._on_gripper, reliable_qos(5))
        elif s.state_source == "joint_states":
            self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, reliable_qos(5))
        self._diagnostics = Diagnostics(self, "perception_node")
        self.create_timer(0.5, self._report)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="encoder", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"encoder {s.model!r} (model_id {self._encoder.model_id}) on {self._encoder.device} (device "
            f"{s.device}), input {self._encoder.size}x{self._encoder.size}, crop={s.crop}, state from "
            f"{s.state_source}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -------------------------------------------------------------------------------------------- callbacks
    def _problem(self, refusal: Refusal) -> None:
        """Count a refused frame or state; log the first of each kind only."""
        with self._lock:
            self._bad[refusal.kind] = self._bad.get(refusal.kind, 0) + 1
            self._last_problem = time.monotonic()
            first = refusal.kind not in self._logged_kinds
            self._logged_kinds.add(refusal.kind)
        if first:
            self.get_logger().warning(f"bad input ({refusal.kind}): {refusal.message} [further '{refusal.kind}' "
                                      "problems are only counted in /diagnostics]")

    def _on_image(self, msg) -> None:
        with self._lock:
            self._counts["received"] += 1
            refusal = self._gate.check_frame(stamp_seconds(msg.header.stamp), self._now())
        if refusal is not None:
            self._problem(refusal)
            return
        try:
            if self.settings.compressed:
                rgb = compressed_to_rgb(msg, self.settings.max_image_pixels)
            else:
                rgb = image_to_rgb(msg, self.settings.max_image_pixels)
        except ImageEncodingError as exc:
            self._problem(Refusal(exc.kind, str(exc)))
            return
        with self._lock:
            if self._pending is not None:
                self._counts["superseded"] += 1
            self._pending = (msg.header, rgb)
            self._lock.notify()

    def _add_state(self, stamp, values: list[float]) -> None:
        with self._lock:
            refusal = self._gate.add_state(stamp_seconds(stamp), values, self._now())
        if refusal is not None:
            self._problem(refusal)

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self._add_state(msg.header.stamp, pose_state((p.x, p.y, p.z), (q.x, q.y, q.z, q.w),
                                                     self.settings.pose_names))

    def _on_gripper(self, msg: JointState) -> None:
        refusal = malformed_joint_state(msg.name, msg.position)
        if refusal is None:
            try:
                value = gripper_state(msg.name, msg.position, self.settings)
            except ValueError as exc:
                refusal = Refusal("state_mismatch", f"{exc}; message ignored")
            else:
                with self._lock:
                    refusal = self._gate.add_gripper(stamp_seconds(msg.header.stamp), value, self._now())
        if refusal is not None:
            self._problem(refusal)

    def _on_joint_state(self, msg: JointState) -> None:
        refusal = malformed_joint_state(msg.name, msg.position)
        if refusal is not None:
            self._problem(refusal)
            return
        try:
            values = joint_state(msg.name, msg.position, self.settings.state_names)
        except ValueError as exc:
            self._problem(Refusal("state_mismatch", f"{exc}; message ignored"))
            return
        self._add_state(msg.header.stamp, values)

    # ------------------------------------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._running and self._pending is None:
                    self._lock.wait(0.5)
                if not self._running:
                    return
                (header, rgb), self._pending = self._pending, None
                paired = self._gate.pair(stamp_seconds(header.stamp), self._now())
            if isinstance(paired, Refusal):
                self._problem(paired)
                continue
            try:
                self._encode_and_publish(header, rgb, paired)
            except Exception as exc:  # the encoder must not take the node down; the failure is counted instead
                self._problem(Refusal("encoder", f"{type(exc).__name__}: {exc}"))

    def _encode_and_publish(self, header, rgb: np.ndarray, paired: PairedState | None) -> None:
        start = time.perf_counter()
        features = self._encoder.encode(rgb)
        msg = Embedding()
        names, state = (self.settings.state_names, paired.values) if paired is not None else ((), ())
        fill_embedding(msg, features, header=header, model_id=self._encoder.model_id, state_names=names,
                       state=state)
        self._publisher.publish(msg)
        with self._lock:
            self._counts["encoded"] += 1
            self._last_encode_ms = (time.perf_counter() - start) * 1e3
            self._last_gap = None if paired is None else paired.gap

    # ----------------------------------------------------------------------------------------- diagnostics
    def _report(self) -> None:
        with self._lock:
            counts, bad = dict(self._counts), dict(self._bad)
            recent = time.monotonic() - self._last_problem < WARN_WINDOW
            gap, encode_ms = self._last_gap, self._last_encode_ms
            waiting = self._gate.waiting_for_state(self._now())
        values = {**counts, **{f"dropped_{k}": v for k, v in sorted(bad.items())},
                  "model_id": self._encoder.model_id,
                  "state_gap": "none" if gap is None else f"{gap:.3f}",
                  "encode_ms": "none" if encode_ms is None else f"{encode_ms:.1f}"}
        problems = []
        if waiting:
            problems.append(f"waiting for state from {self.settings.state_source}: frames are not forwarded")
        if recent:
            problems.append("bad or stale input: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
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
    return run_node(PerceptionNode, "perception_node", args, startup_errors=(ValueError, ParameterException,
                                                                              OSError))


if __name__ == "__main__":
    sys.exit(main())

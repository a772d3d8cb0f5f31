"""Perception node over real DDS (its own OS process, tiny encoder): fuzzed images, stamps, state, latest-only.

One node process serves both tests, in file order: the fuzz test runs before any state is published (it also
checks the missing-state behaviour), the second test adds the robot state.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from jepa_msgs.msg import Embedding
from sensor_msgs.msg import Image

from jepa_ros.msg_validation import embedding_array
from jepa_ros.ros_util import WARN, reliable_qos, sensor_qos, stamp_seconds
from jepa_world_model import load_encoder
from jepa_world_model.image_encoding import image_to_rgb, prepare_image
from test.test_nodes_support import Driver, NodeProcess, Robot, cleanup_all, ros_args, wait_status, wait_until

STATUS = "jepa_ros: perception_node"
BAD_KINDS = ("encoding", "size", "step", "truncated", "length")


class Camera:
    """The perception node process and the test side (image publisher, embedding/diagnostics collectors)."""

    def __init__(self):
        self.driver = Driver()
        self.embeddings = self.driver.collect(Embedding, "/jepa/embedding", reliable_qos(100))
        self.diagnostics = self.driver.collect(DiagnosticArray, "/diagnostics", reliable_qos(50))
        self.process = NodeProcess.module("jepa_ros.nodes.perception_node",
                                          ros_args("perception.yaml", torch_threads=1))
        self.images = self.driver.publisher(Image, "/camera/image_raw", sensor_qos())
        assert wait_until(lambda: self.images.get_subscription_count() > 0 or not self.process.alive(), 60.0)
        assert self.process.alive(), self.process.output()
        assert wait_status(self.diagnostics, STATUS, lambda lv, msg, v: True, timeout=60.0), self.process.output()

    def values(self) -> dict:
        status = wait_status(self.diagnostics, STATUS, lambda lv, msg, v: True)
        return status[2]

    def encode_one(self, image: Image, timeout: float = 20.0) -> Embedding:
        """Publish `image` with fresh stamps until its embedding comes back (images are best-effort)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            image.header.stamp = self.driver.stamp()
            wanted = stamp_seconds(image.header.stamp)
            self.images.publish(image)
            found = {}

            def back() -> bool:
                found.update({"msg": m for m in self.embeddings.messages if stamp_seconds(m.header.stamp) == wanted})
                return "msg" in found

            if wait_until(back, 3.0):
                return found["msg"]
        raise AssertionError(f"no embedding for the image:\n{self.process.output()[-3000:]}")

    def close(self) -> None:
        cleanup_all([self.process])
        self.driver.close()


@pytest.fixture(scope="module")
def camera():
    c = Camera()
    yield c
    c.close()


def rgb8_image(height: int, width: int, seed: int, pad: int = 0, encoding: str = "rgb8") -> Image:
    rng = np.random.default_rng(seed)
    channels = 1 if encoding == "mono8" else 3
    rows = rng.integers(0, 256, (height, width * channels + pad), dtype=np.uint8)
    return Image(height=height, width=width, encoding=encoding, step=width * channels + pad, data=rows.tobytes())


def fuzz_image(rng: np.random.Generator) -> tuple[Image, str | None]:
    """A random image message and the error kind it must produce (None: a valid image)."""
    encoding = str(rng.choice(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "rgb16"]))
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "rgb16": 6}[encoding]
    height, width = int(rng.integers(1, 24)), int(rng.integers(1, 24))
    step = width * channels + int(rng.integers(0, 4))
    size = step * height
    kind = str(rng.choice(["valid", "encoding", "size", "huge", "step", "truncated", "length"]))
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(rng.integers(0, 2)), step=step)
    if kind == "encoding":
        msg.encoding = str(rng.choice(["yuv422", "32FC1", "bayer_rggb8", "", "jpeg", "rgb9", "8UC3"]))
    elif kind == "size":
        msg.height, msg.width = (0, width) if rng.random() < 0.5 else (height, 0)
    elif kind == "huge":
        msg.height, msg.width, msg.step = 2**32 - 1, 2**31, 2**32 - 1
        kind = "size"
    elif kind == "step":
        msg.step = int(rng.integers(0, width * channels))
    elif kind == "truncated":
        size = int(rng.integers(0, size))
    elif kind == "length":
        size += int(rng.integers(1, 64))
    msg.data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return msg, (None if kind == "valid" else kind)


def test_fuzzed_images_never_crash_and_each_kind_is_logged_once(camera):
    rng = np.random.default_rng(1234)
    sent = {kind: 0 for kind in BAD_KINDS}
    for i in range(1200):
        msg, kind = fuzz_image(rng)
        msg.header.stamp = camera.driver.stamp()
        camera.images.publish(msg)
        if kind is not None:
            sent[kind] += 1
        time.sleep(0.001)
    assert all(n > 100 for n in sent.values()), sent
    # Best-effort images may be lost on a loaded machine: wait until the node has seen every kind and its
    # count of received frames has settled.
    history = []

    def settled() -> bool:
        values = camera.values()
        history.append(values["received"])
        return all(f"dropped_{k}" in values for k in BAD_KINDS) and history[-3:] == [history[-1]] * 3

    assert wait_until(settled, 30.0, period=1.0), camera.values()
    assert sum(int(camera.values()[f"dropped_{k}"]) for k in BAD_KINDS) >= 100, camera.values()

    # Still alive and still encoding: a good frame afterwards comes back as an embedding.
    embedding = camera.encode_one(rgb8_image(48, 64, seed=5))
    assert camera.process.alive()
    assert list(embedding.state_names) == [] and list(embedding.state) == []  # no state published yet

    values = camera.values()
    for kind in BAD_KINDS:
        counted = int(values[f"dropped_{kind}"])
        assert 0 < counted <= sent[kind], (kind, values)
    assert int(values["received"]) <= 1200 + 5
    log = camera.process.output()
    for kind in BAD_KINDS:
        assert len(re.findall(rf"bad input \({kind}\)", log)) == 1, log[-3000:]
    assert "Traceback" not in log
    level, message, _ = wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: "no state" in msg)
    assert level == WARN and "no state" in message and "truncated=" in message


def test_embedding_keeps_stamp_frame_and_state(camera):
    robot = Robot(camera.driver)
    robot.position = [0.31, -0.05, 0.22]
    assert wait_until(lambda: robot.last_stamp is not None, 5.0)
    time.sleep(0.3)

    # A frame already older than max_frame_age (1 s) is dropped, not encoded.
    before = int(camera.values().get("dropped_stale", 0))
    old = rgb8_image(64, 64, seed=1)
    old.header.stamp = camera.driver.stamp(camera.driver.now() - 5.0)
    old_stamp = stamp_seconds(old.header.stamp)
    for _ in range(3):
        camera.images.publish(old)
        time.sleep(0.05)
    assert wait_until(lambda: int(camera.values().get("dropped_stale", 0)) > before, 10.0)
    assert not any(stamp_seconds(m.header.stamp) == old_stamp for m in camera.embeddings.messages)

    # bgr8, 60x80 with row padding: centre-cropped to 60x60, resized to the tiny encoder's 64x64.
    image = rgb8_image(60, 80, seed=2, pad=7)
    image.encoding = "bgr8"
    image.header.frame_id = "sim_camera_optical_frame"
    embedding = camera.encode_one(image)
    assert embedding.header.frame_id == "sim_camera_optical_frame"
    encoder = load_encoder("tiny")
    assert embedding.model_id == encoder.model_id
    expected = encoder(torch.from_numpy(prepare_image(image_to_rgb(image), 64, "center"))[None])[0]
    features = embedding_array(embedding)
    assert features.shape == tuple(expected.shape)
    np.testing.assert_allclose(features, expected.detach().numpy(), atol=1e-4)
    assert list(embedding.state_names) == ["x", "y", "z"]
    np.testing.assert_allclose(embedding.state, robot.position)

    # Latest frame only: a burst is never queued; embeddings come out in stamp order and the newest is encoded.
    stamps = []
    for i in range(20):
        frame = rgb8_image(64, 64, seed=10 + i)
        frame.header.stamp = camera.driver.stamp()
        stamps.append(stamp_seconds(frame.header.stamp))
        camera.images.publish(frame)
    last = camera.encode_one(rgb8_image(64, 64, seed=99))
    out = [stamp_seconds(m.header.stamp) for m in camera.embeddings.messages]
    assert out == sorted(out) and out[-1] == stamp_seconds(last.header.stamp)
    status = wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: int(v["encoded"]) >= len(out))
    values = status[2]
    accounted = int(values["encoded"]) + int(values["superseded"]) + sum(
        int(v) for k, v in values.items() if k.startswith("dropped_") and k[8:] in BAD_KINDS + ("stale",))
    assert accounted == int(values["received"]), values
    assert abs(float(values["state_gap"])) < 1.0
    robot.stop()

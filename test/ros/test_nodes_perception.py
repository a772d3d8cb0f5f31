"""Perception node over real DDS (its own OS process, tiny encoder): pairing with the state, fuzzed images,
stamps from the future, latest-only, device errors, oversized compressed frames, malformed joint states.

One node process serves the tests of the raw-image node, in file order: the first runs before any state is
published (nothing may be forwarded), the robot state starts there and runs for the later tests.
"""
from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from jepa_msgs.msg import Embedding
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image, JointState

from jepa_common import frames, topics
from jepa_ros.msg_validation import embedding_array
from jepa_ros.ros_util import WARN, reliable_qos, sensor_qos, stamp_seconds
from jepa_world_model import load_encoder
from jepa_world_model.devices import resolve_device
from jepa_world_model.data.image_encoding import image_to_rgb, prepare_image
from test.support.nodes import (HOME_Q, Driver, NodeProcess, Robot, cleanup_all, ros_args, wait_status,
                                wait_until)

pytestmark = pytest.mark.nodes

STATUS = "jepa_ros: perception_node"
BAD_KINDS = ("encoding", "size", "step", "truncated", "length")
ROBOT_POSITION = [0.31, -0.05, 0.22]


class Camera:
    """A perception node process and the test side (image publisher, embedding/diagnostics collectors)."""

    def __init__(self, image_type=Image, params_file: str = "perception.yaml", **params):
        self.driver = Driver()
        self.embeddings = self.driver.collect(Embedding, topics.EMBEDDING, reliable_qos(100))
        self.diagnostics = self.driver.collect(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(50))
        self.process = NodeProcess.module("jepa_ros.nodes.perception_node",
                                          ros_args(params_file, torch_threads=1, **params))
        self.images = self.driver.publisher(image_type, topics.CAMERA, sensor_qos())
        self.robot: Robot | None = None
        assert wait_until(lambda: self.images.get_subscription_count() > 0 or not self.process.alive(), 60.0)
        assert self.process.alive(), self.process.output()
        assert wait_status(self.diagnostics, STATUS, lambda lv, msg, v: True, timeout=60.0), self.process.output()

    def values(self) -> dict:
        status = wait_status(self.diagnostics, STATUS, lambda lv, msg, v: True)
        return status[2]

    def count(self, kind: str) -> int:
        """How many frames/states of a refusal kind the node has counted so far."""
        return int(self.values().get(f"dropped_{kind}", 0))

    def start_robot(self) -> Robot:
        """Publish /ee_pose at ROBOT_POSITION with fresh stamps (50 Hz) from now on."""
        if self.robot is None:
            self.robot = Robot(self.driver)
            self.robot.position = list(ROBOT_POSITION)
        self.robot.start()
        assert wait_until(lambda: self.robot.last_stamp is not None, 5.0)
        return self.robot

    def encode_one(self, image, timeout: float = 20.0) -> Embedding:
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
        """Stop the node and the driver (once)."""
        if self.driver is not None:
            cleanup_all([self.process])
            self.driver.close()
            self.driver = None


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


def frame_kinds(values: dict) -> int:
    """Frames the node dropped, over every frame refusal kind (state refusals are not frames)."""
    return sum(int(v) for k, v in values.items() if k.startswith("dropped_") and not k.startswith("dropped_state_"))


def test_no_embedding_before_the_first_state(camera):
    # Issue 13.9: with a state source, no embedding may go out without its paired state.
    t0 = camera.driver.now()
    for i in range(20):
        frame = rgb8_image(64, 64, seed=200 + i)
        frame.header.stamp = camera.driver.stamp()
        camera.images.publish(frame)
        time.sleep(0.1)
    status = wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: int(v.get("dropped_no_state", 0)) >= 5)
    level, message, values = status
    assert level == WARN and "waiting for state" in message, status
    assert int(values["encoded"]) == 0 and not camera.embeddings.messages, values
    assert not any(stamp_seconds(m.header.stamp) >= t0 for m in camera.embeddings.messages)

    camera.start_robot()
    embedding = camera.encode_one(rgb8_image(64, 64, seed=7))
    assert list(embedding.state_names) == ["x", "y", "z"]
    np.testing.assert_allclose(embedding.state, ROBOT_POSITION)
    assert wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: "waiting for state" not in msg)


def test_fuzzed_images_never_crash_and_each_kind_is_logged_once(camera):
    camera.start_robot()
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

    # Still alive and still encoding: a good frame afterwards comes back as an embedding with its state.
    embedding = camera.encode_one(rgb8_image(48, 64, seed=5))
    assert camera.process.alive()
    np.testing.assert_allclose(embedding.state, ROBOT_POSITION)

    values = camera.values()
    for kind in BAD_KINDS:
        counted = int(values[f"dropped_{kind}"])
        assert 0 < counted <= sent[kind], (kind, values)
    assert int(values["received"]) <= 1200 + 50
    log = camera.process.output()
    for kind in BAD_KINDS:
        assert len(re.findall(rf"bad input \({kind}\)", log)) == 1, log[-3000:]
    assert "Traceback" not in log
    level, message, _ = wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: "truncated=" in msg)
    assert level == WARN and "truncated=" in message


def test_embedding_keeps_stamp_frame_and_state(camera):
    robot = camera.start_robot()
    time.sleep(0.3)

    # A frame already older than max_frame_age (1 s) is dropped, not encoded.
    before = camera.count("stale")
    old = rgb8_image(64, 64, seed=1)
    old.header.stamp = camera.driver.stamp(camera.driver.now() - 5.0)
    old_stamp = stamp_seconds(old.header.stamp)
    for _ in range(3):
        camera.images.publish(old)
        time.sleep(0.05)
    assert wait_until(lambda: camera.count("stale") > before, 10.0)
    assert not any(stamp_seconds(m.header.stamp) == old_stamp for m in camera.embeddings.messages)

    # bgr8, 60x80 with row padding: centre-cropped to 60x60, resized to the tiny encoder's 64x64.
    image = rgb8_image(60, 80, seed=2, pad=7)
    image.encoding = "bgr8"
    image.header.frame_id = frames.SIM_CAMERA_OPTICAL
    embedding = camera.encode_one(image)
    assert embedding.header.frame_id == frames.SIM_CAMERA_OPTICAL
    device = resolve_device("auto")  # the node's device (auto): the same kernels give the same features
    encoder = load_encoder("tiny").to(device)
    assert embedding.model_id == encoder.model_id
    with torch.inference_mode():
        batch = torch.from_numpy(prepare_image(image_to_rgb(image), 64, "center"))[None].to(device)
        expected = encoder(batch)[0].float().cpu().numpy()
    features = embedding_array(embedding)
    assert features.shape == expected.shape
    np.testing.assert_allclose(features, expected, atol=1e-4)
    assert list(embedding.state_names) == ["x", "y", "z"]
    np.testing.assert_allclose(embedding.state, robot.position)

    # Latest frame only: a burst is never queued; embeddings come out in stamp order and the newest is encoded.
    for i in range(20):
        frame = rgb8_image(64, 64, seed=10 + i)
        frame.header.stamp = camera.driver.stamp()
        camera.images.publish(frame)
    last = camera.encode_one(rgb8_image(64, 64, seed=99))
    out = [stamp_seconds(m.header.stamp) for m in camera.embeddings.messages]
    assert out == sorted(out) and out[-1] == stamp_seconds(last.header.stamp)
    status = wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: int(v["encoded"]) >= len(out))
    values = status[2]
    accounted = int(values["encoded"]) + int(values["superseded"]) + frame_kinds(values)
    assert accounted == int(values["received"]), values
    assert abs(float(values["state_gap"])) < 0.5


def test_future_stamps_are_refused_and_a_stopped_state_stops_the_embeddings(camera):
    # Issue 13.2: a frame stamped a day ahead would look fresh to the planner for a day; a state stamped an hour
    # ahead would be paired with later frames. Both are refused and counted, never forwarded.
    camera.start_robot()
    future = rgb8_image(64, 64, seed=3)
    future.header.stamp = camera.driver.stamp(camera.driver.now() + 86_400.0)
    future_stamp = stamp_seconds(future.header.stamp)
    before = camera.count("future")
    for _ in range(5):
        camera.images.publish(future)
        time.sleep(0.05)
    assert wait_until(lambda: camera.count("future") > before, 10.0), camera.values()
    pose = PoseStamped()
    pose.header.stamp = camera.driver.stamp(camera.driver.now() + 3600.0)
    pose.header.frame_id = frames.BASE
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 9.0, 9.0, 9.0
    pose.pose.orientation.w = 1.0
    camera.robot.publisher.publish(pose)
    assert wait_until(lambda: camera.count("state_future") >= 1, 10.0), camera.values()
    embedding = camera.encode_one(rgb8_image(64, 64, seed=4))
    np.testing.assert_allclose(embedding.state, ROBOT_POSITION)
    assert not any(stamp_seconds(m.header.stamp) == future_stamp for m in camera.embeddings.messages)
    assert not any(9.0 in m.state for m in camera.embeddings.messages)

    # Issue 13.9, stale state: once the state stream stops, frames more than max_state_gap (0.5 s) after the last
    # state are not forwarded, and the diagnostics say why.
    camera.robot.stop()
    last_state = camera.robot.last_stamp
    time.sleep(0.8)
    for i in range(10):
        frame = rgb8_image(64, 64, seed=300 + i)
        frame.header.stamp = camera.driver.stamp()
        camera.images.publish(frame)
        time.sleep(0.1)
    status = wait_status(camera.diagnostics, STATUS, lambda lv, msg, v: "waiting for state" in msg)
    assert status[0] == WARN and "waiting for state" in status[1], status
    time.sleep(1.0)  # let any frame still in the encoder come out
    late = [m for m in camera.embeddings.messages if stamp_seconds(m.header.stamp) > last_state + 0.5]
    assert not late, [stamp_seconds(m.header.stamp) - last_state for m in late]
    assert camera.process.alive() and "Traceback" not in camera.process.output()


@pytest.mark.parametrize("device", ["cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_bad_device_is_a_clear_startup_error(device):
    # Issue 13.10: a device that is not there is a startup error (exit code 2) naming it, not a torch traceback.
    process = NodeProcess.module("jepa_ros.nodes.perception_node", ros_args("perception.yaml", device=device))
    try:
        assert process.proc.wait(120) == 2, process.output()
        output = process.output()
        assert f"device '{device}'" in output and "cannot start" in output, output
        assert "Traceback" not in output and "AssertionError" not in output, output
    finally:
        process.cleanup()


def test_device_auto_is_resolved_and_logged(camera):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert re.search(rf"on {expected}(:\d+)? \(device auto\)", camera.process.output()), camera.process.output()


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_oversized_compressed_frame_is_refused_from_its_header(camera):
    # Issue 13.12: a ~110 KB PNG that decodes to 6000x6000 (108 MB of RGB) took the node to 800 MB. The size is
    # checked from the header before decoding; the node's peak memory does not grow and the frame is counted.
    camera.close()  # one perception node at a time on a small machine; the raw-image tests are done
    c = Camera(CompressedImage, compressed=True, state_source="none")
    try:
        small = CompressedImage(format="png", data=png(np.full((48, 64, 3), 90, np.uint8)))
        c.encode_one(small)
        peak_before = peak_rss_bytes(c.process.proc.pid)
        huge = CompressedImage(format="png", data=png(np.zeros((6000, 6000, 3), np.uint8)))
        assert len(huge.data) < 200_000
        for _ in range(5):
            huge.header.stamp = c.driver.stamp()
            c.images.publish(huge)
            time.sleep(0.2)
        c.encode_one(small)  # still encoding; frames are handled in order, so every huge one has been handled
        growth = peak_rss_bytes(c.process.proc.pid) - peak_before
        assert growth < 40e6, f"peak RSS grew by {growth / 1e6:.0f} MB"
        assert wait_until(lambda: c.count("size") >= 1, 20.0), c.values()
        assert re.search(r"bad input \(size\).*36000000 pixels", c.process.output())
        assert c.process.alive() and "Traceback" not in c.process.output()
    finally:
        c.close()


def test_joint_state_with_more_names_than_positions_is_refused_and_counted(camera):
    # A JointState with 4 names and 3 positions breaks sensor_msgs/JointState's rule (equal lengths); it was paired
    # with frames all the same. It is refused, counted as state_malformed, and the node goes on with good states.
    camera.close()  # one perception node at a time on a small machine
    joints = ["base_yaw", "shoulder_pitch", "elbow_pitch"]
    c = Camera(state_source="joint_states", state_names=joints)
    try:
        hostile = c.driver.publisher(JointState, topics.JOINT_STATES, reliable_qos(5))
        assert wait_until(lambda: hostile.get_subscription_count() > 0, 10.0)
        for _ in range(3):
            msg = JointState(name=joints + ["gripper"], position=[9.0, 9.0, 9.0])
            msg.header.stamp = c.driver.stamp()
            hostile.publish(msg)
            time.sleep(0.05)
        assert wait_until(lambda: c.count("state_malformed") >= 3, 10.0), c.values()
        assert re.search(r"bad input \(state_malformed\): JointState with 4 names but 3 positions",
                         c.process.output()), c.process.output()
        Robot(c.driver, joints=True)
        embedding = c.encode_one(rgb8_image(64, 64, seed=5))
        np.testing.assert_allclose(embedding.state, HOME_Q)
        assert not any(9.0 in m.state for m in c.embeddings.messages)
        assert c.process.alive() and "Traceback" not in c.process.output()
    finally:
        c.close()


def test_gripper_state_pairs_the_finger_closedness_and_a_nan_finger_is_refused(camera):
    # V-JEPA 2-AC's 7-D state: the pose plus the closedness of gripper_joint from /joint_states. One JointState
    # whose finger position is NaN is refused and counted; the embeddings keep the last good closedness.
    camera.close()  # one perception node at a time on a small machine
    c = Camera(params_file="perception_franka.yaml")   # x y z roll pitch yaw gripper, panda_finger_joint1
    try:
        c.start_robot()
        fingers = c.driver.publisher(JointState, topics.JOINT_STATES, reliable_qos(5))
        finger = {"position": 0.01}   # closedness 1 - 0.01 / 0.04 = 0.75

        def publish_fingers() -> None:
            msg = JointState(name=["panda_joint1", "panda_finger_joint1"], position=[0.0, finger["position"]])
            msg.header.stamp = c.driver.stamp()
            fingers.publish(msg)

        timer = c.driver.every(0.02, publish_fingers)
        embedding = c.encode_one(rgb8_image(64, 64, seed=6))
        assert list(embedding.state_names) == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
        np.testing.assert_allclose(np.array(embedding.state)[[0, 1, 2, 6]], [*ROBOT_POSITION, 0.75], atol=1e-6)
        c.driver.node.destroy_timer(timer)
        finger["position"] = float("nan")
        publish_fingers()                              # the hostile message
        assert wait_until(lambda: c.count("state_nonfinite") >= 1, 10.0), c.values()
        finger["position"] = 0.01
        timer = c.driver.every(0.02, publish_fingers)
        after = c.encode_one(rgb8_image(64, 64, seed=7))
        np.testing.assert_allclose(np.array(after.state)[[0, 1, 2, 6]], [*ROBOT_POSITION, 0.75], atol=1e-6)
        assert all(np.isfinite(m.state).all() for m in c.embeddings.messages)
        assert c.process.alive() and "Traceback" not in c.process.output()
        c.driver.node.destroy_timer(timer)
    finally:
        c.close()

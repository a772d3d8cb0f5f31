"""The hostile messages of `jepa soak`: malformed or badly stamped plans, embeddings, images and poses.

:func:`hostile_message` builds one message of a kind in :data:`HOSTILE_KINDS` and names the topic it goes to (a key
of :data:`HOSTILE_TOPICS`): non-finite, huge or wrongly sized plans, stamps far in the future or past, future or
non-finite embeddings and poses, camera frames of wrong sizes and encodings, and for the perception node that
decodes CompressedImage frames (on :data:`COMPRESSED_TOPIC`) garbage, a valid frame, and a PNG that decodes to
6000x6000 pixels. The genuine messages the soak saw last serve as templates.
"""
from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np

from jepa_common import frames, topics

COMPRESSED_TOPIC = "/soak/camera/compressed"
#: topic key of :func:`hostile_message` -> topic the message is published on
HOSTILE_TOPICS = {"plan": topics.PLAN, "embedding": topics.EMBEDDING, "image": topics.CAMERA,
                  "compressed": COMPRESSED_TOPIC, "pose": topics.EE_POSE}
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


_BOMB: list[bytes] = []


def bomb() -> bytes:
    """The default :func:`png_bomb`, built once (a second or so) and kept."""
    if not _BOMB:
        _BOMB.append(png_bomb())
    return _BOMB[0]


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG."""
    import io

    from PIL import Image as PILImage
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def stamp(seconds: float):
    """builtin_interfaces/Time for ``seconds``."""
    from builtin_interfaces.msg import Time
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def hostile_message(kind: str, now: float, rng: np.random.Generator, *, embedding=None, image=None,
                    position: tuple[float, float, float] | None = None) -> tuple[str, Any] | None:
    """(topic key, message) of one hostile message of ``kind`` stamped around ``now`` [s]; ``embedding``,
    ``image`` and ``position`` are the last genuine ones (None when the kind needs one that is missing).
    ValueError for an unknown kind."""
    if kind.startswith("plan_"):
        return "plan", hostile_plan(kind, now, rng)
    if kind.startswith("embedding_"):
        msg = None if embedding is None else hostile_embedding(kind, now, embedding)
    elif kind.startswith("image_"):
        msg = hostile_image(kind, now, image)
    elif kind.startswith("compressed_"):
        msg = hostile_compressed(kind, now, rng, image)
    elif kind.startswith("pose_"):
        msg = None if position is None else hostile_pose(kind, now, position)
    else:
        raise ValueError(f"unknown hostile kind {kind!r}")
    return None if msg is None else (kind.split("_")[0], msg)


def hostile_plan(kind: str, now: float, rng: np.random.Generator):
    """A jepa_msgs/Plan: non-finite actions or energy, huge or big actions, a wrong horizon, no action names,
    or a stamp far or just beyond the timeouts in the future or past."""
    from jepa_msgs.msg import Plan

    from jepa_ros.msg_validation import fill_plan
    when = {"plan_future_far": now + 3600.0, "plan_future_near": now + 1.2, "plan_past_far": now - 3600.0,
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
    msg.header.stamp = stamp(when)
    msg.header.frame_id = frames.CAMERA_OPTICAL
    fill_plan(msg, actions, action_names=["dx", "dy", "dz"], action_units=["m", "m", "m"], energies=energies,
              energy=energies[0], sequence=int(rng.integers(1 << 40, 1 << 50)))
    if kind == "plan_wrong_size":
        msg.horizon = 2
    elif kind == "plan_no_names":
        msg.action_names, msg.action_units = [], []
    return msg


def hostile_embedding(kind: str, now: float, source):
    """A copy of the jepa_msgs/Embedding ``source``: stamped a day ahead, with a NaN, or with a wrong shape."""
    from jepa_msgs.msg import Embedding
    msg = Embedding(model_id=source.model_id, shape=list(source.shape), data=source.data,
                    state_names=list(source.state_names), state=list(source.state))
    msg.header.frame_id = source.header.frame_id
    msg.header.stamp = stamp(now + 86400.0 if kind == "embedding_future" else now)
    if kind == "embedding_nan":
        data = np.asarray(source.data, dtype=np.float32).copy()
        data[0] = math.nan
        msg.data = data
    elif kind == "embedding_wrong_shape":
        msg.shape = [int(s) + 1 for s in source.shape]
    return msg


def hostile_image(kind: str, now: float, source=None):
    """A sensor_msgs/Image: too little data, an unknown encoding, a 60000x60000 header, or a copy of ``source``
    stamped a day ahead (None for that one without a ``source``)."""
    from sensor_msgs.msg import Image
    if kind == "image_future":
        if source is None:
            return None
        msg = Image(height=source.height, width=source.width, encoding=source.encoding, step=source.step,
                    data=source.data)
        msg.header.frame_id = source.header.frame_id
        msg.header.stamp = stamp(now + 86400.0)
        return msg
    msg = {"image_wrong_size": Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(1000)),
           "image_bad_encoding": Image(height=8, width=8, encoding="yuv9000", step=24, data=bytes(192)),
           "image_huge_header": Image(height=60000, width=60000, encoding="rgb8", step=180000,
                                      data=bytes(64))}[kind]
    msg.header.frame_id = frames.CAMERA_OPTICAL
    msg.header.stamp = stamp(now)
    return msg


def hostile_compressed(kind: str, now: float, rng: np.random.Generator, image=None):
    """A sensor_msgs/CompressedImage: the PNG bomb, JPEG garbage, or ``image`` as a valid PNG (None for that
    one without an ``image``)."""
    from sensor_msgs.msg import CompressedImage

    from jepa_ros.msg_validation import image_to_array
    if kind == "compressed_bomb":
        data, fmt = bomb(), "png"
    elif kind == "compressed_garbage":
        data, fmt = b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(), "jpeg"
    else:
        if image is None:
            return None
        data, fmt = png_bytes(image_to_array(image)), "png"
    msg = CompressedImage(format=fmt, data=data)
    msg.header.frame_id = frames.CAMERA_OPTICAL
    msg.header.stamp = stamp(now)
    return msg


def hostile_pose(kind: str, now: float, position: tuple[float, float, float]):
    """A geometry_msgs/PoseStamped at ``position``: stamped an hour ahead, or with a NaN x."""
    from geometry_msgs.msg import PoseStamped
    msg = PoseStamped()
    msg.header.frame_id = frames.BASE
    msg.header.stamp = stamp(now + 3600.0 if kind == "pose_future" else now)
    p = msg.pose.position
    p.x, p.y, p.z = (math.nan, position[1], position[2]) if kind == "pose_nan" else position
    msg.pose.orientation.w = 1.0
    return msg

"""Writing robot recordings as rosbag2-compatible MCAP files, ROS-free.

One file per episode. The files use the MCAP ``ros2`` profile, ``ros2msg`` schemas holding the complete message
definition (the type's .msg text followed by every dependency, each after an 80 ``=`` line and ``MSG: pkg/Type``,
as rosbag2 writes them), ``cdr`` messages and per-channel ``offered_qos_profiles`` metadata, so ``ros2 bag
info/play``, MCAP tools and the ``rosbags`` library read them.

At close a ``rosbag2`` metadata record (``serialized_metadata``: rosbag2's BagMetadata, version 8) is written as
rosbag2 does, so rosbag2 parses the integer QoS enums of ``offered_qos_profiles`` correctly in every distro.

Crash safety: messages go into a chunk that is compressed, written and flushed to the operating system when it
reaches ``chunk_size`` bytes or ``flush_period`` seconds; a crash (even SIGKILL) loses at most the chunk in
progress. A file without its footer is readable up to its last complete chunk (see ``dataset.py``).

``jepa_episodes.sim_recording`` records episodes of the built-in MuJoCo arm straight to such files, without DDS.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

import jepa_common.frames
from jepa_common import topics
from jepa_common.package_data import source_checkout

LOG = logging.getLogger(__name__)

PRIMITIVE_TYPES = frozenset({"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
                             "int32", "uint32", "int64", "uint64", "string", "wstring"})
DELIMITER = "=" * 80
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}

# The message types of a recording's default topics (`jepa_common.topics`).
IMAGE_TYPE = "sensor_msgs/msg/Image"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
TWIST_TYPE = "geometry_msgs/msg/TwistStamped"
PLAN_TYPE = "jepa_msgs/msg/Plan"


class RecordingError(ValueError):
    """A recording cannot be written: unknown message type, missing definition or bad input."""


# ----------------------------------------------------------------------------------------- message definitions
def _share_dirs() -> list[Path]:
    """Where .msg files are looked up: AMENT_PREFIX_PATH prefixes, this interpreter's prefix, this checkout."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs = [Path(p) / "share" for p in prefixes] + [Path(sys.prefix) / "share"]
    checkout = source_checkout()
    if checkout is not None:  # source tree: <repo>/jepa_msgs/msg/*.msg
        dirs.append(checkout)
    return dirs


def _split_type(type_name: str) -> tuple[str, str, str]:
    parts = type_name.split("/")
    if len(parts) == 2:
        return parts[0], "msg", parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise RecordingError(f"message type {type_name!r} is not of the form pkg/Type or pkg/msg/Type")


def _msg_text(type_name: str) -> str:
    package, namespace, name = _split_type(type_name)
    for share in _share_dirs():
        path = share / package / namespace / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise RecordingError(f"no .msg file for {type_name!r} under {[str(d) for d in _share_dirs()]} "
                         "(is its package installed and AMENT_PREFIX_PATH set?)")


def _dependencies(text: str, package: str) -> list[str]:
    """Non-primitive field types of a .msg text, qualified with ``package`` when bare, sorted and unique."""
    deps = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        field_type = re.sub(r"\[[^\]]*\]$", "", line.split()[0])  # array suffix
        field_type = field_type.split("<=", 1)[0]  # bounded strings
        if field_type in PRIMITIVE_TYPES:
            continue
        deps.add(field_type if "/" in field_type else f"{package}/{field_type}")
    return sorted(deps)


@lru_cache(maxsize=None)
def message_definition(type_name: str) -> str:
    """The complete ros2msg definition of ``type_name`` (e.g. "sensor_msgs/msg/Image") as rosbag2 stores it."""
    seen: set[str] = set()

    def expand(name: str) -> str:
        text = _msg_text(name)
        out = text
        for dep in _dependencies(text, _split_type(name)[0]):
            if dep not in seen:
                seen.add(dep)
                out += f"\n{DELIMITER}\nMSG: {dep}\n" + expand(dep)
        return out

    return expand(type_name)


@lru_cache(maxsize=None)
def typestore_for(type_name: str, definition: str):
    """A rosbags typestore knowing ``type_name`` (and its dependencies) exactly as ``definition`` gives them."""
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(definition, type_name))
    return store


# ----------------------------------------------------------------------------------------------------- QoS
def qos_yaml(profile: str) -> str:
    """rosbag2's ``offered_qos_profiles`` text for "sensor_data" (best effort, depth 5) or "reliable" (depth 10)."""
    if profile not in ("sensor_data", "reliable"):
        raise RecordingError(f"qos profile must be 'sensor_data' or 'reliable', got {profile!r}")
    reliability, depth = (2, 5) if profile == "sensor_data" else (1, 10)
    never = "\n    sec: 2147483647\n    nsec: 4294967295"
    return (f"- history: 1\n  depth: {depth}\n  reliability: {reliability}\n  durability: 2\n"
            f"  deadline:{never}\n  lifespan:{never}\n  liveliness: 1\n"
            f"  liveliness_lease_duration:{never}\n  avoid_ros_namespace_conventions: false")


def next_episode_index(directory: str | Path, prefix: str) -> int:
    """One past the highest ``<prefix>_NNNN.mcap`` index in ``directory`` (0 when there is none)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)\.mcap$")
    indices = [int(m.group(1)) for p in Path(directory).glob("*.mcap") if (m := pattern.match(p.name))]
    return max(indices, default=-1) + 1


# ---------------------------------------------------------------------------------------------- the writer
class EpisodeWriter:
    """One rosbag2-compatible MCAP file, written chunk by chunk so that a crash loses at most one chunk.

    Args:
        path: the .mcap file to create (parent directories are created).
        chunk_size: bytes of messages per chunk.
        flush_period: seconds after which a partly filled chunk is written anyway (also see ``flush_if_due``).
        compression: "zstd", "lz4" or "none".
    """

    def __init__(self, path: str | Path, chunk_size: int = 1 << 20, flush_period: float = 2.0,
                 compression: str = "zstd"):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
            raise RecordingError(f"chunk_size must be a positive int, got {chunk_size!r}")
        if not flush_period > 0:
            raise RecordingError(f"flush_period must be > 0 s, got {flush_period!r}")
        if compression not in COMPRESSIONS:
            raise RecordingError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size
        self.flush_period = float(flush_period)
        self._file = open(self.path, "wb")
        # The MCAP writer never closes a chunk on its own (huge chunk_size): we do it in _maybe_flush, together
        # with a flush of the file, so that every finished chunk reaches the operating system at once.
        self._writer = McapWriter(self._file, chunk_size=1 << 62, compression=COMPRESSIONS[compression])
        self._writer.start(profile="ros2", library="jepa_ros recorder")
        self._channels: dict[str, tuple[int, str]] = {}
        self._schemas: dict[str, int] = {}
        self._qos: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._time_range: tuple[int, int] | None = None
        self._pending = 0
        self._last_flush = time.monotonic()
        self.message_count = 0
        self.chunks_written = 0
        self.closed = False

    def add_topic(self, topic: str, type_name: str, qos: str = "reliable") -> None:
        """Declare ``topic`` with ROS type ``type_name`` (pkg/msg/Type); its schema is the full definition."""
        if self.closed:
            raise RecordingError(f"{self.path} is closed")
        if topic in self._channels:
            if self._channels[topic][1] != type_name:
                raise RecordingError(f"topic {topic!r} already has type {self._channels[topic][1]!r}, "
                                     f"not {type_name!r}")
            return
        if type_name not in self._schemas:
            definition = message_definition(type_name).encode()
            self._schemas[type_name] = self._writer.register_schema(type_name, "ros2msg", definition)
        self._qos[topic] = qos_yaml(qos)
        channel = self._writer.register_channel(topic, "cdr", self._schemas[type_name],
                                                {"offered_qos_profiles": self._qos[topic]})
        self._channels[topic] = (channel, type_name)
        self._counts[topic] = 0

    def write_cdr(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Append one already CDR-serialised message (e.g. from an rclpy raw subscription)."""
        if self.closed:
            raise RecordingError(f"{self.path} is closed")
        if topic not in self._channels:
            raise RecordingError(f"topic {topic!r} was not added; add_topic() first")
        log_time_ns = int(log_time_ns)
        self._writer.add_message(self._channels[topic][0], log_time=log_time_ns, data=bytes(data),
                                 publish_time=log_time_ns if publish_time_ns is None else int(publish_time_ns),
                                 sequence=self.message_count)
        self.message_count += 1
        self._counts[topic] += 1
        first, last = self._time_range or (log_time_ns, log_time_ns)
        self._time_range = (min(first, log_time_ns), max(last, log_time_ns))
        self._pending += len(data)
        self.flush_if_due()

    def write(self, topic: str, message: Any, log_time_ns: int) -> None:
        """Serialise a rosbags message object (see :func:`make_message`) and append it."""
        type_name = self._channels[topic][1] if topic in self._channels else None
        if type_name is None:
            raise RecordingError(f"topic {topic!r} was not added; add_topic() first")
        store = typestore_for(type_name, message_definition(type_name))
        self.write_cdr(topic, bytes(store.serialize_cdr(message, type_name)), log_time_ns)

    def flush_if_due(self) -> None:
        """Write the chunk in progress when it is full or older than ``flush_period``."""
        if self._pending and (self._pending >= self.chunk_size
                              or time.monotonic() - self._last_flush >= self.flush_period):
            self.flush()

    def flush(self) -> None:
        """Close the chunk in progress (if any) and push everything to the operating system."""
        if self.closed:
            return
        if self._pending:
            self.chunks_written += 1
        self._writer.flush()
        self._file.flush()
        self._pending = 0
        self._last_flush = time.monotonic()

    def bag_metadata(self) -> dict:
        """rosbag2's BagMetadata (version 8) of what was written so far."""
        start, end = self._time_range or (0, 0)
        topics = [{"topic_metadata": {"name": topic, "type": type_name, "serialization_format": "cdr",
                                      "offered_qos_profiles": self._qos[topic], "type_description_hash": ""},
                   "message_count": self._counts[topic]} for topic, (_, type_name) in self._channels.items()]
        return {"version": 8, "storage_identifier": "mcap", "duration": {"nanoseconds": end - start},
                "starting_time": {"nanoseconds_since_epoch": start}, "message_count": self.message_count,
                "topics_with_message_count": topics, "compression_format": "", "compression_mode": "",
                "relative_file_paths": [self.path.name],
                "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": start},
                           "duration": {"nanoseconds": end - start}, "message_count": self.message_count}],
                "custom_data": {}, "ros_distro": ""}

    def close(self) -> None:
        """Write the last chunk, the rosbag2 metadata, the summary (indexes, statistics) and the footer."""
        if self.closed:
            return
        if self._pending:
            self.chunks_written += 1
        self._writer.add_metadata("rosbag2", {"serialized_metadata": yaml.safe_dump(self.bag_metadata(),
                                                                                    sort_keys=False)})
        self._writer.finish()
        self._file.close()
        self.closed = True

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------- message builders
def _store(type_name: str):
    return typestore_for(type_name, message_definition(type_name))


def _header(store, stamp_ns: int, frame_id: str):
    time_type = store.types["builtin_interfaces/msg/Time"]
    stamp = time_type(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    return store.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def make_message(type_name: str, stamp_ns: int, frame_id: str = "", **fields: Any):
    """A rosbags message object of a stamped type with ``header`` filled from ``stamp_ns``.

    Supported: Image (``rgb``: (H, W, 3) uint8), PoseStamped (``position``, ``orientation`` as x, y, z, w),
    TwistStamped (``linear``, ``angular``), JointState (``names``, ``positions``).
    """
    store = _store(type_name)
    types = store.types
    header = _header(store, stamp_ns, frame_id)
    if type_name == IMAGE_TYPE:
        rgb = np.ascontiguousarray(fields["rgb"], dtype=np.uint8)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise RecordingError(f"rgb must be (H, W, 3) uint8, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        return types[type_name](header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                                step=width * 3, data=rgb.reshape(-1))
    if type_name == POSE_TYPE:
        point = types["geometry_msgs/msg/Point"](*(float(v) for v in fields["position"]))
        quat = types["geometry_msgs/msg/Quaternion"](*(float(v) for v in fields.get("orientation", (0, 0, 0, 1))))
        pose = types["geometry_msgs/msg/Pose"](position=point, orientation=quat)
        return types[type_name](header=header, pose=pose)
    if type_name == TWIST_TYPE:
        vector = types["geometry_msgs/msg/Vector3"]
        twist = types["geometry_msgs/msg/Twist"](linear=vector(*(float(v) for v in fields["linear"])),
                                                 angular=vector(*(float(v) for v in fields.get("angular", (0, 0, 0)))))
        return types[type_name](header=header, twist=twist)
    if type_name == JOINT_STATE_TYPE:
        positions = np.asarray(fields["positions"], dtype=np.float64)
        return types[type_name](header=header, name=list(fields["names"]), position=positions,
                                velocity=np.zeros(0), effort=np.zeros(0))
    raise RecordingError(f"make_message does not build {type_name!r}")


def write_episode_arrays(path: str | Path, frames: Sequence[np.ndarray], positions: np.ndarray,
                         stamps_ns: Sequence[int], chunk_size: int = 1 << 20) -> Path:
    """Write frames (each (H, W, 3) uint8) and EE positions (T, 3) with their stamps as one episode file."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(frames) != len(positions) or len(frames) != len(stamps_ns):
        raise RecordingError(f"frames ({len(frames)}), positions ({len(positions)}) and stamps "
                             f"({len(stamps_ns)}) must have the same length")
    with EpisodeWriter(path, chunk_size=chunk_size) as writer:
        writer.add_topic(topics.CAMERA, IMAGE_TYPE, "sensor_data")
        writer.add_topic(topics.EE_POSE, POSE_TYPE)
        for rgb, position, stamp in zip(frames, positions, stamps_ns):
            writer.write(topics.CAMERA, make_message(IMAGE_TYPE, int(stamp), rgb=rgb), int(stamp))
            writer.write(topics.EE_POSE, make_message(POSE_TYPE, int(stamp), jepa_common.frames.BASE,
                                                       position=position), int(stamp))
    return Path(path)

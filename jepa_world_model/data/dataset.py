"""Training episodes from MCAP files and rosbag2 bags: frames paired with robot states, clips, actions.

Reading goes through the ``rosbags`` library (``AnyReader``) for every input: our own MCAP files, rosbag2
directories (metadata.yaml + .mcap or .db3) and single .mcap/.db3 files, with the message definitions the files
carry. One exception: rosbags needs an MCAP file's footer and summary, which a killed recorder never wrote, so
such a file is read sequentially with mcap's stream reader up to its last complete chunk (decoded with a rosbags
typestore built from the file's own schemas, so both paths give the same messages).

Each camera frame is paired with the robot state at its stamp (linear interpolation between the state samples
just before and after it; quaternions normalised-linearly; frames not bracketed by samples are dropped).
State kind ``ee_pose_gripper`` is V-JEPA 2-AC's 7-D state [x, y, z, roll, pitch, yaw, gripper]: the pose from the
PoseStamped topic and the gripper's closedness from the finger joints of the JointState topic (names containing
``finger_joint``; each finger's opening 0 .. ``FRANKA_FINGER_TRAVEL`` m, normalised 0 open .. 1 closed as
``jepa_sim.franka_sim.FrankaSim.gripper_state``), both interpolated at the frame's stamp.
Episodes that are broken or unusable (no camera or state topic, NaN states, non-monotonic stamps, mixed image
sizes, too few frames, undecodable frames, ...) are skipped with a logged reason; nothing questionable reaches
training silently.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from mcap.exceptions import InvalidMagic
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from jepa_common import topics
from jepa_common.gripper import closedness
from jepa_world_model.actions import STATE_KINDS, action_names, pose_state, state_differences, state_names
from jepa_world_model.config import ActionSpace, StateSpace
from jepa_world_model.data.image_encoding import ImageEncodingError, compressed_to_rgb, image_to_rgb

LOG = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
PREFERRED_CAMERA = topics.CAMERA
PREFERRED_STATE = {POSE_TYPE: topics.EE_POSE, JOINT_STATE_TYPE: topics.JOINT_STATES}
BAG_SUFFIXES = (".mcap", ".db3")
#: V-JEPA 2-AC's 7-D state: the end-effector pose (as ``ee_pose``) plus the gripper's closedness from /joint_states
GRIPPER_KIND = "ee_pose_gripper"
#: the state kinds the reader produces (``jepa_world_model.actions.STATE_KINDS`` and ``GRIPPER_KIND``)
READ_STATE_KINDS = STATE_KINDS + (GRIPPER_KIND,)
#: JointState names of the gripper's finger joints contain this (panda_finger_joint1 / 2)
FINGER_JOINT_MARK = "finger_joint"
GRIPPER_NAMES = (("x", "y", "z", "roll", "pitch", "yaw", "gripper"), ("m",) * 3 + ("rad",) * 3 + ("1",))


class EpisodeError(ValueError):
    """An episode cannot be used for training; the message says why."""


@dataclass(frozen=True)
class ReadOptions:
    """How episodes are read.

    Args:
        camera_topic: image topic; None picks the only image topic (or /camera/image_raw among several).
        state_kind: "ee_xyz", "ee_pose", "joints", "ee_pose_gripper" (the 7-D V-JEPA 2-AC state: the pose and the
            gripper closedness from the finger joints of the JointState topic) or "auto" (ee_xyz when a
            PoseStamped topic exists, else joints).
        state_topic: topic of the state messages; None picks by type (/ee_pose, /joint_states preferred).
        max_state_gap: a frame is dropped unless state samples within this many seconds bracket its stamp.
        min_frames: episodes with fewer usable frames are skipped.
        image_size: required (height, width) of every frame; None accepts the first episode's size.
    """

    camera_topic: str | None = None
    state_kind: str = "auto"
    state_topic: str | None = None
    max_state_gap: float = 0.25
    min_frames: int = 2
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.state_kind not in READ_STATE_KINDS + ("auto",):
            raise ValueError(f"ReadOptions.state_kind must be one of {READ_STATE_KINDS + ('auto',)}, "
                             f"got {self.state_kind!r}")
        if not self.max_state_gap > 0:
            raise ValueError(f"ReadOptions.max_state_gap must be > 0 s, got {self.max_state_gap}")
        if self.min_frames < 2:
            raise ValueError(f"ReadOptions.min_frames must be >= 2, got {self.min_frames}")

    def to_dict(self) -> dict:
        """JSON-able form (stored with caches and checkpoints)."""
        return {"camera_topic": self.camera_topic, "state_kind": self.state_kind, "state_topic": self.state_topic,
                "max_state_gap": self.max_state_gap, "min_frames": self.min_frames,
                "image_size": list(self.image_size) if self.image_size else None}


@dataclass
class Episode:
    """One recording: frames (T, H, W, 3) uint8 with stamps (T,) ns and the states (T, S) at those stamps."""

    source: Path
    stamps: np.ndarray
    frames: np.ndarray
    states: np.ndarray
    state_names: tuple[str, ...]
    state_units: tuple[str, ...]
    camera_topic: str
    state_topic: str
    recovered: bool = False  # read from a file without footer (killed recorder)

    def __len__(self) -> int:
        return len(self.stamps)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


@dataclass(frozen=True)
class Skipped:
    """An input that was not used, and why."""

    source: Path
    reason: str


# ------------------------------------------------------------------------------------------ finding inputs
def find_episodes(paths: Iterable[str | Path]) -> list[Path]:
    """Expand inputs into episode sources: .mcap/.db3 files and rosbag2 directories (with metadata.yaml).

    A directory without metadata.yaml is searched (sorted, recursively) for both.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"data path {path} does not exist")
        if path.is_file() or (path / "metadata.yaml").is_file():
            found.append(path)
            continue
        for child in sorted(path.iterdir()):
            if child.is_dir() or child.suffix in BAG_SUFFIXES:
                found.extend(find_episodes([child]) if child.is_dir() else [child])
    return found


# ------------------------------------------------------------------------------------------- raw messages
@dataclass
class _RawBag:
    types: dict[str, str] = field(default_factory=dict)  # topic -> msgtype
    messages: dict[str, list[tuple[int, bytes]]] = field(default_factory=lambda: defaultdict(list))
    deserialize: Callable[[bytes, str], object] | None = None
    recovered: bool = False


def _types_from_definition(msgtype: str, encoding: str, text: str) -> dict:
    if encoding == "ros2msg":
        return get_types_from_msg(text, msgtype)
    if encoding == "ros2idl":
        types: dict = {}
        separator = "=" * 80 + "\n"
        parts = text.split(separator)[1:] if text.startswith(separator + "IDL: ") else [text]
        for part in parts:
            types.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
        return types
    return {}


def _read_with_rosbags(path: Path, wanted: Callable[[str, str], bool]) -> _RawBag:
    raw = _RawBag()
    with AnyReader([path], default_typestore=get_typestore(Stores.LATEST)) as reader:
        connections = [c for c in reader.connections if wanted(c.topic, c.msgtype)]
        for connection in reader.connections:
            raw.types[connection.topic] = connection.msgtype
        for connection, timestamp, data in reader.messages(connections=connections):
            raw.messages[connection.topic].append((timestamp, bytes(data)))
        store = reader.typestore
    raw.deserialize = store.deserialize_cdr
    return raw


def _read_mcap_stream(path: Path, wanted: Callable[[str, str], bool]) -> _RawBag:
    """Sequential read of an MCAP file that may end without summary/footer (only complete chunks count)."""
    raw = _RawBag(recovered=True)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    types: dict = {}
    with open(path, "rb") as stream:
        try:
            for record in StreamReader(stream, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                    types.update(_types_from_definition(record.name, record.encoding, record.data.decode()))
                elif isinstance(record, Channel):
                    channels[record.id] = record
                    schema = schemas.get(record.schema_id)
                    raw.types[record.topic] = schema.name if schema else ""
                elif isinstance(record, Message) and record.channel_id in channels:
                    topic = channels[record.channel_id].topic
                    if wanted(topic, raw.types[topic]):
                        raw.messages[topic].append((record.log_time, bytes(record.data)))
        except InvalidMagic as exc:
            if not channels:
                raise EpisodeError(f"not an MCAP file ({exc})") from exc
        except Exception as exc:  # noqa: BLE001 - the tail of a killed recording is cut anywhere
            LOG.warning("%s: stopped at an incomplete or corrupt record (%s: %s); using the messages of the "
                        "complete chunks before it", path, type(exc).__name__, exc)
    for messages in raw.messages.values():  # log-time order, like the rosbags reader
        messages.sort(key=lambda item: item[0])
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    raw.deserialize = store.deserialize_cdr
    return raw


def _read_raw(path: Path, wanted: Callable[[str, str], bool]) -> _RawBag:
    try:
        return _read_with_rosbags(path, wanted)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for unreadable files
        if path.suffix != ".mcap":
            raise EpisodeError(f"unreadable bag ({type(exc).__name__}: {exc})") from exc
        LOG.warning("%s: rosbags cannot open it (%s); reading it sequentially up to its last complete chunk "
                    "(an MCAP file without footer/summary, e.g. from a killed recorder)", path, exc)
        return _read_mcap_stream(path, wanted)


# --------------------------------------------------------------------------------------------- one episode
def _pick_topic(types: dict[str, str], accepted: Sequence[str], preferred: str, what: str) -> str:
    candidates = sorted(t for t, ty in types.items() if ty in accepted)
    if not candidates:
        raise EpisodeError(f"no {what} topic (types {list(accepted)}); topics: {types}")
    if len(candidates) == 1:
        return candidates[0]
    if preferred in candidates:
        return preferred
    raise EpisodeError(f"several {what} topics {candidates}; choose one explicitly")


def _deserialize(raw: _RawBag, data: bytes, msgtype: str, what: str):
    try:
        return raw.deserialize(data, msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for corrupt or unknown data
        raise EpisodeError(f"{what} ({msgtype}) cannot be deserialised: {type(exc).__name__}: {exc}") from exc


def _stamp_ns(msg, log_time: int) -> int:
    stamp = msg.header.stamp
    value = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return value if value > 0 else int(log_time)


def _decode_frames(raw: _RawBag, topic: str) -> tuple[np.ndarray, np.ndarray]:
    msgtype = raw.types[topic]
    stamps, frames = [], []
    for i, (log_time, data) in enumerate(raw.messages[topic]):
        msg = _deserialize(raw, data, msgtype, f"frame {i} of {topic}")
        try:
            rgb = image_to_rgb(msg) if msgtype.endswith("/Image") else compressed_to_rgb(msg)
        except ImageEncodingError as exc:
            raise EpisodeError(f"frame {i} of {topic} cannot be decoded: {exc}") from exc
        if frames and rgb.shape != frames[0].shape:
            raise EpisodeError(f"frame {i} of {topic} is {rgb.shape[1]}x{rgb.shape[0]}, frame 0 is "
                               f"{frames[0].shape[1]}x{frames[0].shape[0]} (image size mismatch)")
        stamps.append(_stamp_ns(msg, log_time))
        frames.append(rgb)
    if not frames:
        raise EpisodeError(f"camera topic {topic} has no messages")
    stamps_arr = np.asarray(stamps, dtype=np.int64)
    bad = np.flatnonzero(np.diff(stamps_arr) <= 0)
    if bad.size:
        raise EpisodeError(f"camera stamps of {topic} are not strictly increasing (frame {bad[0] + 1})")
    return stamps_arr, np.stack(frames)


def _state_samples(raw: _RawBag, topic: str, kind: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Raw state samples: stamps (K,), values (K, V) and joint names (joints) or ()."""
    msgtype = raw.types[topic]
    stamps, values = [], []
    joint_names: tuple[str, ...] = ()
    for i, (log_time, data) in enumerate(raw.messages[topic]):
        msg = _deserialize(raw, data, msgtype, f"state {i} of {topic}")
        if kind == "joints":
            names = tuple(msg.name)
            if not joint_names:
                joint_names = names
            if set(names) != set(joint_names) or len(msg.position) != len(names):
                raise EpisodeError(f"joint state {i} of {topic} has joints {names} / {len(msg.position)} "
                                   f"positions, the first had {joint_names}")
            order = [names.index(n) for n in joint_names]
            value = np.asarray(msg.position, dtype=np.float64)[order]
        else:
            p, q = msg.pose.position, msg.pose.orientation
            value = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise EpisodeError(f"state {i} of {topic} contains NaN or Inf")
        stamps.append(_stamp_ns(msg, log_time))
        values.append(value)
    if not values:
        raise EpisodeError(f"state topic {topic} has no messages")
    stamps_arr = np.asarray(stamps, dtype=np.int64)
    bad = np.flatnonzero(np.diff(stamps_arr) < 0)
    if bad.size:
        raise EpisodeError(f"state stamps of {topic} go backwards (sample {bad[0] + 1})")
    return stamps_arr, np.stack(values), joint_names


def _neighbours(stamps: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the samples just before and just after each time in ``at`` (clamped to the ends)."""
    hi = np.clip(np.searchsorted(stamps, at, side="left"), 0, len(stamps) - 1)
    lo = np.clip(hi - 1, 0, None)
    lo = np.where(stamps[hi] <= at, hi, lo)  # exact hit or past the end: both neighbours are the same sample
    return lo, hi


def _interpolate(stamps: np.ndarray, values: np.ndarray, at: np.ndarray, quaternion: bool) -> np.ndarray:
    """Values at times ``at`` (inside [stamps[0], stamps[-1]]): linear; the last 4 columns as quaternions."""
    lo, hi = _neighbours(stamps, at)
    span = (stamps[hi] - stamps[lo]).astype(np.float64)
    w = np.where(span > 0, (at - stamps[lo]) / np.where(span > 0, span, 1.0), 0.0)[:, None]
    a, b = values[lo], values[hi].copy()
    if quaternion:  # take the shorter way round: q and -q are the same rotation
        b[np.sum(a[:, 3:] * b[:, 3:], axis=1) < 0, 3:] *= -1.0
    out = (1.0 - w) * a + w * b
    if quaternion:
        out[:, 3:] /= np.linalg.norm(out[:, 3:], axis=1, keepdims=True)
    return out


def gripper_closedness(finger_openings: np.ndarray) -> np.ndarray:
    """Gripper closedness 0 open .. 1 closed from finger openings (..., F) in m (each 0 .. the Franka hand's
    travel): `jepa_common.gripper.closedness` of the mean opening, clipped to [0, 1] (FrankaSim.gripper_state)."""
    opening = np.asarray(finger_openings, dtype=np.float64).mean(axis=-1)
    return np.clip(closedness(opening), 0.0, 1.0)


def _finger_samples(raw: _RawBag) -> tuple[str, np.ndarray, np.ndarray]:
    """The JointState topic with finger joints: its name, sample stamps (K,) and finger openings (K, F)."""
    topic = _pick_topic(raw.types, (JOINT_STATE_TYPE,), PREFERRED_STATE[JOINT_STATE_TYPE], "joint state (gripper)")
    stamps, joints, names = _state_samples(raw, topic, "joints")
    fingers = [i for i, name in enumerate(names) if FINGER_JOINT_MARK in name]
    if not fingers:
        raise EpisodeError(f"state kind {GRIPPER_KIND!r} needs finger joints (names with {FINGER_JOINT_MARK!r}) in "
                           f"{topic}; it has {list(names)}")
    return topic, stamps, joints[:, fingers]


def _bracketed(sample_stamps: np.ndarray, at: np.ndarray, gap_ns: float) -> np.ndarray:
    """Which times of ``at`` have samples at or before and at or after them, each within ``gap_ns``."""
    lo, hi = _neighbours(sample_stamps, at)
    return ((sample_stamps[lo] <= at) & (at <= sample_stamps[hi])
            & (at - sample_stamps[lo] <= gap_ns) & (sample_stamps[hi] - at <= gap_ns))


def read_episode(path: str | Path, options: ReadOptions = ReadOptions()) -> Episode:
    """Read one episode (file or rosbag2 directory) and pair every frame with the state at its stamp.

    Raises :class:`EpisodeError` (a ValueError) with the reason when the episode cannot be used.
    """
    path = Path(path)

    def wanted(topic: str, msgtype: str) -> bool:
        if options.camera_topic is not None and topic == options.camera_topic:
            return True
        if options.state_topic is not None and topic == options.state_topic:
            return True
        return msgtype in IMAGE_TYPES + (POSE_TYPE, JOINT_STATE_TYPE)

    raw = _read_raw(path, wanted)
    camera = options.camera_topic or _pick_topic(raw.types, IMAGE_TYPES, PREFERRED_CAMERA, "camera")
    if camera not in raw.types:
        raise EpisodeError(f"camera topic {camera} is not in the bag (topics: {sorted(raw.types)})")
    kind = options.state_kind
    if options.state_topic is not None:
        state_topic = options.state_topic
        if state_topic not in raw.types:
            raise EpisodeError(f"state topic {state_topic} is not in the bag (topics: {sorted(raw.types)})")
        state_type = raw.types[state_topic]
    else:
        if kind == "auto":
            kind = "ee_xyz" if POSE_TYPE in raw.types.values() else "joints"
        state_type = JOINT_STATE_TYPE if kind == "joints" else POSE_TYPE
        state_topic = _pick_topic(raw.types, (state_type,), PREFERRED_STATE[state_type], "state")
    if kind == "auto":
        kind = "joints" if state_type == JOINT_STATE_TYPE else "ee_xyz"
    expected_type = JOINT_STATE_TYPE if kind == "joints" else POSE_TYPE
    if state_type != expected_type:
        raise EpisodeError(f"state kind {kind!r} needs {expected_type} but {state_topic} is {state_type}")

    frame_stamps, frames = _decode_frames(raw, camera)
    sample_stamps, samples, joint_names = _state_samples(raw, state_topic, kind)
    # A frame is usable when state samples bracket its stamp (one at or before, one at or after), each within
    # max_state_gap; it gets the state interpolated between them. No hold or extrapolation past the samples.
    gap_ns = options.max_state_gap * 1e9
    keep = _bracketed(sample_stamps, frame_stamps, gap_ns)
    if kind == GRIPPER_KIND:  # the finger joints must bracket the frame as well
        _, finger_stamps, fingers = _finger_samples(raw)
        keep &= _bracketed(finger_stamps, frame_stamps, gap_ns)
    if not np.any(keep):
        raise EpisodeError(f"no camera frame has state samples within {options.max_state_gap} s on both sides")
    values = _interpolate(sample_stamps, samples, frame_stamps[keep], quaternion=kind != "joints")
    if kind == "joints":
        states = values
    elif kind == GRIPPER_KIND:
        pose = np.stack([pose_state(v[:3], v[3:], "ee_pose") for v in values])
        openings = _interpolate(finger_stamps, fingers, frame_stamps[keep], quaternion=False)
        states = np.concatenate([pose, gripper_closedness(openings)[:, None]], axis=1)
    else:
        states = np.stack([pose_state(v[:3], v[3:], kind) for v in values])
    if not np.all(np.isfinite(states)):
        raise EpisodeError("interpolated states contain NaN or Inf")
    names, units = GRIPPER_NAMES if kind == GRIPPER_KIND else state_names(kind, joint_names)
    if int(keep.sum()) < options.min_frames:
        raise EpisodeError(f"only {int(keep.sum())} usable frames (of {len(frames)}), fewer than "
                           f"min_frames={options.min_frames}")
    if (~keep).any():
        LOG.info("%s: %d of %d frames lack state samples within %.3f s on both sides and are dropped", path,
                 int((~keep).sum()), len(frames), options.max_state_gap)
    return Episode(source=path, stamps=frame_stamps[keep], frames=frames[keep], states=states,
                   state_names=names, state_units=units, camera_topic=camera, state_topic=state_topic,
                   recovered=raw.recovered)


def load_episodes(paths: Iterable[str | Path], options: ReadOptions = ReadOptions()
                  ) -> tuple[list[Episode], list[Skipped]]:
    """Read all episodes under ``paths``; broken ones are skipped with a warning and listed with the reason.

    All used episodes share one image size and one state layout (the first good episode's unless
    ``options.image_size`` is given).
    """
    episodes: list[Episode] = []
    skipped: list[Skipped] = []
    size = tuple(options.image_size) if options.image_size else None
    for source in find_episodes(paths):
        try:
            episode = read_episode(source, options)
            if size is not None and episode.image_size != size:
                raise EpisodeError(f"image size {episode.image_size} differs from {size} (image size mismatch)")
            if episodes and episode.state_names != episodes[0].state_names:
                raise EpisodeError(f"state names {episode.state_names} differ from {episodes[0].state_names}")
        except ValueError as exc:  # EpisodeError and bad-data errors from the decoders
            LOG.warning("skipping episode %s: %s", source, exc)
            skipped.append(Skipped(source, str(exc)))
            continue
        size = episode.image_size
        episodes.append(episode)
    LOG.log(logging.WARNING if skipped else logging.INFO, "episodes: %d used, %d skipped", len(episodes),
            len(skipped))
    return episodes, skipped


# ------------------------------------------------------------------------------------------------- clips
def frame_segments(stamps: np.ndarray, fps: float | None = None) -> list[np.ndarray]:
    """Runs of frame indices on a regular time grid.

    With ``fps`` the grid has period 1/fps from the first frame; each grid time takes the nearest frame when
    one lies within a third of a period (else the run breaks). Without ``fps`` every frame is used and runs
    break where the spacing exceeds 1.5x the median spacing (dropped frames).
    """
    stamps = np.asarray(stamps, dtype=np.int64)
    if len(stamps) < 2:
        return [np.arange(len(stamps))]
    if fps is None:
        diffs = np.diff(stamps)
        cuts = np.flatnonzero(diffs > 1.5 * np.median(diffs)) + 1
        return [s for s in np.split(np.arange(len(stamps)), cuts) if len(s)]
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    period = 1e9 / fps
    grid = stamps[0] + np.arange(int((stamps[-1] - stamps[0]) // period) + 1) * period
    index = np.clip(np.searchsorted(stamps, grid), 1, len(stamps) - 1)
    index = np.where(np.abs(stamps[index - 1] - grid) <= np.abs(stamps[index] - grid), index - 1, index)
    ok = np.abs(stamps[index] - grid) <= period / 3
    ok[1:] &= index[1:] != index[:-1]
    segments, run = [], []
    for i, good in zip(index, ok):
        if good:
            run.append(int(i))
        elif run:
            segments.append(np.asarray(run))
            run = []
    if run:
        segments.append(np.asarray(run))
    return segments


@dataclass(frozen=True)
class Clips:
    """Clips of ``length`` frames: ``episode[i]`` and frame indices ``frames[i]`` (length,) within it."""

    episode: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.episode)


def make_clips(episodes: Sequence[Episode], length: int, fps: float | None = None, stride: int = 1) -> Clips:
    """All windows of ``length`` consecutive grid frames (see :func:`frame_segments`), ``stride`` apart."""
    if length < 2:
        raise ValueError(f"clip length must be >= 2 frames, got {length}")
    owners, windows = [], []
    for e, episode in enumerate(episodes):
        for segment in frame_segments(episode.stamps, fps):
            for start in range(0, len(segment) - length + 1, stride):
                owners.append(e)
                windows.append(segment[start:start + length])
    if not windows:
        return Clips(np.zeros(0, dtype=np.int64), np.zeros((0, length), dtype=np.int64))
    return Clips(np.asarray(owners, dtype=np.int64), np.stack(windows).astype(np.int64))


def clip_arrays(episodes: Sequence[Episode], clips: Clips, index: int) -> tuple[np.ndarray, np.ndarray]:
    """States (T, S) and actions (T-1, A) of clip ``index``."""
    episode = episodes[int(clips.episode[index])]
    states = episode.states[clips.frames[index]]
    return states, state_differences(states, episode.state_names)


def space_statistics(episodes: Sequence[Episode], clips: Clips) -> tuple[ActionSpace, StateSpace]:
    """Action/state spaces with bounds (observed min/max) and normalisation (mean/std) from the clips.

    A dimension that never varies gets std 1 (nothing to scale).
    """
    if len(clips) == 0:
        raise ValueError("no clips to compute action/state statistics from")
    states, actions = [], []
    for i in range(len(clips)):
        s, a = clip_arrays(episodes, clips, i)
        states.append(s)
        actions.append(a)
    s_all, a_all = np.concatenate(states), np.concatenate(actions)
    names, units = episodes[0].state_names, episodes[0].state_units

    def space(cls, values: np.ndarray, dim_names: tuple[str, ...], dim_units: tuple[str, ...]):
        std = values.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(names=dim_names, units=dim_units, low=values.min(axis=0), high=values.max(axis=0),
                   mean=values.mean(axis=0), std=std)

    return (space(ActionSpace, a_all, *action_names(names, units)), space(StateSpace, s_all, names, units))

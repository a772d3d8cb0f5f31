"""What the perception node decides, ROS-free: its settings, which frames and states it accepts, how a frame is
paired with a state, and the frame encoder.

Time rules (all judged on message stamps against the caller's clock, in seconds):

- a JointState whose position array is neither empty nor as long as its name array is malformed
  (``state_malformed``, sensor_msgs/JointState requires equal lengths): refused before any value is read;
- a frame or state stamped more than ``max_future_stamp`` ahead of the clock is refused (``future`` /
  ``state_future``): it would look fresh forever downstream;
- a frame older than ``max_frame_age`` when its turn comes is dropped (``stale``);
- with a state source, a frame is paired with the state whose stamp is nearest to the frame's; when no state lies
  within ``max_state_gap`` of the frame (none has arrived yet, or the state stream stopped) the frame is dropped
  (``no_state``): no embedding is ever published without its paired state;
- a ``gripper`` state dim (V-JEPA 2-AC's 7-D state: the pose plus the gripper's closedness, 0 open .. 1 closed) is
  a second stream, the ``gripper_joint`` of /joint_states converted by `jepa_common.gripper.closedness` and
  clipped to [0, 1]; it is paired by the same rules, and a frame without both is dropped.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Sequence

import numpy as np

from jepa_common import topics
from jepa_common.gripper import FRANKA_FINGER_TRAVEL, closedness
from jepa_common.settings import SettingsError, setting
from jepa_world_model.data.image_encoding import CROP_MODES, DEFAULT_MAX_PIXELS, prepare_image

STATE_SOURCES = ("ee_pose", "joint_states", "none")
POSE_FIELDS = ("x", "y", "z", "qx", "qy", "qz", "qw", "roll", "pitch", "yaw")
#: the state dim of the gripper's closedness (with state_source ee_pose, from gripper_joint in /joint_states)
GRIPPER_FIELD = "gripper"
#: Most states kept for pairing; a hostile high-rate stream cannot grow the history beyond it.
MAX_STATE_HISTORY = 4096


@dataclasses.dataclass(frozen=True)
class PerceptionSettings:
    """Parameters of the perception node (the defaults are the built-in simulation's)."""

    model: str = setting("tiny", "encoder: preset name, checkpoint directory, official .pt file or Hugging Face id",
                         read_only=True)
    device: str = setting("auto", "torch device of the encoder: auto (CUDA when available, else CPU), cpu, cuda, "
                          "cuda:N", read_only=True)
    crop: str = setting("center", "center: centre-crop to the input aspect, then resize; none: resize the whole "
                        "frame", choices=CROP_MODES, read_only=True)
    image_size: int = setting(0, "encoder input size; 0 = the encoder's own crop size", unit="px", low=0,
                              high=4096, read_only=True)
    image_topic: str = setting(topics.CAMERA, "camera topic", read_only=True)
    compressed: bool = setting(False, "subscribe sensor_msgs/CompressedImage (jpeg/png) on image_topic instead of "
                               "sensor_msgs/Image", read_only=True)
    state_source: str = setting("ee_pose", "paired state: ee_pose (/ee_pose), joint_states (/joint_states) or none",
                                choices=STATE_SOURCES, read_only=True)
    state_names: tuple = setting(("x", "y", "z"), "state dims: pose fields (x y z qx qy qz qw roll pitch yaw, and "
                                 "gripper: the closedness of gripper_joint) or joint names (positions); in YAML "
                                 "quote them, a bare y is a boolean", read_only=True, item_type=str)
    gripper_joint: str = setting("", "the finger joint of /joint_states whose position gives the 'gripper' state "
                                 "dim (e.g. panda_finger_joint1); needed when state_names has gripper",
                                 read_only=True)
    gripper_open_position: float = setting(FRANKA_FINGER_TRAVEL, "gripper_joint position when fully open "
                                           "(closedness 0; Franka hand: 0.04)", unit="m", low=-10.0, high=10.0,
                                           read_only=True)
    gripper_closed_position: float = setting(0.0, "gripper_joint position when fully closed (closedness 1)",
                                             unit="m", low=-10.0, high=10.0, read_only=True)
    max_frame_age: float = setting(1.0, "frames whose stamp is older than this when their turn comes are dropped; "
                                   "0 disables", unit="s", low=0.0, high=3600.0, read_only=True)
    max_state_gap: float = setting(0.5, "a frame is paired with the state stamped nearest to it; with no state "
                                   "within this of the frame's stamp the frame is dropped (waiting for state)",
                                   unit="s", low=0.001, high=3600.0, read_only=True)
    max_future_stamp: float = setting(0.2, "frames and states stamped more than this ahead of the node's clock are "
                                      "refused and counted", unit="s", low=0.0, high=60.0, read_only=True)
    max_image_pixels: int = setting(DEFAULT_MAX_PIXELS, "larger frames are refused from their header, before any "
                                    "decoding (this bounds the memory a frame can take)", unit="px", low=1,
                                    high=1 << 31, read_only=True)
    torch_threads: int = setting(1, "torch CPU threads; 0 = torch's default (one per core). 1 suits the tiny "
                                 "models on a small machine: on 2 cores a second thread made each frame cost 4x "
                                 "the CPU time (40x with the cores busy) and no less wall time (docs/RESULTS.md, "
                                 "'Planning at the control rate')",
                                 low=0, high=256, read_only=True)

    def __post_init__(self) -> None:
        names = list(self.state_names)
        if self.state_source != "none" and (not names or "" in names):
            raise SettingsError(f"state_names={names}: name the state dims for state_source {self.state_source}")
        if self.state_source == "ee_pose":
            unknown = [n for n in names if n not in (*POSE_FIELDS, GRIPPER_FIELD)]
            if unknown:
                raise SettingsError(f"state_names: {unknown} are not pose fields {list(POSE_FIELDS)} or "
                                    f"{GRIPPER_FIELD}")
        if self.wants_gripper:
            if self.state_source != "ee_pose":
                raise SettingsError(f"state_names: {GRIPPER_FIELD} needs state_source ee_pose (with joint_states, "
                                    "name the finger joint itself)")
            if not self.gripper_joint:
                raise SettingsError(f"state_names has {GRIPPER_FIELD}: set gripper_joint to the finger joint of "
                                    f"{topics.JOINT_STATES} that measures it")
            if self.gripper_open_position == self.gripper_closed_position:
                raise SettingsError("gripper_open_position and gripper_closed_position must differ")

    @property
    def wants_gripper(self) -> bool:
        """Whether the state has the gripper's closedness (a second state stream)."""
        return GRIPPER_FIELD in self.state_names

    @property
    def pose_names(self) -> tuple[str, ...]:
        """The state dims that come from the state source (all but the gripper)."""
        return tuple(n for n in self.state_names if n != GRIPPER_FIELD)


def pose_state(position: Sequence[float], quaternion_xyzw: Sequence[float], names: Sequence[str]) -> list[float]:
    """The requested fields of a pose (position, quaternion, static-axis xyz Euler angles), in order."""
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in quaternion_xyzw)
    values = {"x": x, "y": y, "z": z, "qx": qx, "qy": qy, "qz": qz, "qw": qw}
    if any(n in ("roll", "pitch", "yaw") for n in names):
        from transforms3d.euler import quat2euler

        values["roll"], values["pitch"], values["yaw"] = quat2euler((qw, qx, qy, qz), "sxyz")
    return [float(values[n]) for n in names]


def gripper_state(names: Sequence[str], positions: Sequence[float], settings: PerceptionSettings) -> float:
    """The gripper's closedness in [0, 1] from a JointState's ``gripper_joint``; ValueError when it is missing."""
    (position,) = joint_state(names, positions, (settings.gripper_joint,))
    value = closedness(position, settings.gripper_open_position, settings.gripper_closed_position)
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else value


def joint_state(names: Sequence[str], positions: Sequence[float], wanted: Sequence[str]) -> list[float]:
    """Positions of the `wanted` joints picked by name; raises ValueError naming what is missing."""
    index = {name: i for i, name in enumerate(names)}
    missing = [n for n in wanted if n not in index or index[n] >= len(positions)]
    if missing:
        raise ValueError(f"JointState lacks positions for {missing} (names {list(names)}, "
                         f"{len(positions)} positions)")
    return [float(positions[index[n]]) for n in wanted]


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a frame or state was not used: ``kind`` (counted per kind) and a message for the log."""

    kind: str
    message: str


def malformed_joint_state(names: Sequence[str], positions: Sequence[float]) -> Refusal | None:
    """A refusal when the position array is neither empty nor as long as the name array (sensor_msgs/JointState
    requires equal lengths), else None."""
    if len(positions) and len(positions) != len(names):
        return Refusal("state_malformed", f"JointState with {len(names)} names but {len(positions)} positions "
                                          "(sensor_msgs/JointState: name and position must have the same length); "
                                          "message ignored")
    return None


@dataclasses.dataclass(frozen=True)
class PairedState:
    """The state paired with a frame: values and ``gap`` = frame stamp - state stamp (s)."""

    values: tuple[float, ...]
    gap: float


class _History:
    """One state stream's accepted (stamp, values), sorted by stamp and bounded in time and count."""

    def __init__(self, keep_s: float):
        self.keep_s = keep_s
        self.stamps: list[float] = []
        self.values: list[tuple[float, ...]] = []

    def add(self, stamp: float, values: tuple[float, ...]) -> None:
        i = bisect.bisect_right(self.stamps, stamp)
        self.stamps.insert(i, stamp)
        self.values.insert(i, values)
        keep_from = bisect.bisect_left(self.stamps, self.stamps[-1] - self.keep_s)
        keep_from = max(keep_from, len(self.stamps) - MAX_STATE_HISTORY)
        if keep_from > 0:
            del self.stamps[:keep_from], self.values[:keep_from]

    def nearest(self, stamp: float, max_gap: float, what: str) -> PairedState | Refusal:
        """The entry stamped nearest to `stamp`, or a ``no_state`` refusal when none lies within `max_gap`."""
        if not self.stamps:
            return Refusal("no_state", f"no state from {what} yet: frame dropped")
        i = bisect.bisect_left(self.stamps, stamp)
        nearest = min((j for j in (i - 1, i) if 0 <= j < len(self.stamps)), key=lambda j: abs(self.stamps[j] - stamp))
        gap = stamp - self.stamps[nearest]
        if abs(gap) > max_gap:
            return Refusal("no_state", f"nearest state from {what} is {gap:.3f} s from the frame (max_state_gap "
                                       f"{max_gap} s): frame dropped")
        return PairedState(self.values[nearest], gap)

    def silent(self, now: float, max_gap: float) -> bool:
        return not self.stamps or now - self.stamps[-1] > max_gap


class FrameGate:
    """Accepts or refuses frames and states by their stamps and pairs each frame with its state (and, with a
    ``gripper`` state dim, with its gripper closedness).

    Not thread-safe: the caller serialises calls. ``now`` is the caller's clock in seconds (ROS time).
    """

    def __init__(self, settings: PerceptionSettings):
        self.settings = settings
        keep_s = settings.max_frame_age + settings.max_state_gap
        self._state = _History(keep_s)
        self._gripper = _History(keep_s) if settings.wants_gripper else None

    @property
    def needs_state(self) -> bool:
        """Whether a state source is configured (frames are then only forwarded with a paired state)."""
        return self.settings.state_source != "none"

    def _future(self, stamp: float, now: float, what: str) -> Refusal | None:
        ahead = stamp - now
        if ahead > self.settings.max_future_stamp:
            return Refusal("future" if what == "frame" else "state_future",
                           f"{what} stamped {ahead:.3f} s in the future (max_future_stamp "
                           f"{self.settings.max_future_stamp} s) refused")
        return None

    def _add(self, history: _History, stamp: float, values: Sequence[float], now: float, what: str
             ) -> Refusal | None:
        values = tuple(float(v) for v in values)
        if not all(math.isfinite(v) for v in values) or not math.isfinite(stamp):
            return Refusal("state_nonfinite", f"{what} {list(values)} stamped {stamp} contains NaN/Inf; ignored")
        refusal = self._future(stamp, now, what)
        if refusal is None:
            history.add(stamp, values)
        return refusal

    def add_state(self, stamp: float, values: Sequence[float], now: float) -> Refusal | None:
        """Keep a state (the pose or joint dims) for pairing; a non-finite or future-stamped one is refused
        (returned), never kept."""
        return self._add(self._state, stamp, values, now, "state")

    def add_gripper(self, stamp: float, value: float, now: float) -> Refusal | None:
        """Keep a gripper closedness for pairing, by the same rules as :meth:`add_state`."""
        if self._gripper is None:
            raise ValueError(f"state_names has no {GRIPPER_FIELD}")
        return self._add(self._gripper, stamp, (value,), now, "gripper state")

    def check_frame(self, stamp: float, now: float) -> Refusal | None:
        """On arrival: a frame stamped in the future is refused."""
        if not math.isfinite(stamp):
            return Refusal("future", f"frame stamp {stamp} is not finite")
        return self._future(stamp, now, "frame")

    def pair(self, stamp: float, now: float) -> PairedState | None | Refusal:
        """When the frame's turn comes: its paired state in ``state_names`` order (None without a state source),
        or why it is dropped."""
        age = now - stamp
        if self.settings.max_frame_age > 0 and age > self.settings.max_frame_age:
            return Refusal("stale", f"frame stamped {age:.3f} s ago (max_frame_age {self.settings.max_frame_age} s) "
                                    "dropped")
        if not self.needs_state:
            return None
        gap_max = self.settings.max_state_gap
        paired = self._state.nearest(stamp, gap_max, self.settings.state_source)
        if self._gripper is None or isinstance(paired, Refusal):
            return paired
        gripper = self._gripper.nearest(stamp, gap_max, f"{self.settings.gripper_joint} ({GRIPPER_FIELD})")
        if isinstance(gripper, Refusal):
            return gripper
        pose = iter(paired.values)
        values = tuple(gripper.values[0] if n == GRIPPER_FIELD else next(pose) for n in self.settings.state_names)
        return PairedState(values, max(paired.gap, gripper.gap, key=abs))

    def waiting_for_state(self, now: float) -> bool:
        """Whether frames would be dropped for want of a state now: none yet, or the newest is too old."""
        gap_max = self.settings.max_state_gap
        return self.needs_state and (self._state.silent(now, gap_max) or
                                     (self._gripper is not None and self._gripper.silent(now, gap_max)))


class FrameEncoder:
    """The encoder on its device: RGB frame (H, W, 3) uint8 -> features (N, D) float32.

    ``device`` goes through :func:`jepa_world_model.devices.resolve_device` (``auto``, clear ConfigError).
    """

    def __init__(self, settings: PerceptionSettings):
        import torch

        from jepa_world_model.checkpoints.bundle import encoder_for
        from jepa_world_model.devices import resolve_device

        self._torch = torch
        self.device = resolve_device(settings.device)  # before the slow load: a bad device fails at once
        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)
        # a predictor checkpoint given as the model gives the encoder saved with it (or the one it references)
        self._encoder = encoder_for(settings.model, settings.model).load().to(self.device)
        self.model_id: str = self._encoder.model_id
        self.size: int = settings.image_size or self._encoder.config.crop_size
        self.crop: str = settings.crop

    def encode(self, rgb: np.ndarray) -> np.ndarray:
        """Crop/resize the frame to the encoder's input and return its features as float32 (N, D)."""
        image = prepare_image(rgb, self.size, self.crop)
        batch = self._torch.from_numpy(np.ascontiguousarray(image))[None].to(self.device)
        with self._torch.inference_mode():
            return self._encoder(batch)[0].float().cpu().numpy()

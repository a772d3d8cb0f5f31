"""`jepa record` / recorder_node: record camera, robot state and commands to rosbag2-compatible MCAP episodes.

The node subscribes (serialized, no decoding) to the camera topic with sensor-data QoS and to the state and
command topics as soon as they appear in the graph (reliable when every publisher is reliable, else best
effort), and writes one MCAP file per episode into ``output_dir`` (``episode_NNNN.mcap``, numbering continues
after existing files). ``~/next_episode`` (std_srvs/Trigger) closes the current episode and starts the next.
Chunks are flushed as they fill (``chunk_size`` bytes) or every ``flush_period`` seconds, so a crash or SIGKILL
loses at most the chunk in progress; SIGINT/SIGTERM close the file properly.

An arm reset also starts the next episode: a state sample (the first recorded PoseStamped or JointState topic)
further than ``RESET_JUMP`` from the previous one on any dim (m or rad; the sim's ``~/reset`` teleports the arm
home) closes the episode and the sample opens the next. A configured topic that has no publisher
``SILENT_AFTER`` seconds after the start is reported with a warning, and so is an episode closed empty.

``jepa record --sim`` records random-play episodes of the built-in simulation directly (no ROS graph, no robot),
see :func:`jepa_episodes.sim_recording.record_sim_episodes`.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from std_srvs.srv import Trigger

from jepa_ros.ros_util import OK, WARN, Diagnostics, declare_settings, reliable_qos, run_node, sensor_qos
from jepa_world_model.data.recorder_settings import RecorderSettings
from jepa_world_model.data.recording import EpisodeWriter, RecordingError, message_definition, next_episode_index
from jepa_episodes.sim_recording import SIM_TASKS, STEP_MIXES, SimRecordingConfig, record_sim_episodes
from jepa_common.settings import make_settings
from jepa_common.settings_cli import add_settings_options, settings_values

NODE_NAME = "recorder"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
SETTINGS = RecorderSettings
#: Seconds after the start at which configured topics without a publisher are reported.
SILENT_AFTER = 5.0
#: A state change larger than this between two samples (any dim, m or rad) is an arm reset: a new episode.
RESET_JUMP = 0.05
#: State messages (type -> their values as a vector) that arm resets are detected on.
STATE_VALUES = {
    "geometry_msgs/msg/PoseStamped": lambda m: (m.pose.position.x, m.pose.position.y, m.pose.position.z),
    "sensor_msgs/msg/JointState": lambda m: tuple(m.position),
}


def message_class(type_name: str):
    """The rclpy message class of "pkg/msg/Type"."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class RecorderNode(Node):
    """Records the configured topics into one MCAP file per episode."""

    def __init__(self, overrides: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.writer: EpisodeWriter | None = None  # destroy_node may run after a failed start
        self.settings = s = declare_settings(self, RecorderSettings, overrides)
        self.output_dir = Path(s.output_dir)
        self.camera_topic = s.camera_topic
        self.wanted = [s.camera_topic] + [t for t in s.topics if t and t != s.camera_topic]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.episode = next_episode_index(self.output_dir, s.episode_prefix)
        self.types: dict[str, str] = {}  # topic -> type, once subscribed
        self._raw_subscriptions = []
        self._reset_topic: str | None = None     # the state topic arm resets are detected on
        self._last_state: np.ndarray | None = None
        self.writer = self._open_writer()
        self.diagnostics = Diagnostics(self, NODE_NAME)
        self.create_service(Trigger, "~/next_episode", self._on_next_episode)
        self.create_timer(0.5, self._discover)
        self.create_timer(min(s.flush_period, 1.0) / 2.0, self._tick)
        self._silent_check = self.create_timer(SILENT_AFTER, self._warn_silent)
        self._discover()
        self.get_logger().info(f"recording {self.wanted} to {self.writer.path}")

    # -- files --------------------------------------------------------------------------------------------------
    def _open_writer(self) -> EpisodeWriter:
        s = self.settings
        path = self.output_dir / f"{s.episode_prefix}_{self.episode:04d}.mcap"
        writer = EpisodeWriter(path, chunk_size=s.chunk_size, flush_period=s.flush_period,
                               compression=s.compression)
        for topic, type_name in self.types.items():
            writer.add_topic(topic, type_name, "sensor_data" if type_name in IMAGE_TYPES else "reliable")
        return writer

    def close(self) -> None:
        """Finish the current episode file (summary and footer)."""
        if self.writer is not None and not self.writer.closed:
            self.writer.close()
            count = self.writer.message_count
            if count:
                self.get_logger().info(f"closed {self.writer.path} ({count} messages)")
            else:
                self.get_logger().warning(f"closed {self.writer.path} with 0 messages: nothing was published on "
                                          f"{self.wanted}")

    def next_episode(self, why: str) -> str:
        """Close the current episode and start the next; returns what was done."""
        finished = self.writer
        self.close()
        self.episode += 1
        self._last_state = None
        self.writer = self._open_writer()
        message = f"closed {finished.path} ({finished.message_count} messages, {why}); recording {self.writer.path}"
        self.get_logger().info(message)
        return message

    def _on_next_episode(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.message = self.next_episode("~/next_episode")
        response.success = True
        return response

    # -- topics -------------------------------------------------------------------------------------------------
    def _qos(self, topic: str, type_name: str) -> QoSProfile:
        if type_name in IMAGE_TYPES:
            return sensor_qos()
        publishers = self.get_publishers_info_by_topic(topic)
        reliable = publishers and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
        qos = reliable_qos(100)
        if not reliable:
            qos.reliability = ReliabilityPolicy.BEST_EFFORT
        return qos

    def _discover(self) -> None:
        graph = dict(self.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.types or topic not in graph:
                continue
            type_name = graph[topic][0]
            try:
                message_definition(type_name)
                cls = message_class(type_name)
            except (RecordingError, ImportError, AttributeError, ValueError) as exc:
                self.get_logger().warning(f"cannot record {topic} ({type_name}): {exc}", once=True)
                continue
            self.types[topic] = type_name
            if self._reset_topic is None and type_name in STATE_VALUES:
                self._reset_topic = topic
            self.writer.add_topic(topic, type_name, "sensor_data" if type_name in IMAGE_TYPES else "reliable")
            self._raw_subscriptions.append(self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), self._qos(topic, type_name), raw=True))
            self.get_logger().info(f"recording {topic} ({type_name})")

    def _on_message(self, topic: str, data: bytes) -> None:
        if topic == self._reset_topic:
            self._check_reset(topic, data)
        self.writer.write_cdr(topic, data, self.get_clock().now().nanoseconds)

    def _check_reset(self, topic: str, data: bytes) -> None:
        """Start a new episode when this state sample jumped from the previous one (an arm reset)."""
        type_name = self.types[topic]
        state = np.asarray(STATE_VALUES[type_name](deserialize_message(data, message_class(type_name))), dtype=float)
        previous, self._last_state = self._last_state, state
        if previous is None or previous.shape != state.shape or self.writer.message_count == 0:
            return
        jump = float(np.max(np.abs(state - previous))) if state.size else 0.0
        if jump > RESET_JUMP:
            self.next_episode(f"arm reset: {topic} jumped {jump:.3g}")
            self._last_state = state

    def _warn_silent(self) -> None:
        """Once, SILENT_AFTER s after the start: name the configured topics nobody publishes."""
        self._silent_check.cancel()
        silent = [t for t in self.wanted if self.count_publishers(t) == 0]
        for topic in silent:
            self.get_logger().warning(
                f"no publisher on {topic} after {SILENT_AFTER:g} s: nothing is recorded from it (check the topic "
                f"name and ROS_DOMAIN_ID; without a robot, `jepa record --sim` records the built-in simulation)")

    def _tick(self) -> None:
        self.writer.flush_if_due()
        missing = [t for t in self.wanted if t not in self.types]
        level = WARN if self.camera_topic in missing else OK
        self.diagnostics.set(level, f"episode {self.episode}: {self.writer.message_count} messages",
                             file=self.writer.path, chunks=self.writer.chunks_written, missing_topics=missing)


    def destroy_node(self) -> None:
        """Close the episode file properly (SIGINT/SIGTERM end here), then the node."""
        self.close()
        super().destroy_node()


# --------------------------------------------------------------------------------------------------- entry
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa record`: one per RecorderSettings field (``--output-dir``, alias ``--out``, ...) plus the
    ``--sim`` options."""
    add_settings_options(parser, RecorderSettings)
    parser.add_argument("--out", dest="output_dir", help="same as --output-dir")
    sim = SimRecordingConfig()
    parser.add_argument("--sim", action="store_true",
                        help="no robot, no ROS graph: record play of the built-in simulation directly (the same "
                             "topics and files as recording the sim node; off by default)")
    parser.add_argument("--task", choices=SIM_TASKS, default="reach",
                        help="--sim: 'reach' (random moves of the arm), 'push' (noisy scripted pushes of the puck, "
                             "with /object_pose; table camera), 'grasp' or 'pick_place' (the Franka and its gripper "
                             "from random starts, played by the noisy scripted grasp / pick-and-place policy; the "
                             "7-D actions dx, dy, dz, droll, dpitch, dyaw, dgripper on /jepa/plan, the cube on "
                             "/object_pose; give --steps 80 or more for a whole grasp, 160 for a pick-and-place) "
                             "(default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=20, help="--sim: number of episodes (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="--sim: actions per episode (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="--sim: random seed (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=sim.image_size,
                        help="--sim: camera image size in px; 0: 64 for reach and push, 128 for grasp and "
                             "pick_place (default: %(default)s)")
    parser.add_argument("--max-step", type=float, nargs="+", default=None, metavar="M",
                        help="--sim: largest EE displacement per step and axis in m (grasp, pick_place: of the "
                             "random steps); several values are cycled episode by episode, large moves and fine "
                             "ones (default: "
                             + "; ".join(f"{task} {' '.join(map(str, mix))}" for task, mix in STEP_MIXES.items())
                             + ")")
    parser.add_argument("--push-noise", type=float, default=sim.push_noise,
                        help="--sim --task push: std of the x-y noise added to each scripted step, m "
                             "(default: %(default)s)")
    parser.add_argument("--random-prob", type=float, default=sim.random_prob,
                        help="--sim --task push, grasp or pick_place: probability of a random step instead of the "
                             "scripted one (default: %(default)s)")


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """`jepa record` (with parsed options) or the recorder_node entry point (ROS arguments); 2: cannot start."""
    startup_errors = (ValueError, ParameterException, OSError)
    if not isinstance(args, argparse.Namespace):
        return run_node(RecorderNode, NODE_NAME, args, startup_errors=startup_errors, own_signals=True)
    try:
        settings = make_settings(RecorderSettings, settings_values(RecorderSettings, args))
    except ValueError as exc:
        print(f"jepa record: {exc}", file=sys.stderr)
        return 2
    if args.sim:
        try:
            config = SimRecordingConfig(image_size=args.image_size, chunk_size=settings.chunk_size, task=args.task,
                                        step_mix=tuple(args.max_step or STEP_MIXES.get(args.task, ())),
                                        push_noise=args.push_noise, random_prob=args.random_prob)
        except RecordingError as exc:
            print(f"jepa record: {exc}", file=sys.stderr)
            return 2
        paths = record_sim_episodes(settings.output_dir, args.episodes, args.steps, args.seed, config)
        print(f"recorded {len(paths)} {args.task} episodes to {settings.output_dir}")
        return 0
    overrides = dataclasses.asdict(settings)
    return run_node(lambda: RecorderNode(overrides), NODE_NAME, None, startup_errors=startup_errors, own_signals=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""`jepa record` / recorder_node: record camera, robot state and commands to rosbag2-compatible MCAP episodes.

The node subscribes (serialized, no decoding) to the camera topic with sensor-data QoS and to the state and
command topics as soon as they appear in the graph (reliable when every publisher is reliable, else best
effort), and writes one MCAP file per episode into ``output_dir`` (``episode_NNNN.mcap``, numbering continues
after existing files). ``~/next_episode`` (std_srvs/Trigger) closes the current episode and starts the next.
Chunks are flushed as they fill (``chunk_size`` bytes) or every ``flush_period`` seconds, so a crash or SIGKILL
loses at most the chunk in progress; SIGINT/SIGTERM close the file properly.

``jepa record --sim`` records random-play episodes of the built-in simulation directly (no DDS), see
:func:`jepa_world_model.recording.record_sim_episodes`.
"""
from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
from pathlib import Path
from typing import Sequence

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

from jepa_ros.ros_util import OK, WARN, Diagnostics, declare, reliable_qos, sensor_qos

from jepa_world_model.recording import (CAMERA_TOPIC, EE_POSE_TOPIC, JOINT_STATES_TOPIC, PLAN_TOPIC, TWIST_TOPIC, EpisodeWriter,
                        RecordingError, SimRecordingConfig, message_definition, record_sim_episodes)

NODE_NAME = "recorder"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DEFAULT_TOPICS = [EE_POSE_TOPIC, JOINT_STATES_TOPIC, TWIST_TOPIC, PLAN_TOPIC]


def message_class(type_name: str):
    """The rclpy message class of "pkg/msg/Type"."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def next_episode_index(directory: Path, prefix: str) -> int:
    """One past the highest ``<prefix>_NNNN.mcap`` index in ``directory`` (0 when there is none)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)\.mcap$")
    indices = [int(m.group(1)) for p in directory.glob("*.mcap") if (m := pattern.match(p.name))]
    return max(indices, default=-1) + 1


class RecorderNode(Node):
    """Records the configured topics into one MCAP file per episode."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.output_dir = Path(declare(self, "output_dir", "recordings", "directory of the episode files"))
        self.camera_topic = declare(self, "camera_topic", CAMERA_TOPIC, "image topic (sensor-data QoS)")
        topics = declare(self, "topics", DEFAULT_TOPICS, "state and command topics, recorded when they appear")
        self.chunk_size = declare(self, "chunk_size", 1 << 20, "MCAP chunk size in bytes", low=1024, high=1 << 30)
        self.flush_period = declare(self, "flush_period", 2.0, "write a partly filled chunk after this many s",
                                    low=0.01, high=3600.0)
        self.compression = declare(self, "compression", "zstd", "chunk compression: zstd, lz4 or none")
        self.prefix = declare(self, "episode_prefix", "episode", "episode file name prefix")
        self.wanted = [self.camera_topic] + [t for t in topics if t and t != self.camera_topic]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.episode = next_episode_index(self.output_dir, self.prefix)
        self.types: dict[str, str] = {}  # topic -> type, once subscribed
        self._raw_subscriptions = []
        self.writer = self._open_writer()
        self.diagnostics = Diagnostics(self, NODE_NAME)
        self.create_service(Trigger, "~/next_episode", self._on_next_episode)
        self.create_timer(0.5, self._discover)
        self.create_timer(min(self.flush_period, 1.0) / 2.0, self._tick)
        self._discover()
        self.get_logger().info(f"recording {self.wanted} to {self.writer.path}")

    # -- files --------------------------------------------------------------------------------------------------
    def _open_writer(self) -> EpisodeWriter:
        path = self.output_dir / f"{self.prefix}_{self.episode:04d}.mcap"
        writer = EpisodeWriter(path, chunk_size=self.chunk_size, flush_period=self.flush_period,
                               compression=self.compression)
        for topic, type_name in self.types.items():
            writer.add_topic(topic, type_name, "sensor_data" if type_name in IMAGE_TYPES else "reliable")
        return writer

    def close(self) -> None:
        """Finish the current episode file (summary and footer)."""
        if not self.writer.closed:
            self.writer.close()
            self.get_logger().info(f"closed {self.writer.path} ({self.writer.message_count} messages)")

    def _on_next_episode(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        finished = self.writer
        self.close()
        self.episode += 1
        self.writer = self._open_writer()
        response.success = True
        response.message = (f"closed {finished.path} ({finished.message_count} messages); "
                            f"recording {self.writer.path}")
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
            self.writer.add_topic(topic, type_name, "sensor_data" if type_name in IMAGE_TYPES else "reliable")
            self._raw_subscriptions.append(self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), self._qos(topic, type_name), raw=True))
            self.get_logger().info(f"recording {topic} ({type_name})")

    def _on_message(self, topic: str, data: bytes) -> None:
        self.writer.write_cdr(topic, data, self.get_clock().now().nanoseconds)

    def _tick(self) -> None:
        self.writer.flush_if_due()
        missing = [t for t in self.wanted if t not in self.types]
        level = WARN if self.camera_topic in missing else OK
        self.diagnostics.set(level, f"episode {self.episode}: {self.writer.message_count} messages",
                             file=self.writer.path, chunks=self.writer.chunks_written, missing_topics=missing)


# --------------------------------------------------------------------------------------------------- entry
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `jepa record`."""
    parser.add_argument("--out", default="recordings", help="output directory of the episode files")
    parser.add_argument("--camera-topic", default=CAMERA_TOPIC)
    parser.add_argument("--topics", nargs="*", default=DEFAULT_TOPICS, help="state and command topics")
    parser.add_argument("--chunk-size", type=int, default=1 << 20, help="MCAP chunk size in bytes")
    parser.add_argument("--flush-period", type=float, default=2.0, help="seconds before a partial chunk is written")
    parser.add_argument("--sim", action="store_true",
                        help="record random play of the built-in simulation directly (no ROS graph)")
    parser.add_argument("--episodes", type=int, default=20, help="--sim: number of episodes")
    parser.add_argument("--steps", type=int, default=30, help="--sim: actions per episode")
    parser.add_argument("--seed", type=int, default=0, help="--sim: random seed")
    parser.add_argument("--image-size", type=int, default=64, help="--sim: camera image size")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_node(ros_args: Sequence[str] | None = None, parameter_overrides: list | None = None) -> int:
    """Spin the recorder until SIGINT/SIGTERM, then close the episode file properly."""
    rclpy.init(args=ros_args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    node = None
    try:
        node = RecorderNode(parameter_overrides=parameter_overrides or [])
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except (RecordingError, ValueError, OSError) as exc:
        rclpy.logging.get_logger(NODE_NAME).error(f"cannot record: {exc}")
        return 1
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """`jepa record` (with parsed options) or the recorder_node entry point (ROS arguments from sys.argv)."""
    if not isinstance(args, argparse.Namespace):
        return run_node(args)
    if args.sim:
        config = SimRecordingConfig(image_size=args.image_size, chunk_size=args.chunk_size)
        paths = record_sim_episodes(args.out, args.episodes, args.steps, args.seed, config)
        print(f"recorded {len(paths)} episodes to {args.out}")
        return 0
    from rclpy.parameter import Parameter

    overrides = [Parameter("output_dir", value=str(args.out)), Parameter("camera_topic", value=args.camera_topic),
                 Parameter("topics", value=list(args.topics) or [""]), Parameter("chunk_size", value=args.chunk_size),
                 Parameter("flush_period", value=float(args.flush_period))]
    return run_node(None, overrides)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

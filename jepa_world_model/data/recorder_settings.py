"""Settings of the recorder node (`jepa record`): what it records, where, and how the MCAP files are chunked."""
from __future__ import annotations

import dataclasses

from jepa_common import topics
from jepa_common.settings import setting
from jepa_world_model.data.recording import COMPRESSIONS

DEFAULT_TOPICS = (topics.EE_POSE, topics.JOINT_STATES, topics.SERVO_TWIST, topics.PLAN)


@dataclasses.dataclass(frozen=True)
class RecorderSettings:
    """Parameters of the recorder node; `jepa record` builds its options from them."""

    output_dir: str = setting("recordings", "directory of the episode files (numbering continues after the files "
                              "already there)", read_only=True)
    camera_topic: str = setting(topics.CAMERA, "image topic (sensor_msgs/Image or CompressedImage, sensor-data QoS)",
                                read_only=True)
    topics: tuple = setting(DEFAULT_TOPICS, "state and command topics, recorded as soon as they appear",
                            read_only=True, item_type=str)
    chunk_size: int = setting(1 << 20, "MCAP chunk size; a crash loses at most the chunk in progress", unit="bytes",
                              low=1024, high=1 << 30, read_only=True)
    flush_period: float = setting(2.0, "a partly filled chunk is written after this long", unit="s", low=0.01,
                                  high=3600.0, read_only=True)
    compression: str = setting("zstd", "chunk compression", choices=tuple(COMPRESSIONS), read_only=True)
    episode_prefix: str = setting("episode", "episode file name prefix (<prefix>_NNNN.mcap)", read_only=True)

"""Recording format, dataset reading (ours, rosbags-written bags, truncated files), validation, clips, cache."""
import json
import logging
import os

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from transforms3d.euler import euler2mat

from jepa_ros.cli import main as jepa_main
from jepa_world_model import load_encoder
from jepa_world_model.actions import state_differences
from jepa_world_model.data.dataset import ReadOptions, frame_segments, load_episodes, make_clips, read_episode
from jepa_world_model.data.feature_cache import FeatureCache
from jepa_world_model.data.recording import IMAGE_TYPE, POSE_TYPE, EpisodeWriter, make_message, message_definition, write_episode_arrays
from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
from test.support.training import FAST_TRAIN_ARGS, jepa_in_process, sim_recording

pytestmark = pytest.mark.slow

T0 = 1_700_000_000 * 10**9


def _frames(n, size=32, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _positions(n):
    return np.stack([0.3 + 0.01 * np.arange(n), np.zeros(n), 0.1 + 0.005 * np.arange(n)], axis=1)


def _stamps(n):
    return [T0 + k * 100_000_000 for k in range(n)]


def test_recording_is_rosbag2_style_mcap(tmp_path):
    path = write_episode_arrays(tmp_path / "ep.mcap", _frames(3), _positions(3), _stamps(3))
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert {s.encoding for s in schemas.values()} == {"ros2msg"}
        image_def = schemas["sensor_msgs/msg/Image"].data.decode()
        # complete definition, dependencies expanded as rosbag2 does
        assert "\n" + "=" * 80 + "\nMSG: std_msgs/Header\n" in image_def
        assert "MSG: builtin_interfaces/Time\n" in image_def
        assert image_def.startswith(message_definition("sensor_msgs/msg/Image").split("\n")[0])
        assert all(c.message_encoding == "cdr" and "offered_qos_profiles" in c.metadata
                   for c in summary.channels.values())
        decoded = [(ch.topic, msg) for _, ch, _, msg in reader.iter_decoded_messages()]
        records = {m.name: m.metadata for m in reader.iter_metadata()}
    bag = yaml.safe_load(records["rosbag2"]["serialized_metadata"])  # what rosbag2's MCAP plugin reads
    assert bag["version"] == 8 and bag["message_count"] == 6 and bag["duration"]["nanoseconds"] == 200_000_000
    assert {t["topic_metadata"]["name"]: t["message_count"] for t in bag["topics_with_message_count"]} == {
        "/camera/image_raw": 3, "/ee_pose": 3}
    assert [t for t, _ in decoded].count("/camera/image_raw") == 3
    pose = [m for t, m in decoded if t == "/ee_pose"][1]
    assert pose.pose.position.x == pytest.approx(0.31) and pose.header.stamp.nanosec == 100_000_000


def test_bag_from_the_rosbags_writer_trains_like_our_recording(tmp_path_factory, tmp_path):
    ours = sim_recording(tmp_path_factory, "small", episodes=4, steps=12, seed=3)
    store = get_typestore(Stores.ROS2_KILTED)  # the other writer serialises with its own type definitions
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for i, source in enumerate(sorted(ours.glob("*.mcap"))):
        plugin = StoragePlugin.SQLITE3 if i % 2 == 0 else StoragePlugin.MCAP  # both rosbag2 storage formats
        with AnyReader([source]) as reader, Writer(foreign / source.stem, version=9, storage_plugin=plugin) as writer:
            connections = {c.topic: writer.add_connection(c.topic, c.msgtype, typestore=store)
                           for c in reader.connections}
            for connection, timestamp, data in reader.messages():
                message = reader.deserialize(data, connection.msgtype)
                writer.write(connections[connection.topic], timestamp,
                             store.serialize_cdr(message, connection.msgtype))
    assert (foreign / "episode_0000" / "metadata.yaml").is_file()
    assert list((foreign / "episode_0000").glob("*.db3")) and list((foreign / "episode_0001").glob("*.mcap"))

    mine, skipped_mine = load_episodes([ours])
    theirs, skipped_theirs = load_episodes([foreign])
    assert not skipped_mine and not skipped_theirs and len(mine) == len(theirs) == 4
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.stamps, b.stamps)
        np.testing.assert_array_equal(a.states, b.states)
    encoder = load_encoder("tiny", output_layer_norm=True, crop_size=32)
    cache = FeatureCache(tmp_path / "cache")
    np.testing.assert_array_equal(cache.features(encoder, mine[0]), cache.features(encoder, theirs[0]))
    assert cache.misses == 2  # different sources are different cache entries

    curves = []
    for data, out in ((ours, tmp_path / "m1"), (foreign, tmp_path / "m2")):
        jepa_in_process("train", str(data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                        "--steps", "6", "--batch-size", "4", "--lr", "3e-3", *FAST_TRAIN_ARGS)
        curves.append([json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()])
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-6)


def test_broken_episodes_are_skipped_with_a_reason(tmp_path, caplog):
    data = tmp_path / "data"
    write_episode_arrays(data / "a_good.mcap", _frames(6), _positions(6), _stamps(6))
    nan = _positions(6)
    nan[3, 1] = np.nan
    write_episode_arrays(data / "b_nan.mcap", _frames(6), nan, _stamps(6))
    with EpisodeWriter(data / "c_order.mcap") as writer:  # header stamps 2 and 3 swapped, arrival in order
        writer.add_topic("/camera/image_raw", IMAGE_TYPE, "sensor_data")
        writer.add_topic("/ee_pose", POSE_TYPE)
        for k, (stamp, rgb, position) in enumerate(zip(_stamps(6), _frames(6), _positions(6))):
            header = _stamps(6)[{2: 3, 3: 2}.get(k, k)]
            writer.write("/camera/image_raw", make_message(IMAGE_TYPE, header, rgb=rgb), stamp)
            writer.write("/ee_pose", make_message(POSE_TYPE, stamp, position=position), stamp)
    mixed = _frames(6)
    mixed[4] = np.zeros((24, 32, 3), dtype=np.uint8)
    write_episode_arrays(data / "d_mixed.mcap", mixed, _positions(6), _stamps(6))
    write_episode_arrays(data / "e_size.mcap", _frames(6, size=48), _positions(6), _stamps(6))
    write_episode_arrays(data / "f_short.mcap", _frames(1), _positions(1), _stamps(1))
    (data / "g_garbage.mcap").write_bytes(b"this is not a bag" * 10)
    with EpisodeWriter(data / "h_far.mcap") as writer:  # every state sample 5 s away from every frame
        writer.add_topic("/camera/image_raw", IMAGE_TYPE, "sensor_data")
        writer.add_topic("/ee_pose", POSE_TYPE)
        for stamp, rgb, position in zip(_stamps(6), _frames(6), _positions(6)):
            writer.write("/camera/image_raw", make_message(IMAGE_TYPE, stamp, rgb=rgb), stamp)
            writer.write("/ee_pose", make_message(POSE_TYPE, stamp + 5 * 10**9, position=position), stamp)

    with caplog.at_level(logging.WARNING, logger="jepa_world_model.data.dataset"):
        episodes, skipped = load_episodes([data])
    reasons = {s.source.name: s.reason for s in skipped}
    assert [e.source.name for e in episodes] == ["a_good.mcap"]
    assert "NaN" in reasons["b_nan.mcap"]
    assert "not strictly increasing" in reasons["c_order.mcap"]
    assert "image size mismatch" in reasons["d_mixed.mcap"]
    assert "image size mismatch" in reasons["e_size.mcap"]
    assert "fewer than min_frames" in reasons["f_short.mcap"]
    assert "not an MCAP file" in reasons["g_garbage.mcap"]
    assert "no camera frame has state samples within" in reasons["h_far.mcap"]
    assert sum("skipping episode" in r.message for r in caplog.records) == len(skipped) == 7

    split = tmp_path / "split"
    write_episode_arrays(split / "only.mcap", _frames(4), _positions(4), _stamps(4))
    with pytest.raises(ValueError, match="camera topic /nope"):
        read_episode(split / "only.mcap", ReadOptions(camera_topic="/nope"))
    with pytest.raises(ValueError, match="no state topic"):
        read_episode(split / "only.mcap", ReadOptions(state_kind="joints"))


def test_truncated_recording_is_read_up_to_its_last_complete_chunk(tmp_path, caplog):
    config = SimRecordingConfig(chunk_size=20_000)  # ~1.5 frames of 64x64 rgb8 per chunk
    path = record_sim_episodes(tmp_path / "full", episodes=1, steps=15, seed=5, config=config)[0]
    full = read_episode(path)
    blob = path.read_bytes()
    previous = 0
    for fraction in (0.25, 0.5, 0.75):
        cut = tmp_path / f"cut_{fraction}.mcap"
        cut.write_bytes(blob[:int(len(blob) * fraction)])
        with caplog.at_level(logging.WARNING):
            part = read_episode(cut)
        assert part.recovered and previous < len(part) < len(full)
        np.testing.assert_array_equal(part.frames, full.frames[:len(part)])
        np.testing.assert_array_equal(part.states, full.states[:len(part)])
        previous = len(part)
    no_footer = tmp_path / "no_footer.mcap"
    no_footer.write_bytes(blob[:-40])  # every chunk intact, footer gone
    assert len(read_episode(no_footer)) == len(full)
    assert any("without footer" in r.message for r in caplog.records)


@pytest.mark.unit
def test_clips_follow_the_time_grid():
    stamps = np.array([0, 100, 200, 300, 400, 900, 1000, 1100, 1200], dtype=np.int64) * 1_000_000
    assert [s.tolist() for s in frame_segments(stamps)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]
    assert [s.tolist() for s in frame_segments(stamps, fps=5.0)] == [[0, 2, 4], [6, 8]]


@pytest.mark.unit
def test_actions_are_state_differences_with_relative_rotation():
    names = ("x", "y", "z", "roll", "pitch", "yaw")
    states = np.array([[0.1, 0.2, 0.3, 0.1, -0.2, 0.3], [0.15, 0.1, 0.3, 0.4, 0.1, -0.5]])
    action = state_differences(states, names)[0]
    np.testing.assert_allclose(action[:3], [0.05, -0.1, 0.0], atol=1e-12)
    r0, r1 = euler2mat(*states[0, 3:], axes="sxyz"), euler2mat(*states[1, 3:], axes="sxyz")
    np.testing.assert_allclose(euler2mat(*action[3:], axes="sxyz") @ r0, r1, atol=1e-12)


def test_feature_cache_is_keyed_by_encoder_and_source(tmp_path):
    path = write_episode_arrays(tmp_path / "ep.mcap", _frames(4), _positions(4), _stamps(4))
    episode = read_episode(path)
    cache = FeatureCache(tmp_path / "cache")
    encoder = load_encoder("tiny", output_layer_norm=True, crop_size=32)
    first = cache.features(encoder, episode)
    again = cache.features(encoder, episode)
    assert (cache.hits, cache.misses) == (1, 1) and isinstance(again, np.memmap)
    np.testing.assert_array_equal(first, again)
    cache.features(load_encoder("tiny", output_layer_norm=True, crop_size=32, seed=1), episode)
    assert cache.misses == 2  # other weights, other entry
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    cache.features(encoder, read_episode(path))
    assert cache.misses == 3  # the recording changed


def test_make_clips_and_record_cli(tmp_path):
    jepa_in_process("record", "--sim", "--out", str(tmp_path / "rec"), "--episodes", "1", "--steps", "4")
    episodes, _ = load_episodes([tmp_path / "rec"])
    clips = make_clips(episodes, 3)
    assert len(episodes[0]) == 5 and len(clips) == 3
    assert clips.frames.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]


def test_record_sim_cycles_the_step_sizes_of_the_default_mix(tmp_path, capsys):
    jepa_in_process("record", "--sim", "--out", str(tmp_path / "mix"), "--episodes", "4", "--steps", "3")
    episodes, _ = load_episodes([tmp_path / "mix"])
    largest = [float(np.abs(np.diff(e.states, axis=0)).max()) for e in episodes]
    assert largest[0] > 0.01 and largest[1] > 0.01  # 4 cm per axis at most
    assert 0.002 < largest[2] < 0.017 and largest[3] < 0.006, largest  # 1.5 cm, then 0.5 cm
    assert jepa_main(["record", "--sim", "--out", str(tmp_path / "bad"), "--max-step", "0.01", "-0.02"]) == 2
    assert "step_mix must hold positive step sizes" in capsys.readouterr().err


def test_record_sim_push_records_scripted_pushes_with_the_puck_pose(tmp_path, capsys):
    jepa_in_process("record", "--sim", "--task", "push", "--out", str(tmp_path / "push"), "--episodes", "3",
                    "--steps", "6", "--seed", "2")
    assert "recorded 3 push episodes" in capsys.readouterr().out
    paths = sorted((tmp_path / "push").glob("episode_*.mcap"))
    with open(paths[0], "rb") as f:
        summary = make_reader(f).get_summary()
    topics = {c.id: c.topic for c in summary.channels.values()}
    counts = {topics[k]: v for k, v in summary.statistics.channel_message_counts.items()}
    assert counts["/object_pose"] == counts["/camera/image_raw"] == 7
    episodes, _ = load_episodes([tmp_path / "push"])
    largest = [float(np.abs(np.diff(e.states[:, :2], axis=0)).max()) for e in episodes]
    assert max(largest[:2]) > 0.011 and largest[2] <= 0.01 + 2e-3, largest  # the 2 cm, 2 cm, 1 cm mix
    assert jepa_main(["record", "--sim", "--task", "push", "--out", str(tmp_path / "bad"),
                      "--random-prob", "1.5"]) == 2
    assert "random_prob in [0, 1]" in capsys.readouterr().err

"""Shared helpers of the training tests (no tests here): sim recordings made once per pytest session."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from mcap.reader import make_reader

from jepa_episodes.sim_recording import record_sim_episodes
from jepa_ros.cli import main as jepa_main
from jepa_world_model.data.recording import EpisodeWriter

REPO = Path(__file__).resolve().parents[2]
# Small, fast settings shared by the training tests: the tiny encoder at a 32 px crop (4x4 = 16 tokens).
FAST_TRAIN_ARGS = ["--encoder", "tiny", "--predictor", "tiny", "--encoder-override", "crop_size=32",
                   "--no-progress"]
# Small, fast `jepa pretrain` settings: the tiny encoder at a 32 px crop with 4 px patches (an 8x8 grid, 2 tubelets
# per 4-frame clip: 128 tokens), batches of 8 on the CPU.
FAST_PRETRAIN_ARGS = ["--encoder", "tiny", "--encoder-override", "crop_size=32", "--encoder-override", "patch_size=4",
                      "--batch-size", "8", "--lr", "2e-3", "--no-progress", "--device", "cpu"]


def sim_recording(tmp_path_factory, name: str, episodes: int, steps: int, seed: int) -> Path:
    """Directory of ``episodes`` random-play sim episodes, recorded once per session and reused."""
    out = tmp_path_factory.getbasetemp() / f"sim_{name}"
    if not (out / "done").is_file():
        record_sim_episodes(out, episodes, steps, seed)
        (out / "done").write_text("ok\n")
    return out


def single_thread_env() -> dict:
    """Environment for child processes: one compute thread each (2 shared cores), repository importable."""
    env = os.environ.copy()
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


def jepa(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `jepa` CLI in a child process; raise with its output when it fails."""
    result = subprocess.run([sys.executable, "-m", "jepa_ros.cli", *args], cwd=REPO, env=single_thread_env(),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"jepa {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def jepa_in_process(*args: str) -> None:
    """Run the `jepa` CLI in this process with one compute thread (like the child processes); assert success."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert jepa_main(list(args)) == 0, f"jepa {' '.join(args)} failed"
    finally:
        torch.set_num_threads(threads)


def rewrite_recording(source: Path, dest: Path, drop: tuple[str, ...] = (), copies: dict | None = None) -> Path:
    """Copy an MCAP recording message by message, leaving out the ``drop`` topics and writing each message of
    topic ``copies[new]`` under ``new`` as well (same type)."""
    copies = copies or {}
    with open(source, "rb") as stream, EpisodeWriter(dest) as writer:
        for schema, channel, message in make_reader(stream).iter_messages(log_time_order=True):
            for topic in [channel.topic] + [new for new, old in copies.items() if old == channel.topic]:
                if topic in drop:
                    continue
                writer.add_topic(topic, schema.name, "sensor_data" if "image" in schema.name.lower() else "reliable")
                writer.write_cdr(topic, message.data, message.log_time)
    return dest

"""Shared helpers of the training tests (no tests here): sim recordings made once per pytest session."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from jepa_ros.cli import main as jepa_main
from jepa_episodes.sim_recording import record_sim_episodes

REPO = Path(__file__).resolve().parents[2]
# Small, fast settings shared by the training tests: the tiny encoder at a 32 px crop (4x4 = 16 tokens).
FAST_TRAIN_ARGS = ["--encoder", "tiny", "--predictor", "tiny", "--encoder-override", "crop_size=32",
                   "--no-progress"]


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

"""torchrun with 2 CPU ranks (gloo on loopback) follows the loss curve of 1 rank with the same global batch."""
import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from test.support.training import FAST_TRAIN_ARGS, REPO, jepa_in_process, sim_recording, single_thread_env

pytestmark = pytest.mark.slow


def _losses(out):
    return np.array([json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()])


def test_two_ranks_match_one_rank(tmp_path_factory, tmp_path):
    data = sim_recording(tmp_path_factory, "small", episodes=4, steps=12, seed=3)
    cache = tmp_path / "cache"
    common = [str(data), "--cache-dir", str(cache), "--steps", "8", "--batch-size", "8", "--lr", "3e-3",
              "--checkpoint-every", "4", *FAST_TRAIN_ARGS]
    jepa_in_process("train", *common, "--out", str(tmp_path / "one"))

    env = single_thread_env()
    env["GLOO_SOCKET_IFNAME"] = "lo"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "jepa_ros.cli", "train", *common, "--out", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 8
    assert one[-1] < 0.8 * one[0]  # it is learning, so equal curves mean something
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6)
    w_one = load_file(str(tmp_path / "one" / "model.safetensors"))
    w_two = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert w_one.keys() == w_two.keys()
    for key in w_one:
        np.testing.assert_allclose(w_two[key].numpy(), w_one[key].numpy(), rtol=1e-3, atol=1e-5, err_msg=key)

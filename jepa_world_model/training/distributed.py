"""Where a training run computes: the torch device and, under ``torchrun``, the process group and this rank's
share of every global batch.

Rules: one rank alone needs no process group (world size 1 without torchrun); gloo on CPU, nccl on GPU; the global
batch must split evenly across the ranks, each taking a contiguous share.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from jepa_world_model.devices import training_device
from jepa_world_model.errors import WorldModelError
from jepa_world_model.training.errors import TrainingError

LOG = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Dist:
    """Process group facts (world size 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0, the rank that writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op alone)."""
        if self.world > 1:
            dist.barrier()


@dataclass(frozen=True)
class Session:
    """The device and ranks of a run, and the slice of each global batch this rank computes."""

    device: torch.device
    ranks: Dist
    mine: slice


def setup_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str) -> torch.device:
    """The training device (``auto``: cuda:LOCAL_RANK when CUDA is available, else cpu); TrainingError if absent."""
    try:
        return training_device(name)
    except WorldModelError as exc:
        raise TrainingError(str(exc)) from exc


def start_session(device_name: str, batch_size: int, error: type[TrainingError]) -> Session:
    """Pick the device, join the process group and check that ``batch_size`` splits across the ranks (``error``
    otherwise)."""
    device = pick_device(device_name)
    ranks = setup_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if batch_size % ranks.world:
        raise error(f"batch_size {batch_size} is not divisible by the {ranks.world} ranks")
    share = batch_size // ranks.world
    return Session(device, ranks, slice(ranks.rank * share, (ranks.rank + 1) * share))


def run_command(run: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T | None:
    """A training command's run (`jepa train`, `pretrain`, `train-decoder`): INFO logging, then ``run()``; one of
    ``errors`` is logged as one line and gives None; the process group is closed in any case."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run()
    except errors as exc:
        LOG.error("%s", exc)
        return None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 of a torchrun launch, and without torchrun."""
    return int(os.environ.get("RANK", "0")) == 0

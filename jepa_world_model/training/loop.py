"""The training loop shared by the recipes (`jepa train`, `jepa pretrain`): resume, the optimizer steps with their
logging and progress bar, periodic checkpoints and the end of the run.

A recipe (:class:`Recipe`) supplies its trained module and optimizer, its batch source (:meth:`Recipe.batch`), its
loss (:meth:`Recipe.loss`) and what its checkpoints hold; :func:`run_loop` does everything else the same way for
both. Per step: learning rate -> batch -> loss (bf16 autocast on CUDA) -> backward -> gradient clipping ->
optimizer step -> the recipe's update after it -> losses averaged over the ranks -> one metrics row (rank 0) ->
non-finite loss stops the run -> the recipe's check -> a periodic checkpoint every ``checkpoint_every`` steps.

Rules: rank 0 alone writes files; every rank runs the same collective calls in the same order; nothing here draws
random numbers (a recipe's randomness is a function of (seed, step)), so a resumed run continues exactly.
"""
from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from jepa_world_model.training.distributed import Session
from jepa_world_model.training.errors import TrainingError
from jepa_world_model.training.metrics import CURVE_FILE, METRICS_FILE, MetricsLog, read_metrics
from jepa_world_model.training.step_checkpoints import (CHECKPOINTS, STATE_FILE, latest_checkpoint, read_state,
                                                        write_step_checkpoint)

LOG = logging.getLogger(__name__)


class LoopOptions(Protocol):
    """The options of a recipe's config that the loop reads (a dataclass: it is stored in checkpoints)."""

    out: str
    batch_size: int
    clip_grad: float
    checkpoint_every: int
    keep_checkpoints: int
    progress: bool


@dataclass
class StepLoss:
    """What a recipe's loss gives the loop for one step."""

    loss: torch.Tensor                   # back-propagated
    logged: torch.Tensor                 # 1-D, averaged over the ranks and named by `Recipe.loss_values`
    targets: torch.Tensor | None = None  # the step's target features, for recipes that watch them


class Recipe(ABC):
    """One training recipe on the shared loop.

    Subclasses set the class attributes and, in ``__init__``, call ``super().__init__`` with their options, the
    module the loss runs through (DDP wraps it; its parameters are clipped), the optimizer and the number of clips
    in one epoch.
    """

    #: The command's name: progress-bar label and "not written by `jepa <command>`".
    command: ClassVar[str]
    #: The error the recipe raises (options changed on resume, non-finite loss, ...).
    error: ClassVar[type[TrainingError]]
    #: Options that change what a run computes; a resume must match them.
    resume_keys: ClassVar[tuple[str, ...]]
    #: Entries its ``training_state.pt`` must hold to be one of this recipe's checkpoints.
    state_keys: ClassVar[tuple[str, ...]]
    #: Progress-bar fields: label -> (metrics key, format).
    progress_fields: ClassVar[dict[str, tuple[str, str]]] = {"loss": ("loss", ".4f")}
    #: DDP's find_unused_parameters (parameters that may get no gradient in a step).
    find_unused_parameters: bool = False

    def __init__(self, cfg: LoopOptions, module: nn.Module, optimizer: torch.optim.Optimizer,
                 epoch_size: int) -> None:
        self.cfg = cfg
        self.module = module
        self.optimizer = optimizer
        self.epoch_size = epoch_size

    @abstractmethod
    def learning_rate(self, step: int, total: int) -> float:
        """The learning rate of step ``step`` (0-based) of ``total``."""

    @abstractmethod
    def batch(self, step: int) -> Any:
        """This rank's share of global batch ``step``, on the device (computed outside autocast)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> StepLoss:
        """The loss of ``batch`` through ``model`` (the module, DDP-wrapped when there are several ranks)."""

    @abstractmethod
    def loss_values(self, logged: torch.Tensor) -> dict[str, float]:
        """The metrics row's losses ("loss" first) from the rank-averaged ``StepLoss.logged``."""

    def after_update(self, step: int, total: int) -> dict[str, float]:
        """Work after the optimizer step (e.g. a moving-average update); returns values for the metrics row."""
        return {}

    def observe(self, result: StepLoss) -> dict[str, float]:
        """Numbers watched during training, for the metrics row (may use collective calls)."""
        return {}

    def check(self, step: int, row: dict) -> None:
        """Stop the run (raise) when ``row`` of step ``step`` (1-based) shows it went wrong."""

    @abstractmethod
    def save_models(self, directory: Path, step: int) -> None:
        """Write the models of a periodic checkpoint at ``step`` into ``directory`` (our checkpoint format)."""

    @abstractmethod
    def state(self, step: int, total: int) -> dict:
        """Entries of ``training_state.pt`` besides step, config and optimizer."""

    @abstractmethod
    def load_state(self, checkpoint: Path, state: dict) -> None:
        """Load the models (and any other state but the optimizer's) of a periodic checkpoint."""

    @abstractmethod
    def finish(self, total: int, final_loss: float) -> None:
        """Write the final checkpoint into ``out`` (rank 0)."""

    @abstractmethod
    def plot(self, rows: list[dict], path: Path) -> None:
        """The loss curves of the metrics ``rows`` as a PNG."""


def save_step(recipe: Recipe, step: int, total: int) -> Path:
    """The periodic checkpoint ``checkpoints/step_NNNNNNN``: the recipe's models and the training state."""
    def fill(tmp: Path) -> None:
        recipe.save_models(tmp, step)
        torch.save({"step": step, "config": asdict(recipe.cfg), "optimizer": recipe.optimizer.state_dict(),
                    **recipe.state(step, total)}, tmp / STATE_FILE)

    return write_step_checkpoint(Path(recipe.cfg.out) / CHECKPOINTS, step, recipe.cfg.keep_checkpoints, fill)


def restore(recipe: Recipe, checkpoint: Path) -> int:
    """Load a periodic checkpoint into the recipe and its optimizer; returns the step to continue from."""
    state = read_state(checkpoint)
    if any(key not in state for key in recipe.state_keys):
        raise recipe.error(f"cannot resume from {checkpoint}: it was not written by `jepa {recipe.command}`")
    now = asdict(recipe.cfg)
    # an option newer than the checkpoint ran at its default there
    was = {f.name: f.default for f in fields(recipe.cfg) if f.default is not MISSING} | state["config"]
    changed = {k: (was.get(k), now.get(k)) for k in recipe.resume_keys if was.get(k) != now.get(k)}
    if changed:
        raise recipe.error(f"cannot resume from {checkpoint}: options changed (was, now): {changed}")
    recipe.load_state(checkpoint, state)
    recipe.optimizer.load_state_dict(state["optimizer"])
    LOG.info("resuming from %s at step %d", checkpoint, state["step"])
    return int(state["step"])


def run_loop(recipe: Recipe, session: Session, total: int, resume: bool) -> list[float]:
    """Run (or, with ``resume``, continue from the last periodic checkpoint) ``total`` steps of ``recipe``, then
    write the final checkpoint, the last training state and the loss curve. Returns the loss of every step (rank 0:
    from step 1; other ranks: from this run's first step)."""
    cfg, ranks, device = recipe.cfg, session.ranks, session.device
    out = Path(cfg.out)
    checkpoint = latest_checkpoint(out) if resume else None
    start = restore(recipe, checkpoint) if checkpoint is not None else 0
    if resume and checkpoint is None:
        LOG.info("no checkpoint in %s; starting from scratch", out / CHECKPOINTS)
    model = recipe.module
    if ranks.world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=recipe.find_unused_parameters)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    metrics = MetricsLog(out, start, ranks.main)
    losses = [r["loss"] for r in metrics.rows]
    bar = tqdm(total=total, initial=start, disable=not (ranks.main and cfg.progress), desc=recipe.command,
               unit="step")
    t0 = time.monotonic()
    try:
        for step in range(start, total):
            lr = recipe.learning_rate(step, total)
            for group in recipe.optimizer.param_groups:
                group["lr"] = lr
            batch = recipe.batch(step)
            with autocast:
                result = recipe.loss(model, batch)
            recipe.optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(recipe.module.parameters(), cfg.clip_grad)
            recipe.optimizer.step()
            updated = recipe.after_update(step, total)
            logged = result.logged
            if ranks.world > 1:
                dist.all_reduce(logged)
                logged /= ranks.world
            row = {"step": step + 1, **recipe.loss_values(logged), "lr": lr, **updated,
                   "grad_norm": float(grad_norm), **recipe.observe(result),
                   "epoch": (step + 1) * cfg.batch_size / recipe.epoch_size, "time_s": time.monotonic() - t0}
            losses.append(row["loss"])
            if ranks.main:
                metrics.write(row)
                bar.update(1)
                bar.set_postfix({label: f"{row[key]:{spec}}" for label, (key, spec) in recipe.progress_fields.items()})
            if not math.isfinite(row["loss"]):
                raise recipe.error(f"loss became {row['loss']} at step {step + 1}; lower --lr")
            recipe.check(step + 1, row)
            if ranks.main and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
                save_step(recipe, step + 1, total)
    finally:
        bar.close()
        metrics.close()
    if ranks.main:
        recipe.finish(total, losses[-1] if losses else float("nan"))
        save_step(recipe, total, total)
        recipe.plot(read_metrics(out / METRICS_FILE, total), out / CURVE_FILE)
    ranks.barrier()
    return losses

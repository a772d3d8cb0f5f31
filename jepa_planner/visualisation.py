"""What the planner shows of a plan (ROS-free): the picture strip of its decoded predicted frames, the planned
end-effector path, and the latest-only worker that makes both off the planning thread.

Rules:
- The strip is one row of equal panels, left to right: the current frame, the plan's predicted frames in order,
  the goal; its size is (panel height, (frames + 2) x panel width, 3) uint8, a panel being the decoder's picture.
  A goal image as received is brought to the panel size the way the encoder sees it (`crop`); the current frame
  and a goal given as features are decoded (the planner never gets the camera image).
- The path is the current state followed by one state per planned action, integrated with the predictor's own
  state update (`jepa_world_model.networks.state_update.next_state`), each action applied `hold_steps` times
  (the planner's `lookahead_steps`: what CEM scored), so it ends where the plan's predicted state ends.
- Positions are the state dims named x, y, z (a state without them has no path); orientations are its [roll,
  pitch, yaw] dims (extrinsic x-y-z Euler) as quaternions, the identity when the state has no rotation.
- The worker keeps only the newest item (a new one replaces an unprocessed one) and handles at most one item per
  period; nothing runs until the first item is offered.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np
import torch
from transforms3d.euler import euler2quat

from jepa_world_model.config import rotation_slice
from jepa_world_model.data.image_encoding import prepare_image
from jepa_world_model.networks.state_update import next_state

#: The state dims that give the end-effector position, in order.
POSITION_NAMES = ("x", "y", "z")
#: What `decoder` = this means: no pictures.
NO_DECODER = "none"

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------- the strip
def strip(current: np.ndarray, predicted: np.ndarray, goal: np.ndarray, crop: str = "center") -> np.ndarray:
    """Panels [current, predicted..., goal] side by side: current (H, W, 3), predicted (F, H, W, 3) uint8, goal
    (h, w, 3) uint8 of any size (brought to H x W with `crop`) -> (H, (F + 2) W, 3) uint8."""
    current, predicted = np.asarray(current), np.asarray(predicted)
    if current.ndim != 3 or current.shape[2] != 3 or current.dtype != np.uint8:
        raise ValueError(f"current frame must be (H, W, 3) uint8, got {current.shape} {current.dtype}")
    if predicted.ndim != 4 or predicted.shape[1:] != current.shape or predicted.dtype != np.uint8:
        raise ValueError(f"predicted frames must be (F, {', '.join(map(str, current.shape))}) uint8, got "
                         f"{predicted.shape} {predicted.dtype}")
    panel = prepare_image(np.asarray(goal, dtype=np.uint8), current.shape[:2], crop)
    return np.concatenate([current, *predicted, panel], axis=1)


def render_strip(decoder: Any, current: np.ndarray | torch.Tensor, predictions: torch.Tensor,
                 goal_features: torch.Tensor, goal_image: np.ndarray | None, crop: str = "center") -> np.ndarray:
    """The strip of a plan: `decoder.decode_images` turns the current features (N, D), the predictions (F, N, D)
    and, without a goal image, the goal features (N, D) into panels in one batch."""
    device = predictions.device
    batch = [torch.as_tensor(current)[None], predictions] + ([goal_features[None]] if goal_image is None else [])
    pictures = decoder.decode_images(torch.cat([part.to(device, torch.float32) for part in batch]))
    frames = len(predictions)
    goal = pictures[-1] if goal_image is None else goal_image
    return strip(pictures[0], pictures[1:frames + 1], goal, crop)


def load_decoder(choice: str, predictor: str, encoder: Any) -> tuple[Any | None, str]:
    """(decoder, "") for the planner's `decoder` setting ("" = the predictor's own) that reads `encoder`'s
    features, else (None, why there is none). `choice` "none" turns pictures off: (None, ""); a decoder that cannot
    be found, read or used with `encoder` is reported, not raised."""
    if choice.strip().lower() == NO_DECODER:
        return None, ""
    from jepa_world_model.checkpoints.decoder_loading import check_decoder, find_decoder
    from jepa_world_model.errors import WorldModelError

    source = choice or predictor
    try:
        decoder = find_decoder(source)
        if decoder is None:
            return None, f"no decoder found for {source!r}"
        check_decoder(decoder, encoder)
    except (WorldModelError, OSError, RuntimeError) as exc:
        return None, f"cannot use the decoder of {source!r}: {exc}"
    return decoder, ""


# -------------------------------------------------------------------------------------------------- the path
def planned_states(config: Any, state: Sequence[float], actions: np.ndarray | torch.Tensor,
                   hold_steps: int = 1) -> np.ndarray:
    """States (H + 1, S) float64: `state` (S,), then the state after each of the plan's actions (H, A), each held
    `hold_steps` control steps, under the predictor's `config.state_update`."""
    if hold_steps < 1:
        raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
    current = torch.as_tensor(np.asarray(state, dtype=np.float64))[None]
    steps = torch.as_tensor(np.asarray(actions, dtype=np.float64))
    out = [current[0]]
    for action in steps:
        for _ in range(hold_steps):
            current = next_state(config, current, action[None])
        out.append(current[0])
    return torch.stack(out).numpy()


def position_problem(names: Sequence[str]) -> str:
    """Why states named `names` have no end-effector position ("" when they have one)."""
    missing = [name for name in POSITION_NAMES if name not in tuple(names)]
    return f"the state {list(names)} has no end-effector position (no {', '.join(missing)})" if missing else ""


def poses(states: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(positions (K, 3), quaternions (K, 4) as x, y, z, w) of states (K, S) named `names`; ValueError when the
    states have no x, y, z."""
    names = tuple(names)
    problem = position_problem(names)
    if problem:
        raise ValueError(problem)
    states = np.asarray(states, dtype=np.float64)
    positions = states[:, [names.index(name) for name in POSITION_NAMES]]
    rotation = rotation_slice(names)
    quaternions = np.zeros((len(states), 4))
    quaternions[:, 3] = 1.0
    if rotation is not None:
        for i, (roll, pitch, yaw) in enumerate(states[:, rotation]):
            w, x, y, z = euler2quat(roll, pitch, yaw, "sxyz")
            quaternions[i] = (x, y, z, w)
    return positions, quaternions


# ------------------------------------------------------------------------------------------------ the worker
@dataclass(frozen=True)
class PlanView:
    """What the worker needs to show one plan (references to the plan's own tensors, nothing copied)."""

    header: Any                         # the plan's header (the camera stamp); carried for the caller
    current: np.ndarray                 # (N, D) features the plan was made from
    state: np.ndarray                   # (S,) the paired state
    actions: torch.Tensor               # (H, A)
    predictions: torch.Tensor           # (H, N, D)
    energies: torch.Tensor              # (H,) predicted energy after each action
    goal_features: torch.Tensor         # (N, D)
    goal_image: np.ndarray | None       # the goal image as received, None for a goal given as features
    goal_index: int
    hold_steps: int                     # control steps each action was scored as held


class LatestWorker(Generic[T]):
    """A thread that hands the newest offered item to `handle`, at most one item per `period` seconds.

    `handle` errors go to `on_error` and the worker goes on. The thread starts with the first offer.
    """

    def __init__(self, handle: Callable[[T], None], on_error: Callable[[Exception], None],
                 name: str = "latest-worker") -> None:
        self._handle, self._on_error, self._name = handle, on_error, name
        self._condition = threading.Condition()
        self._item: T | None = None
        self._period = 0.0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.replaced = 0    # items replaced before they were handled
        self.handled = 0

    def offer(self, item: T, period: float) -> None:
        """Make `item` the next one to handle (replacing an unhandled one); `period` is the least time between
        two items handled from now on."""
        with self._condition:
            if self._closed:
                return
            self.replaced += self._item is not None
            self._item, self._period = item, max(0.0, period)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._condition.notify()

    def _next(self, not_before: float) -> T | None:
        """Wait for an item and for `not_before` (monotonic s); None once closed."""
        with self._condition:
            while not self._closed:
                wait = not_before - time.monotonic()
                if self._item is not None and wait <= 0:
                    item, self._item = self._item, None
                    return item
                self._condition.wait(wait if self._item is not None else None)
            return None

    def _run(self) -> None:
        not_before = -math.inf
        while (item := self._next(not_before)) is not None:
            not_before = time.monotonic() + self._period
            try:
                self._handle(item)
            except Exception as exc:   # noqa: BLE001 - one bad item must not end the worker
                self._on_error(exc)
            self.handled += 1

    def close(self, timeout: float = 5.0) -> None:
        """Drop an unhandled item, stop the thread and wait for it (up to `timeout` s)."""
        with self._condition:
            self._closed, self._item = True, None
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout)

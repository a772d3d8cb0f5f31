"""Step pictures of an episode (ROS-free): one row per plan of what the camera showed, what the model imagined
would follow, what actually followed and the goal (`jepa demo`'s ``steps_episode_<i>.png``).

Rules:
- A row is [current | imagined step 1 .. k | actual next | goal]: ``current`` the camera frame the plan was made
  from, ``imagined step j`` the decoded predicted features at the end of the plan's step j (a planner that scores
  each action held ``lookahead_steps`` control steps predicts that far ahead), ``actual next`` the camera frame
  the next plan was made from (the episode's final frame for the last plan), ``goal`` the goal image the plan aimed
  at.
- k is at most the ``imagined`` asked for and the most predicted steps any plan has; without a decoder k = 0 (no
  imagined column). A plan with fewer predicted steps, or a frame that was not seen (None), leaves its cell blank.
- With a decoder, camera frames and goal images are brought to its picture size the way the encoder sees them
  (`prepare_image`, centre crop), so a row compares like with like; without one they keep their size.
- The layout (labels, scale, gaps) is `jepa_world_model.evaluation.pictures.strip`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from jepa_world_model.data.image_encoding import prepare_image
from jepa_world_model.evaluation.pictures import strip

Cell = np.ndarray | None


@dataclass(frozen=True)
class PlannedStep:
    """One plan as seen from outside the planner."""

    frame: Cell               # the camera frame it was planned from (H, W, 3) uint8, None when not seen
    predicted: np.ndarray     # (K, N, D) predicted features after its first K steps
    goal: Cell                # the goal image it aimed at (h, w, 3) uint8


def column_labels(imagined: int) -> list[str]:
    """The column titles of a step picture with ``imagined`` imagined frames per row."""
    return ["current", *(f"imagined step {j}" for j in range(1, imagined + 1)), "actual next", "goal"]


def imagined_columns(steps: Sequence[PlannedStep], imagined: int, decoder: Any | None) -> int:
    """k: the imagined frames per row (0 without a decoder)."""
    if decoder is None or not steps:
        return 0
    return min(imagined, max(len(step.predicted) for step in steps))


def step_rows(steps: Sequence[PlannedStep], final: Cell, imagined: int = 1,
              decoder: Any | None = None) -> list[list[Cell]]:
    """The cells of :func:`step_picture`, one row per step; ``decoder.decode_images`` decodes every step's first
    k predictions in one batch."""
    k = imagined_columns(steps, imagined, decoder)
    size = decoder.config.image_size if decoder is not None else None

    def panel(image: Cell) -> Cell:
        return image if image is None or size is None else prepare_image(np.asarray(image, np.uint8), size)

    counts = [min(k, len(step.predicted)) for step in steps]
    decoded = iter(decoder.decode_images(np.concatenate([step.predicted[:n] for step, n in zip(steps, counts) if n]))
                   if sum(counts) else [])
    followed = [step.frame for step in steps[1:]] + [final]
    rows = []
    for step, n, actual in zip(steps, counts, followed):
        dreamt: list[Cell] = [next(decoded) for _ in range(n)]
        rows.append([panel(step.frame), *dreamt, *[None] * (k - n), panel(actual), panel(step.goal)])
    return rows


def step_picture(steps: Sequence[PlannedStep], final: Cell, imagined: int = 1, decoder: Any | None = None,
                 scale: int = 2) -> np.ndarray:
    """The step picture (H, W, 3) uint8 of an episode's plans: rows "step 1".. of :func:`step_rows` under
    :func:`column_labels`."""
    if not steps:
        raise ValueError("a step picture needs at least one planned step")
    rows = step_rows(steps, final, imagined, decoder)
    return strip(rows, [f"step {i}" for i in range(1, len(rows) + 1)],
                 column_labels(imagined_columns(steps, imagined, decoder)), scale=scale)

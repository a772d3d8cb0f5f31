"""Picture strips: small RGB images laid out in labelled rows and columns, for looking at decoded predictions
(`jepa eval-offline --pictures`, the demo).

Rules: images are (H, W, 3) uint8 arrays of any size (each cell takes the largest one's size, smaller ones are
centred); a missing cell (None) stays blank; cells are enlarged by an integer ``scale`` with nearest-neighbour
sampling so pixels stay visible; labels are drawn with PIL's built-in font (no font files needed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Background and label colours.
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def strip(rows: Sequence[Sequence[np.ndarray | None]], labels: Sequence[str] = (),
          column_labels: Sequence[str] = (), scale: int = 2, gap: int = 4) -> np.ndarray:
    """One picture (H, W, 3) uint8 of ``rows`` of images: ``labels`` name the rows (left), ``column_labels`` the
    columns (top)."""
    cells = [image for row in rows for image in row if image is not None]
    if not cells:
        raise ValueError("strip needs at least one image")
    for image in cells:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"strip images must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    cell_h = max(i.shape[0] for i in cells) * scale
    cell_w = max(i.shape[1] for i in cells) * scale
    font = ImageFont.load_default()
    text_h = 12
    left = (max(len(t) for t in labels) * 6 + 2 * gap) if labels else gap
    top = text_h + gap if column_labels else gap
    columns = max(len(row) for row in rows)
    canvas = Image.new("RGB", (left + columns * (cell_w + gap), top + len(rows) * (cell_h + gap)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(column_labels):
        draw.text((left + c * (cell_w + gap), 1), text, fill=INK, font=font)
    for r, row in enumerate(rows):
        y = top + r * (cell_h + gap)
        if r < len(labels):
            draw.text((gap, y + cell_h // 2 - text_h // 2), labels[r], fill=INK, font=font)
        for c, image in enumerate(row):
            if image is None:
                continue
            big = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
            x = left + c * (cell_w + gap)
            canvas.paste(big, (x + (cell_w - big.width) // 2, y + (cell_h - big.height) // 2))
    return np.asarray(canvas)


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Write a (H, W, 3) uint8 picture as a PNG (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path

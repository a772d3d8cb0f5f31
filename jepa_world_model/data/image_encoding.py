"""ROS image messages -> RGB uint8 numpy arrays, plus the crop/resize to the encoder's input size (ROS-free).

Works on anything shaped like sensor_msgs/Image (height, width, encoding, is_bigendian, step, data) or
sensor_msgs/CompressedImage (format, data). Every problem raises :class:`ImageEncodingError` whose ``kind``
says what was wrong, so a node can count bad frames per kind instead of crashing.

One code path, no cv_bridge: for the encodings supported here cv_bridge would give the same pixels and only adds
an OpenCV dependency (it cannot be installed in the pip-only environment anyway). The 16-bit encodings are
scaled to 8 bits by ``round(v * 255 / 65535)``, the same factor cv_bridge uses for a 16 -> 8 bit conversion.
"""
from __future__ import annotations

import io
import math

import numpy as np

#: Encoding -> (channels, bytes per channel, channel order of the output RGB taken from the source channels).
ENCODINGS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "rgb8": (3, 1, (0, 1, 2)),
    "bgr8": (3, 1, (2, 1, 0)),
    "rgba8": (4, 1, (0, 1, 2)),
    "bgra8": (4, 1, (2, 1, 0)),
    "mono8": (1, 1, (0, 0, 0)),
    "rgb16": (3, 2, (0, 1, 2)),
    "bgr16": (3, 2, (2, 1, 0)),
    "rgba16": (4, 2, (0, 1, 2)),
    "bgra16": (4, 2, (2, 1, 0)),
    "mono16": (1, 2, (0, 0, 0)),
}
#: Every value of ImageEncodingError.kind.
ERROR_KINDS = ("encoding", "size", "step", "truncated", "length", "compressed")
#: Largest accepted frame, in pixels: 4K UHD (3840 x 2160). Larger headers are refused before any decoding, so
#: one frame never takes more than about 3 bytes per pixel of this (x a small number of working copies).
DEFAULT_MAX_PIXELS = 3840 * 2160
#: Formats a CompressedImage may hold (Pillow is never asked to parse anything else).
COMPRESSED_FORMATS = ("JPEG", "PNG")
CROP_MODES = ("center", "none")


class ImageEncodingError(ValueError):
    """An image message cannot be converted; ``kind`` is one of :data:`ERROR_KINDS`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageEncodingError("size", f"height={height} width={width}: both must be positive")
    if height * width > max_pixels:
        raise ImageEncodingError("size", f"height={height} width={width} is {height * width} pixels, "
                                         f"more than the limit of {max_pixels}")


def _as_bytes(data) -> np.ndarray:
    """The message's data field as a flat uint8 array without copying where possible."""
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Convert a sensor_msgs/Image-like message to a (height, width, 3) uint8 RGB array (a new array).

    Honours ``step`` (row padding) and ``is_bigendian`` (16-bit encodings). Alpha is dropped, mono is
    replicated to three channels and 16-bit values are scaled to 8 bits.
    """
    encoding = str(msg.encoding).strip().lower()
    if encoding not in ENCODINGS:
        raise ImageEncodingError("encoding", f"unsupported encoding {msg.encoding!r}; supported: "
                                             f"{', '.join(ENCODINGS)}")
    channels, depth, order = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(height, width, max_pixels)
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageEncodingError("step", f"step={step} is less than width*channels*bytes = {width}*{channels}*"
                                         f"{depth} = {row_bytes}")
    data = _as_bytes(msg.data)
    expected = step * height
    if data.size < expected:
        raise ImageEncodingError("truncated", f"data has {data.size} bytes, step*height = {step}*{height} "
                                              f"needs {expected}")
    if data.size > expected:
        raise ImageEncodingError("length", f"data has {data.size} bytes, more than step*height = "
                                           f"{step}*{height} = {expected}")
    rows = data.reshape(height, step)[:, :row_bytes]
    if depth == 1:
        pixels = rows.reshape(height, width, channels)
    else:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        wide = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels).astype(np.uint32)
        pixels = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage-like message (jpeg or png, via Pillow) to (H, W, 3) uint8 RGB.

    The size is read from the image header first (Pillow opens lazily) and checked against ``max_pixels`` before
    a single pixel is decoded, so a small file that claims a huge image costs no memory.
    """
    from PIL import Image as PILImage  # Pillow is only needed for compressed frames.

    data = _as_bytes(msg.data)
    if data.size == 0:
        raise ImageEncodingError("truncated", f"CompressedImage (format {msg.format!r}) has no data")
    try:
        with PILImage.open(io.BytesIO(data.tobytes()), formats=COMPRESSED_FORMATS) as image:
            _check_size(image.height, image.width, max_pixels)  # header only: nothing decoded yet
            rgb = np.array(image.convert("RGB"), dtype=np.uint8)
    except ImageEncodingError:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt data (OSError, SyntaxError, EOFError, ...).
        raise ImageEncodingError("compressed", f"cannot decode {data.size} bytes of format {msg.format!r}: "
                                               f"{exc}") from exc
    return rgb


def center_crop(rgb: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """The largest centred window of ``rgb`` (H, W, C) with width/height = ``aspect`` (a view)."""
    if not aspect > 0 or not math.isfinite(aspect):
        raise ValueError(f"aspect must be a positive finite number, got {aspect}")
    height, width = rgb.shape[:2]
    crop_w = min(width, max(1, round(height * aspect)))
    crop_h = min(height, max(1, round(crop_w / aspect)))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return rgb[top:top + crop_h, left:left + crop_w]


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of an (H, W, 3) uint8 array; returns it unchanged if sized."""
    if height <= 0 or width <= 0:
        raise ValueError(f"target size must be positive, got height={height} width={width}")
    if rgb.shape[:2] == (height, width):
        return rgb
    from PIL import Image as PILImage

    image = PILImage.fromarray(np.ascontiguousarray(rgb))
    return np.array(image.resize((width, height), PILImage.Resampling.BILINEAR), dtype=np.uint8)


def prepare_image(rgb: np.ndarray, size: int | tuple[int, int], crop: str = "center") -> np.ndarray:
    """Bring an (H, W, 3) frame to the encoder's input size (height, width).

    ``crop="center"`` cuts the largest centred window with the target aspect ratio first (no distortion);
    ``crop="none"`` resizes the whole frame (the aspect ratio changes if it differs).
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if crop == "center":
        rgb = center_crop(rgb, width / height)
    return resize(rgb, height, width)

"""image_encoding: every encoding against its definition (bytes built by hand), errors by kind, crop/resize."""
import array
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from jepa_world_model.data.image_encoding import (ImageEncodingError, compressed_to_rgb, image_to_rgb, prepare_image)

# A 2x3 reference image: RGB triples per pixel.
RGB = np.array([[[10, 20, 30], [40, 50, 60], [70, 80, 90]],
                [[100, 110, 120], [130, 140, 150], [160, 170, 180]]], dtype=np.uint8)
PAD = 5  # bytes of row padding in the padded variants


def make(encoding: str, rows: list[bytes], width: int, step: int | None = None, bigendian: int = 0,
         pad_byte: int = 0xEE) -> SimpleNamespace:
    """An Image-like message from per-row pixel bytes, padded to `step`."""
    step = step if step is not None else max(len(r) for r in rows)
    data = b"".join(r + bytes([pad_byte]) * (step - len(r)) for r in rows)
    return SimpleNamespace(height=len(rows), width=width, encoding=encoding, is_bigendian=bigendian, step=step,
                           data=data)


def rows_8bit(order: str, alpha: int | None = None) -> list[bytes]:
    index = {"r": 0, "g": 1, "b": 2}
    out = []
    for row in RGB:
        b = bytearray()
        for px in row:
            b += bytes(int(px[index[c]]) for c in order)
            if alpha is not None:
                b.append(alpha)
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("encoding,order,alpha", [("rgb8", "rgb", None), ("bgr8", "bgr", None),
                                                  ("rgba8", "rgb", 7), ("bgra8", "bgr", 7)])
@pytest.mark.parametrize("padded", [False, True])
def test_8bit_colour_encodings(encoding, order, alpha, padded):
    rows = rows_8bit(order, alpha)
    step = len(rows[0]) + (PAD if padded else 0)
    rgb = image_to_rgb(make(encoding, rows, width=3, step=step))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb, RGB)


def test_mono8_replicates_grey_and_skips_padding():
    grey = np.array([[0, 128, 255], [1, 2, 3]], dtype=np.uint8)
    msg = make("mono8", [bytes(r) for r in grey], width=3, step=3 + PAD)
    rgb = image_to_rgb(msg)
    np.testing.assert_array_equal(rgb, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16_scales_to_8_bits_with_endianness(bigendian):
    values = [[0, 257, 4660], [65535, 128, 32896]]
    order = "big" if bigendian else "little"
    rows = [b"".join(v.to_bytes(2, order) for v in row) for row in values]
    rgb = image_to_rgb(make("mono16", rows, width=3, step=6 + 2, bigendian=bigendian))
    expected = np.array([[0, 1, round(4660 * 255 / 65535)], [255, round(128 * 255 / 65535), 128]])
    np.testing.assert_array_equal(rgb[:, :, 0], expected)
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


@pytest.mark.parametrize("encoding,order", [("rgb16", "rgb"), ("bgr16", "bgr"), ("rgba16", "rgba"),
                                            ("bgra16", "bgra")])
def test_16bit_colour_encodings(encoding, order):
    wide = RGB.astype(np.uint32) * 257  # 8-bit value k is 257*k in 16 bits, which scales back to exactly k
    index = {"r": 0, "g": 1, "b": 2}
    rows = []
    for row in wide:
        b = bytearray()
        for px in row:
            for c in order:
                b += (int(px[index[c]]) if c != "a" else 65535).to_bytes(2, "big")
        rows.append(bytes(b))
    rgb = image_to_rgb(make(encoding, rows, width=3, bigendian=1, step=len(rows[0]) + 1))  # odd step is fine
    np.testing.assert_array_equal(rgb, RGB)


def test_real_message_and_data_containers():
    rows = rows_8bit("rgb")
    msg = Image(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=b"".join(rows))
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    for container in (array.array("B", b"".join(rows)), list(b"".join(rows)), bytearray(b"".join(rows))):
        duck = SimpleNamespace(height=2, width=3, encoding="RGB8", is_bigendian=0, step=9, data=container)
        np.testing.assert_array_equal(image_to_rgb(duck), RGB)


def test_result_does_not_alias_message_data():
    data = bytearray(b"".join(rows_8bit("rgb")))
    rgb = image_to_rgb(SimpleNamespace(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=data))
    data[0] = 255
    assert rgb[0, 0, 0] == 10


@pytest.mark.parametrize("fields,kind,needle", [
    (dict(encoding="yuv422"), "encoding", "yuv422"),
    (dict(encoding="32FC1"), "encoding", "32FC1"),
    (dict(step=8), "step", "step=8"),
    (dict(height=0), "size", "height=0"),
    (dict(width=-1), "size", "width=-1"),
    (dict(height=100_000, width=100_000, step=300_000), "size", "pixels"),
    (dict(data=b"\x00" * 17), "truncated", "17 bytes"),
    (dict(data=b""), "truncated", "0 bytes"),
    (dict(data=b"\x00" * 19), "length", "19 bytes"),
    (dict(step=2 ** 40), "truncated", "needs"),
])
def test_bad_images_raise_by_kind(fields, kind, needle):
    msg = make("rgb8", rows_8bit("rgb"), width=3)
    for k, v in fields.items():
        setattr(msg, k, v)
    with pytest.raises(ImageEncodingError) as info:
        image_to_rgb(msg)
    assert info.value.kind == kind
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_max_pixels_is_configurable():
    msg = make("rgb8", rows_8bit("rgb"), width=3)
    with pytest.raises(ImageEncodingError, match="limit of 5") as info:
        image_to_rgb(msg, max_pixels=5)
    assert info.value.kind == "size"


def _encoded(fmt: str, rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def test_compressed_png_is_exact_and_jpeg_close():
    rng = np.random.default_rng(0)
    smooth = np.clip(np.add.outer(np.arange(16) * 8, np.arange(16) * 4)[:, :, None] + [0, 30, 60], 0, 255)
    smooth = smooth.astype(np.uint8)
    png = CompressedImage(format="png", data=_encoded("PNG", RGB))
    np.testing.assert_array_equal(compressed_to_rgb(png), RGB)
    jpeg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=_encoded("JPEG", smooth))
    decoded = compressed_to_rgb(jpeg)
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded.astype(int) - smooth).mean() < 6
    noise = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    with pytest.raises(ImageEncodingError) as info:
        compressed_to_rgb(CompressedImage(format="jpeg", data=noise))
    assert info.value.kind == "compressed"
    with pytest.raises(ImageEncodingError) as info:
        compressed_to_rgb(CompressedImage(format="png", data=_encoded("PNG", RGB)[:40]))
    assert info.value.kind == "compressed"
    with pytest.raises(ImageEncodingError) as info:
        compressed_to_rgb(CompressedImage(format="jpeg", data=b""))
    assert info.value.kind == "truncated"
    with pytest.raises(ImageEncodingError) as info:
        compressed_to_rgb(png, max_pixels=4)
    assert info.value.kind == "size"


def test_center_crop_keeps_the_middle_and_none_squashes():
    # 4 rows x 8 columns: column blocks of value 0 | 100 | 200 | 50 (2 columns each).
    image = np.zeros((4, 8, 3), dtype=np.uint8)
    for block, value in enumerate((0, 100, 200, 50)):
        image[:, 2 * block:2 * block + 2] = value
    centre = prepare_image(image, 4, crop="center")
    assert centre.shape == (4, 4, 3)
    np.testing.assert_array_equal(centre[:, :2], 100)
    np.testing.assert_array_equal(centre[:, 2:], 200)
    squashed = prepare_image(image, (2, 4), crop="none")
    assert squashed.shape == (2, 4, 3)
    # Each output column comes from its 2-column block (bilinear blends a little across block edges).
    np.testing.assert_array_equal(np.argsort(squashed[0, :, 0]), np.argsort([0, 100, 200, 50]))
    np.testing.assert_array_equal(squashed[0], squashed[1])
    upscaled = prepare_image(image[:, 2:6], 8, crop="center")
    assert upscaled.shape == (8, 8, 3)
    assert upscaled[:, 0].max() == 100 and upscaled[:, -1].min() == 200
    same = prepare_image(RGB[:, :2], 2)
    np.testing.assert_array_equal(same, RGB[:, :2])
    with pytest.raises(ValueError, match="crop"):
        prepare_image(image, 4, crop="left")


def test_oversized_compressed_frame_is_refused_from_its_header_before_decoding():
    big = _encoded("PNG", np.zeros((6000, 6000, 3), dtype=np.uint8))
    assert len(big) < 200_000  # a small message that claims 108 MB of pixels
    with pytest.raises(ImageEncodingError, match="36000000 pixels") as info:
        compressed_to_rgb(CompressedImage(format="png", data=big))  # the default limit is 4K UHD
    assert info.value.kind == "size"
    # Only the header is read: the same header followed by garbage is refused for its size, not as corrupt data.
    header_only = big[:64] + bytes(200)
    with pytest.raises(ImageEncodingError) as info:
        compressed_to_rgb(CompressedImage(format="png", data=header_only))
    assert info.value.kind == "size"
    uhd = compressed_to_rgb(CompressedImage(format="png", data=_encoded("PNG", np.zeros((2160, 3840, 3), np.uint8))))
    assert uhd.shape == (2160, 3840, 3)


def test_compressed_formats_other_than_jpeg_and_png_are_refused():
    for fmt in ("BMP", "GIF", "TIFF"):
        with pytest.raises(ImageEncodingError) as info:
            compressed_to_rgb(CompressedImage(format=fmt.lower(), data=_encoded(fmt, RGB)))
        assert info.value.kind == "compressed"

"""The step pictures of `jepa demo` (jepa_episodes.pictures): per plan current | imagined | actual next | goal,
decoded with a small random-weight decoder, frames brought to its picture size, blanks where nothing was seen, and
no imagined column without a decoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_episodes.pictures import PlannedStep, column_labels, step_picture, step_rows
from jepa_world_model.data.image_encoding import prepare_image
from jepa_world_model.evaluation.pictures import strip
from jepa_world_model.networks.decoder import DecoderConfig, FeatureDecoder

pytestmark = pytest.mark.unit

SIZE, TOKENS, DIM = 16, 4, 8


@pytest.fixture(scope="module")
def decoder() -> FeatureDecoder:
    torch.manual_seed(0)
    config = DecoderConfig(embed_dim=DIM, grid=(2, 2), image_size=SIZE, patch_size=8, hidden=8, conv_width=4)
    return FeatureDecoder(config).eval()


def frame(value: int, size: int = 24) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)


def steps(horizons: list[int]) -> list[PlannedStep]:
    rng = np.random.default_rng(1)
    return [PlannedStep(frame(i), rng.standard_normal((h, TOKENS, DIM)).astype(np.float32), frame(100))
            for i, h in enumerate(horizons)]


def test_rows_hold_current_imagined_actual_next_and_goal(decoder):
    planned, final = steps([2, 1, 2]), frame(50)
    rows = step_rows(planned, final, imagined=2, decoder=decoder)
    assert [len(row) for row in rows] == [5, 5, 5] and len(column_labels(2)) == 5

    def panel(image):
        return prepare_image(image, SIZE)

    for i, row in enumerate(rows):
        np.testing.assert_array_equal(row[0], panel(planned[i].frame))
        np.testing.assert_array_equal(row[3], panel(planned[i + 1].frame if i + 1 < len(planned) else final))
        np.testing.assert_array_equal(row[4], panel(planned[i].goal))
        expected = decoder.decode_images(planned[i].predicted[:2])
        for j, picture in enumerate(expected):
            np.testing.assert_array_equal(row[1 + j], picture)
    assert rows[1][2] is None                                   # a one-step plan leaves its second frame blank


def test_imagined_frames_are_capped_by_the_plans_and_the_request(decoder):
    planned = steps([3, 3])
    assert len(step_rows(planned, None, imagined=1, decoder=decoder)[0]) == 4
    assert len(step_rows(planned, None, imagined=5, decoder=decoder)[0]) == 6


def test_without_a_decoder_there_is_no_imagined_column_and_frames_keep_their_size():
    planned = steps([1, 1])
    planned[1] = PlannedStep(None, planned[1].predicted, planned[1].goal)
    rows = step_rows(planned, frame(50), imagined=2)
    assert [len(row) for row in rows] == [3, 3]
    assert rows[0][0] is planned[0].frame and rows[0][1] is None and rows[1][0] is None   # not seen: blank
    assert rows[1][1] is not None and rows[1][1].shape == frame(50).shape


def test_picture_has_a_row_per_step_and_the_labelled_columns(decoder):
    planned = steps([1, 1, 1])
    picture = step_picture(planned, frame(50), imagined=1, decoder=decoder, scale=2)
    cell = np.zeros((SIZE, SIZE, 3), np.uint8)
    layout = strip([[cell] * 4] * 3, ["step 1", "step 2", "step 3"], column_labels(1), scale=2)
    assert picture.shape == layout.shape and picture.dtype == np.uint8
    with pytest.raises(ValueError):
        step_picture([], frame(50))

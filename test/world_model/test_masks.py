"""3-D multi-block masks: disjoint context/target sets covering what the boxes say, deterministic, clear errors."""
import numpy as np
import pytest

from jepa_world_model.training.masks import BlockSpec, MaskError, MultiBlockMask, vjepa_masks

GRID = (2, 8, 8)


def _boxes_cover(mask_row: np.ndarray, grid) -> np.ndarray:
    covered = np.zeros(int(np.prod(grid)), dtype=bool)
    covered[mask_row] = True
    return covered.reshape(grid)


def test_context_and_target_are_disjoint_sorted_and_equal_sized_across_the_batch():
    short, long = vjepa_masks(GRID)
    for masker in (short, long):
        batch = masker.sample(np.random.default_rng(1), 16)
        assert batch.context.shape[0] == batch.target.shape[0] == 16
        assert batch.context.shape[1] >= 1 and batch.target.shape[1] >= 1
        for context, target in zip(batch.context, batch.target):
            assert np.all(np.diff(context) > 0) and np.all(np.diff(target) > 0)
            assert not set(context) & set(target)
            assert context.max() < 128 and target.max() < 128
    # long-range boxes (2 x 70 % of the frame) mask much more than short-range ones (8 x 15 %)
    fraction = lambda m: m.sample(np.random.default_rng(2), 32).target.shape[1] / m.num_tokens  # noqa: E731
    assert fraction(long) > fraction(short)


def test_boxes_span_the_clip_in_time_and_have_the_configured_area():
    masker = MultiBlockMask(GRID, BlockSpec(1, (0.25, 0.25), (1.0, 1.0), (1.0, 1.0)))
    batch = masker.sample(np.random.default_rng(0), 8)
    assert batch.target.shape[1] == 2 * 16  # one 4x4 box (25 % of 8x8) in both time steps
    for target in batch.target:
        covered = _boxes_cover(target, GRID)
        assert np.array_equal(covered[0], covered[1])
        rows, cols = np.nonzero(covered[0])
        assert np.ptp(rows) == 3 and np.ptp(cols) == 3  # one contiguous 4x4 box
    half = MultiBlockMask((4, 8, 8), BlockSpec(1, (0.25, 0.25), (0.5, 0.5), (1.0, 1.0)))
    covered = _boxes_cover(half.sample(np.random.default_rng(0), 1).target[0], (4, 8, 8))
    assert covered.any(axis=(1, 2)).sum() == 2


def test_same_seed_same_masks_other_seed_other_masks():
    masker = vjepa_masks(GRID)[0]
    a = masker.sample(np.random.default_rng([5, 3]), 8)
    b = masker.sample(np.random.default_rng([5, 3]), 8)
    c = masker.sample(np.random.default_rng([5, 4]), 8)
    assert np.array_equal(a.context, b.context) and np.array_equal(a.target, b.target)
    assert not np.array_equal(a.target, c.target)


def test_masks_that_leave_no_context_are_refused_with_the_reason():
    with pytest.raises(MaskError, match="masks leave no context"):
        MultiBlockMask(GRID, BlockSpec(1, (1.0, 1.0), (1.0, 1.0), (1.0, 1.0)))
    with pytest.raises(MaskError, match="masks leave no context"):
        vjepa_masks((1, 2, 2), long_scale=1.0, short_blocks=0)
    with pytest.raises(MaskError, match="spatial_scale"):
        BlockSpec(2, (0.5, 1.5))
    with pytest.raises(MaskError, match="at least one"):
        vjepa_masks(GRID, short_blocks=0, long_blocks=0)

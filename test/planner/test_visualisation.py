"""The ROS-free parts of the planner's visualisation: the picture strip (layout, goal image brought to the panel
size, decoding in one batch), the planned path (the predictor's own state update, held actions, quaternions) and
the latest-only worker (newest item wins, throttling, errors)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from transforms3d.euler import quat2euler

from jepa_planner.visualisation import (LatestWorker, load_decoder, planned_states, poses, position_problem,
                                        render_strip, strip)
from jepa_world_model import PredictorConfig
from jepa_world_model.presets import EE7_ACTION, EE7_STATE, PREDICTOR_PRESETS
from jepa_world_model.networks.state_update import next_state

pytestmark = pytest.mark.unit

XYZ = PREDICTOR_PRESETS["tiny"]                                   # state x, y, z; "add"
EE7 = PredictorConfig(action_space=EE7_ACTION, state_space=EE7_STATE)   # "ee_pose"


def panel(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


class FakeDecoder:
    """decode_images: picture i is filled with round(1000 * mean of features i) % 256; remembers the batches."""

    def __init__(self, size: int = 8):
        self.size, self.batches = size, []

    def decode_images(self, features: torch.Tensor) -> np.ndarray:
        self.batches.append(tuple(features.shape))
        values = [int(round(float(f.mean()) * 1000)) % 256 for f in features]
        return np.stack([panel(v, self.size) for v in values])


# ------------------------------------------------------------------------------------------------- the strip
def test_the_strip_is_current_then_predictions_then_goal_side_by_side():
    out = strip(panel(1), np.stack([panel(2), panel(3), panel(4)]), panel(5))
    assert out.shape == (8, 5 * 8, 3) and out.dtype == np.uint8
    assert [int(out[0, 8 * i, 0]) for i in range(5)] == [1, 2, 3, 4, 5]


def test_a_goal_image_of_another_size_is_centre_cropped_to_the_panel():
    goal = np.zeros((16, 32, 3), np.uint8)
    goal[:, 8:24] = 200                       # the centre square; the sides are cut away by the crop
    out = strip(panel(1), panel(2)[None], goal)
    assert out.shape == (8, 3 * 8, 3)
    assert (out[:, 16:] == 200).all()


@pytest.mark.parametrize("current, predicted", [(np.zeros((8, 8), np.uint8), np.zeros((1, 8, 8, 3), np.uint8)),
                                                (np.zeros((8, 8, 3), np.uint8), np.zeros((1, 4, 4, 3), np.uint8)),
                                                (np.zeros((8, 8, 3), np.float32), np.zeros((1, 8, 8, 3), np.uint8))])
def test_pictures_of_the_wrong_shape_or_type_are_refused(current, predicted):
    with pytest.raises(ValueError):
        strip(current, predicted, panel(0))


def test_render_strip_decodes_current_predictions_and_a_goal_given_as_features_in_one_batch():
    decoder = FakeDecoder()
    predictions = torch.stack([torch.full((4, 2), v) for v in (0.002, 0.003)])
    out = render_strip(decoder, np.full((4, 2), 0.001, np.float32), predictions, torch.full((4, 2), 0.009), None)
    assert decoder.batches == [(4, 4, 2)]
    assert out.shape == (8, 4 * 8, 3)
    assert [int(out[0, 8 * i, 0]) for i in range(4)] == [1, 2, 3, 9]


def test_render_strip_shows_a_goal_image_as_received_and_does_not_decode_the_goal():
    decoder = FakeDecoder()
    out = render_strip(decoder, np.zeros((4, 2), np.float32), torch.zeros(3, 4, 2), torch.zeros(4, 2), panel(77, 32))
    assert decoder.batches == [(4, 4, 2)]
    assert out.shape == (8, 5 * 8, 3) and (out[:, 32:] == 77).all()


def test_decoder_none_turns_pictures_off_without_looking_for_one():
    assert load_decoder("none", "default", encoder=None) == (None, "")


# -------------------------------------------------------------------------------------------------- the path
def test_the_path_adds_each_action_held_lookahead_steps_times():
    actions = np.array([[0.01, 0.0, -0.02], [0.0, 0.03, 0.0]], np.float32)
    states = planned_states(XYZ, [0.3, 0.1, 0.2], actions, hold_steps=4)
    expected = np.array([[0.3, 0.1, 0.2], [0.34, 0.1, 0.12], [0.34, 0.22, 0.12]])
    np.testing.assert_allclose(states, expected, atol=1e-7)
    np.testing.assert_allclose(planned_states(XYZ, [0.3, 0.1, 0.2], actions)[-1], [0.31, 0.13, 0.18], atol=1e-7)


def test_the_path_follows_the_predictors_state_update_with_rotations():
    state = np.array([0.4, -0.1, 0.3, 0.3, -0.2, 1.2, 0.9])
    actions = np.array([[0.01, 0.02, -0.01, 0.10, 0.15, -0.20, 0.30], [0.0, 0.0, 0.01, 0.2, -0.1, 0.05, 0.5]])
    states = planned_states(EE7, state, actions, hold_steps=2)
    current = torch.tensor(state)[None]
    for action in torch.tensor(actions):
        for _ in range(2):
            current = next_state(EE7, current, action[None])
    np.testing.assert_allclose(states[-1], current[0].numpy(), atol=1e-12)
    assert states.shape == (3, 7) and states[-1, 6] == 1.0     # the gripper clipped to its bound
    positions, quaternions = poses(states, EE7_STATE.names)
    np.testing.assert_allclose(positions, states[:, :3])
    for (x, y, z, w), rpy in zip(quaternions, states[:, 3:6]):
        np.testing.assert_allclose(quat2euler((w, x, y, z), "sxyz"), rpy, atol=1e-9)


def test_a_state_without_rotation_gets_identity_orientations_and_one_without_position_no_path():
    positions, quaternions = poses(np.array([[1.0, 2.0, 3.0]]), ("x", "y", "z"))
    assert positions.tolist() == [[1.0, 2.0, 3.0]] and quaternions.tolist() == [[0.0, 0.0, 0.0, 1.0]]
    assert position_problem(("x", "y", "z")) == ""
    assert "no end-effector position" in position_problem(("joint1", "joint2"))
    with pytest.raises(ValueError, match="no x, y, z"):
        poses(np.zeros((1, 2)), ("joint1", "joint2"))


# ------------------------------------------------------------------------------------------------ the worker
def test_the_worker_hands_over_the_newest_item_and_drops_the_ones_it_never_reached():
    handled, release = [], threading.Event()

    def handle(item: int) -> None:
        handled.append(item)
        release.wait(5.0)

    worker = LatestWorker(handle, on_error=pytest.fail)
    try:
        worker.offer(1, 0.0)
        assert wait(lambda: handled == [1])
        for item in (2, 3, 4):                 # arrive while 1 is being handled: only 4 is kept
            worker.offer(item, 0.0)
        release.set()
        assert wait(lambda: handled == [1, 4])
        assert worker.replaced == 2
    finally:
        worker.close()


def test_the_worker_handles_at_most_one_item_per_period():
    times = []
    worker = LatestWorker(lambda _item: times.append(time.monotonic()), on_error=pytest.fail)
    try:
        for i in range(30):
            worker.offer(i, 0.2)
            time.sleep(0.02)
        assert wait(lambda: worker.handled >= 3)
        assert all(b - a >= 0.19 for a, b in zip(times, times[1:]))
        assert worker.handled <= 5
    finally:
        worker.close()


def test_the_worker_reports_errors_and_goes_on():
    errors, handled = [], []

    def handle(item: int) -> None:
        if item == 1:
            raise RuntimeError("bad plan")
        handled.append(item)

    worker = LatestWorker(handle, on_error=errors.append)
    try:
        worker.offer(1, 0.0)
        assert wait(lambda: errors)
        worker.offer(2, 0.0)
        assert wait(lambda: handled == [2])
        assert str(errors[0]) == "bad plan"
    finally:
        worker.close()


def test_nothing_runs_before_the_first_offer_and_nothing_after_close():
    worker = LatestWorker(pytest.fail, on_error=pytest.fail)
    assert worker._thread is None
    worker.close()
    worker.offer(1, 0.0)
    assert worker._thread is None and worker.handled == 0


def wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


# ----------------------------------------------------------------------------------------------- the decoder
def test_load_decoder_finds_a_saved_decoder_checks_its_encoder_and_explains_a_missing_one(tmp_path):
    from jepa_world_model import load_encoder
    from jepa_world_model.checkpoints.decoder_loading import save_decoder
    from jepa_world_model.networks.decoder import DecoderConfig, FeatureDecoder

    encoder = load_encoder("tiny")
    save_decoder(tmp_path / "mine", FeatureDecoder(DecoderConfig.for_encoder(encoder, hidden=8, conv_width=4)))
    decoder, problem = load_decoder(str(tmp_path / "mine"), "tiny", encoder)
    assert problem == "" and decoder.encoder_id == encoder.model_id
    with torch.inference_mode():
        features = encoder(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    assert decoder.decode_images(features).shape == (1, encoder.config.crop_size, encoder.config.crop_size, 3)
    other = DecoderConfig.from_dict({**DecoderConfig.for_encoder(encoder, hidden=8).to_dict(),
                                     "encoder_id": "someone-else"})
    save_decoder(tmp_path / "other", FeatureDecoder(other))
    decoder, problem = load_decoder(str(tmp_path / "other"), "tiny", encoder)
    assert decoder is None and "someone-else" in problem
    decoder, problem = load_decoder("", str(tmp_path / "nothing"), encoder)
    assert decoder is None and problem.startswith("no decoder found")

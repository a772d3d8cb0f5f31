"""The perception node's rules without DDS: future stamps, stale frames, pairing with the state, settings, device."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from jepa_world_model.errors import ConfigError
from jepa_world_model.perception import (MAX_STATE_HISTORY, FrameEncoder, FrameGate, PairedState,
                                         PerceptionSettings, Refusal, gripper_state, joint_state,
                                         malformed_joint_state, pose_state)
from jepa_common.settings import SettingsError, make_settings

NOW = 1_700_000_000.0


def gate(**overrides) -> FrameGate:
    return FrameGate(make_settings(PerceptionSettings, overrides))


def test_frames_stamped_ahead_beyond_the_tolerance_are_refused():
    g = gate(max_future_stamp=0.2)
    assert g.check_frame(NOW + 0.15, NOW) is None  # within the tolerance (clock skew)
    refusal = g.check_frame(NOW + 86_400.0, NOW)  # a day ahead
    assert isinstance(refusal, Refusal) and refusal.kind == "future" and "86400" in refusal.message
    assert g.check_frame(float("nan"), NOW).kind == "future"
    assert gate(max_future_stamp=0.0).check_frame(NOW + 0.001, NOW).kind == "future"


def test_states_stamped_ahead_are_refused_and_never_paired():
    g = gate(max_future_stamp=0.2)
    refusal = g.add_state(NOW + 3600.0, [0.3, 0.0, 0.2], NOW)
    assert refusal.kind == "state_future"
    assert g.waiting_for_state(NOW)
    # The future state is not kept: it can neither pair with a frame nor make the state look fresh later.
    assert g.pair(NOW, NOW).kind == "no_state"
    assert g.pair(NOW + 3600.0, NOW + 3600.0).kind == "no_state"
    assert g.add_state(NOW, [0.3, float("nan"), 0.2], NOW).kind == "state_nonfinite"
    assert g.add_state(NOW, [0.3, 0.0, 0.2], NOW) is None
    assert g.pair(NOW, NOW) == PairedState((0.3, 0.0, 0.2), 0.0)


def test_no_frame_is_forwarded_without_its_state():
    g = gate(max_state_gap=0.5)
    assert g.waiting_for_state(NOW)
    refusal = g.pair(NOW, NOW)
    assert refusal.kind == "no_state" and "ee_pose" in refusal.message
    g.add_state(NOW - 0.1, [1.0, 2.0, 3.0], NOW)
    assert not g.waiting_for_state(NOW)
    paired = g.pair(NOW, NOW)
    assert paired.values == (1.0, 2.0, 3.0) and paired.gap == pytest.approx(0.1)
    # The state stream stops: once the newest state is more than max_state_gap from a frame, frames are dropped.
    assert g.pair(NOW + 0.39, NOW + 0.39).values == (1.0, 2.0, 3.0)
    assert g.pair(NOW + 0.7, NOW + 0.7).kind == "no_state"
    assert g.waiting_for_state(NOW + 0.7)


def test_frame_pairs_with_the_state_nearest_its_stamp():
    g = gate()
    for k in (0, 1, 2, 3, 5, 6, 7, 8, 9, 4):  # 50 Hz states, the one stamped 0.08 s arrives last
        assert g.add_state(NOW + 0.02 * k, [float(k)], NOW + 0.2) is None
    assert g.pair(NOW + 0.081, NOW + 0.3).values == (4.0,)
    assert g.pair(NOW + 0.069, NOW + 0.3).values == (3.0,)
    paired = g.pair(NOW + 0.5, NOW + 0.5)  # newer than every state: the newest one
    assert paired.values == (9.0,) and paired.gap == pytest.approx(0.5 - 0.18)
    assert g.pair(NOW - 0.1, NOW).values == (0.0,)  # older than every state: the oldest one


def test_state_history_is_bounded():
    g = gate(max_frame_age=1.0, max_state_gap=0.5)
    for k in range(3 * MAX_STATE_HISTORY):  # 10 kHz: the count bound applies before the time window
        g.add_state(NOW + 1e-4 * k, [float(k)], NOW + 2.0)
    assert len(g._state.stamps) == MAX_STATE_HISTORY
    g.add_state(NOW + 100.0, [0.0], NOW + 100.0)  # states older than max_frame_age + max_state_gap are pruned
    assert len(g._state.stamps) == 1


GRIPPER = dict(state_names=("x", "y", "z", "roll", "pitch", "yaw", "gripper"), gripper_joint="panda_finger_joint1")


def test_a_gripper_dim_pairs_each_frame_with_the_pose_and_the_gripper_closedness():
    """V-JEPA 2-AC's 7-D state: the pose from /ee_pose, the gripper from its finger joint in /joint_states."""
    settings = make_settings(PerceptionSettings, GRIPPER)
    assert settings.pose_names == ("x", "y", "z", "roll", "pitch", "yaw")
    g = FrameGate(settings)
    assert g.add_state(NOW, [0.4, 0.0, 0.2, 3.14, 0.0, 0.1], NOW) is None
    assert g.pair(NOW, NOW).kind == "no_state" and g.waiting_for_state(NOW)   # no gripper yet: dropped
    names, positions = ["panda_joint1", "panda_finger_joint1"], [0.3, 0.01]
    assert g.add_gripper(NOW + 0.01, gripper_state(names, positions, settings), NOW) is None
    assert g.pair(NOW, NOW).values == pytest.approx((0.4, 0.0, 0.2, 3.14, 0.0, 0.1, 0.75))
    assert not g.waiting_for_state(NOW)
    # one hostile message each: NaN closedness, a finger position beyond the open one, a missing joint
    assert g.add_gripper(NOW, gripper_state(names, [0.3, float("nan")], settings), NOW).kind == "state_nonfinite"
    assert gripper_state(names, [0.3, 0.09], settings) == 0.0 and gripper_state(names, [0.3, -1.0], settings) == 1.0
    with pytest.raises(ValueError, match="panda_finger_joint1"):
        gripper_state(["panda_joint1"], [0.3], settings)
    # the gripper stream stops: frames are dropped again once it is older than max_state_gap
    g.add_state(NOW + 1.0, [0.4, 0.0, 0.2, 3.14, 0.0, 0.1], NOW + 1.0)
    assert g.pair(NOW + 1.0, NOW + 1.0).kind == "no_state" and g.waiting_for_state(NOW + 1.0)


def test_a_gripper_dim_needs_its_joint_and_a_pose():
    with pytest.raises(SettingsError, match="gripper_joint"):
        make_settings(PerceptionSettings, {**GRIPPER, "gripper_joint": ""})
    with pytest.raises(SettingsError, match="state_source ee_pose"):
        make_settings(PerceptionSettings, {**GRIPPER, "state_source": "joint_states"})
    with pytest.raises(SettingsError, match="must differ"):
        make_settings(PerceptionSettings, {**GRIPPER, "gripper_closed_position": 0.04})
    with pytest.raises(ValueError, match="no gripper"):
        gate().add_gripper(NOW, 0.5, NOW)


def test_stale_frames_are_dropped_and_no_state_source_means_no_state():
    g = gate(state_source="none", max_frame_age=1.0)
    assert g.pair(NOW - 1.5, NOW).kind == "stale"
    assert g.pair(NOW - 0.5, NOW) is None and not g.waiting_for_state(NOW)
    assert gate(state_source="none", max_frame_age=0.0).pair(NOW - 1e6, NOW) is None  # 0 disables


def test_pose_and_joint_state_values():
    s = 2 ** -0.5
    values = pose_state((0.1, 0.2, 0.3), (0.0, 0.0, s, s), ["z", "qw", "yaw", "x"])
    np.testing.assert_allclose(values, [0.3, s, np.pi / 2, 0.1])
    assert joint_state(["b", "a", "c"], [1.0, 2.0, 3.0], ["a", "c"]) == [2.0, 3.0]
    with pytest.raises(ValueError, match=r"\['d'\]"):
        joint_state(["b", "a"], [1.0, 2.0], ["a", "d"])
    with pytest.raises(ValueError, match="lacks"):
        joint_state(["a", "b"], [1.0], ["b"])


def test_joint_state_names_and_positions_must_have_the_same_length():
    refusal = malformed_joint_state(["a", "b", "c", "d"], [1.0, 2.0, 3.0])
    assert refusal is not None and refusal.kind == "state_malformed"
    assert "4 names but 3 positions" in refusal.message
    assert malformed_joint_state(["a", "b"], [1.0, 2.0, 3.0]).kind == "state_malformed"
    assert malformed_joint_state(["a", "b"], [1.0, 2.0]) is None
    assert malformed_joint_state(["a", "b"], []) is None   # no positions given: allowed by the definition


def test_settings_are_checked():
    defaults = PerceptionSettings()
    assert defaults.device == "auto" and defaults.state_names == ("x", "y", "z") and defaults.max_future_stamp > 0
    with pytest.raises(SettingsError, match="pose fields"):
        PerceptionSettings(state_names=("x", "wrist"))
    with pytest.raises(SettingsError, match="name the state dims"):
        PerceptionSettings(state_source="joint_states", state_names=())
    assert PerceptionSettings(state_source="none", state_names=()).state_names == ()
    with pytest.raises(SettingsError, match="crop"):
        make_settings(PerceptionSettings, {"crop": "left"})
    with pytest.raises(SettingsError, match="max_future_stamp"):
        make_settings(PerceptionSettings, {"max_future_stamp": -1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.device = "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_encoder_on_a_missing_device_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        FrameEncoder(PerceptionSettings(device="cuda"))


def test_encoder_device_auto_and_features():
    encoder = FrameEncoder(PerceptionSettings(device="auto"))
    assert encoder.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="cuda:99"):
        FrameEncoder(PerceptionSettings(device="cuda:99"))
    features = encoder.encode(np.zeros((48, 80, 3), dtype=np.uint8))
    assert features.dtype == np.float32 and features.ndim == 2 and np.isfinite(features).all()

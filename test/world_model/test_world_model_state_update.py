"""Rollout state integration: V-JEPA 2-AC's end-effector rule (position added, rotation composed, gripper clipped)
against a hand computation, the per-model choice of rule, and how checkpoints store and official files get it."""
import json
import math

import numpy as np
import pytest
import torch

from jepa_world_model import ConfigError, PredictorConfig, load_predictor, save_checkpoint
from jepa_world_model.actions import state_differences
from jepa_world_model.networks.features import layer_norm_features
from jepa_world_model.presets import EE7_ACTION, EE7_STATE, PREDICTOR_PRESETS
from jepa_world_model.networks.state_update import context_actions, next_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N, D = 64, 64
S0 = [0.4, -0.1, 0.3, 0.3, -0.2, 1.2, 0.9]  # x, y, z, roll, pitch, yaw, gripper
ACTIONS = [  # (B=2, H=3, 7): rotations of up to 15 degrees, gripper steps that hit both bounds
    [[0.01, 0.02, -0.01, 0.10, 0.15, -0.20, 0.30], [-0.02, 0.01, 0.03, -0.12, 0.05, 0.25, -0.50],
     [0.00, 0.00, 0.01, 0.20, -0.10, 0.05, 0.10]],
    [[0.03, -0.01, 0.00, -0.25, 0.20, 0.15, -1.00], [0.01, 0.01, 0.01, 0.26, -0.26, 0.26, 0.40],
     [0.02, -0.03, 0.00, 0.00, 0.10, -0.15, 0.00]],
]


def _rotation(roll, pitch, yaw):
    """R = Rz(yaw) Ry(pitch) Rx(roll): extrinsic rotations about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), \
        math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _angles(r):
    """Inverse of _rotation for |pitch| < pi/2."""
    return [math.atan2(r[2, 1], r[2, 2]), math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0])),
            math.atan2(r[1, 0], r[0, 0])]


def _hand_next(state, action):
    xyz = [s + a for s, a in zip(state[:3], action[:3])]
    rpy = _angles(_rotation(*action[3:6]) @ _rotation(*state[3:6]))
    return xyz + rpy + [min(max(state[6] + action[6], 0.0), 1.0)]


def _hand_states(actions):
    """(B, H, 7) states at every rollout step: S0, then the hand-integrated ones."""
    out = []
    for sequence in actions:
        states = [S0]
        for action in sequence[:-1]:
            states.append(_hand_next(states[-1], action))
        out.append(states)
    return torch.tensor(out, dtype=torch.float64)


@pytest.fixture(scope="module")
def ee_predictor():
    return load_predictor("tiny", action_space=EE7_ACTION, state_space=EE7_STATE, seed=5)


def _state_inputs(predictor):
    """Physical states fed to the state encoder, recorded by a forward hook."""
    seen = []
    space = predictor.state_space
    mean, std = torch.tensor(space.mean), torch.tensor(space.std)
    hook = predictor.state_encoder.register_forward_hook(lambda m, args, out: seen.append(args[0] * std + mean))
    return seen, hook


def test_ee_pose_rule_is_chosen_for_end_effector_poses(ee_predictor):
    assert ee_predictor.config.state_update == "ee_pose"
    assert ee_predictor.config.rotation_action_dims == (3, 4, 5)
    assert PREDICTOR_PRESETS["ac_vit_g"].state_update == "ee_pose"
    assert PREDICTOR_PRESETS["tiny"].state_update == "add"
    assert PredictorConfig().state_update == "add"  # generic 7-D spaces: no rotation names
    assert ee_predictor.config.replace(action_dim=3, state_dim=3).state_update == "add"
    assert ee_predictor.config.replace(state_update="add").state_update == "add"
    with pytest.raises(ConfigError, match="state_update='ee_pose' needs states with consecutive dims"):
        PREDICTOR_PRESETS["tiny"].replace(state_update="ee_pose")


def test_rollout_composes_rotations_and_clips_the_gripper_as_computed_by_hand(ee_predictor):
    actions = torch.tensor(ACTIONS, dtype=torch.float32)
    expected = _hand_states(ACTIONS)
    features = torch.randn(1, 1, N, D, generator=torch.Generator().manual_seed(1))
    state = torch.tensor([[S0]], dtype=torch.float32)

    integrated = [state[:, 0].expand(2, -1)]
    for h in range(2):
        integrated.append(next_state(ee_predictor.config, integrated[-1], actions[:, h]))
    torch.testing.assert_close(torch.stack(integrated, 1).double(), expected, atol=1e-6, rtol=0)
    assert expected[0, 1, 6] == 1.0 and expected[1, 1, 6] == 0.0 and expected[0, 2, 6] == pytest.approx(0.5)

    seen, hook = _state_inputs(ee_predictor)
    try:
        out = ee_predictor.rollout(features, state, actions)
    finally:
        hook.remove()
    assert len(seen) == 3  # one state token per rollout step
    fed = torch.cat([seen[0].expand(2, -1, -1), seen[1], seen[2]], dim=1)
    torch.testing.assert_close(fed.double(), expected, atol=1e-6, rtol=0)

    # adding the Euler deltas instead would be off by more than 1e-3 from step 2 on
    added = torch.tensor(S0[3:6]) + actions[:, 0, 3:6]
    assert (added.double() - expected[:, 1, 3:6]).abs().max() > 1e-3

    # the predictions are the teacher-forced model's on those states and the fed-back frames
    frames = torch.cat([features.expand(2, -1, -1, -1), out[:, :2]], dim=1)
    with torch.no_grad():
        teacher = layer_norm_features(ee_predictor(frames, actions, expected.float()))
    torch.testing.assert_close(out, teacher, atol=2e-5, rtol=1e-4)
    prepared = ee_predictor.prepare_context(features, state)
    torch.testing.assert_close(prepared.rollout(actions), out, atol=1e-5, rtol=1e-5)


def test_context_actions_are_relative_rotations(ee_predictor):
    states = _hand_states(ACTIONS)[:1].float()  # (1, 3, 7) context: gripper 0.9 -> 1.0 -> 0.5
    derived = context_actions(ee_predictor.config, states)[0].double()
    for t in range(2):
        s0, s1 = states[0, t].double().tolist(), states[0, t + 1].double().tolist()
        rel = _angles(_rotation(*s1[3:6]) @ _rotation(*s0[3:6]).T)
        hand = [b - a for a, b in zip(s0[:3], s1[:3])] + rel + [s1[6] - s0[6]]
        torch.testing.assert_close(derived[t], torch.tensor(hand, dtype=torch.float64), atol=1e-6, rtol=0)
    # the same actions the training data gets from recorded states
    names = ee_predictor.state_space.names
    torch.testing.assert_close(derived, torch.from_numpy(state_differences(states[0].numpy(), names)),
                               atol=1e-6, rtol=0)
    # integrating them gives the states back (inside the gripper range)
    torch.testing.assert_close(next_state(ee_predictor.config, states[:, 0], derived[None, 0].float()),
                               states[:, 1], atol=1e-6, rtol=0)


def test_state_update_is_stored_in_checkpoints_and_official_files_get_the_reference_rule(tmp_path, ee_predictor):
    out = save_checkpoint(tmp_path / "ck", predictor=ee_predictor)
    assert json.loads((out / "config.json").read_text())["predictor"]["state_update"] == "ee_pose"
    assert load_predictor(out).config.state_update == "ee_pose"
    add = save_checkpoint(tmp_path / "add", predictor=load_predictor(out, state_update="add"))
    assert load_predictor(add).config.state_update == "add"

    official = tmp_path / "ac.pt"
    torch.save({"predictor": {"module.backbone." + k: v for k, v in ee_predictor.state_dict().items()}}, official)
    loaded = load_predictor(official)  # preset ac_vit_g: the reference's 7-D end-effector layout
    assert loaded.config.state_update == "ee_pose" and loaded.state_space.names == EE7_STATE.names
    xyz = tmp_path / "xyz.pt"
    torch.save({"predictor": load_predictor("tiny").state_dict()}, xyz)
    assert load_predictor(xyz).config.state_update == "add"  # 3-D actions: the preset's spaces do not apply

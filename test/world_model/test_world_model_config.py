"""Config dataclasses: validation, JSON round trips, overrides, action -> state mapping."""
import json

import pytest

from jepa_world_model import ActionSpace, ConfigError, EncoderConfig, PredictorConfig, StateSpace
from jepa_world_model.presets import ENCODER_PRESETS, PREDICTOR_PRESETS


def test_presets_carry_the_published_sizes():
    sizes = {name: (c.width, c.depth, c.num_heads, c.mlp_hidden) for name, c in ENCODER_PRESETS.items()}
    assert sizes["vit_l"] == (1024, 24, 16, 4096)
    assert sizes["vit_h"] == (1280, 32, 16, 5120)
    assert sizes["vit_g"] == (1408, 40, 22, 6144)
    assert ENCODER_PRESETS["vit_g_384"].crop_size == 384 and ENCODER_PRESETS["vit_l"].grid_size == 16
    ac = PREDICTOR_PRESETS["ac_vit_g"]
    assert (ac.width, ac.depth, ac.num_heads, ac.embed_dim, ac.action_dim, ac.state_dim) == (1024, 24, 16, 1408, 7, 7)
    assert ac.action_to_state == tuple(range(7))


@pytest.mark.parametrize("config", [*ENCODER_PRESETS.values(), *PREDICTOR_PRESETS.values()])
def test_json_round_trip(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config


def test_space_validation():
    with pytest.raises(ConfigError, match="ActionSpace.units has 1 entries, names has 2"):
        ActionSpace(("a", "b"), ("m",), (0, 0), (1, 1), (0, 0), (1, 1))
    with pytest.raises(ConfigError, match=r"StateSpace.low\[0\]=2.0 exceeds high\[0\]=1.0 \(x\)"):
        StateSpace(("x",), ("m",), (2,), (1,), (0,), (1,))
    with pytest.raises(ConfigError, match=r"std\[0\]=0.0 must be > 0"):
        StateSpace(("x",), ("m",), (0,), (1,), (0,), (0,))
    with pytest.raises(ConfigError, match="unknown ActionSpace field"):
        ActionSpace.from_dict({"names": ["a"], "unit": ["m"]})


def test_action_to_state_mapping_by_name():
    joints = StateSpace.generic(4, "q")
    deltas = ActionSpace(("dq1", "dq3"), ("rad",) * 2, (-1, -1), (1, 1), (0, 0), (1, 1))
    cfg = PredictorConfig(action_space=deltas, state_space=joints)
    assert cfg.action_to_state == (1, 3)
    with pytest.raises(ConfigError, match="action_to_state"):
        PredictorConfig(action_space=deltas, state_space=joints, action_to_state=(0, 9))


def test_encoder_and_predictor_validation():
    with pytest.raises(ConfigError, match="not divisible by num_heads"):
        EncoderConfig(width=100, num_heads=16)
    with pytest.raises(ConfigError, match="crop_size=250 is not divisible by patch_size=16"):
        EncoderConfig(crop_size=250)
    with pytest.raises(ConfigError, match="state_update"):
        PREDICTOR_PRESETS["tiny"].replace(state_update="integrate")
    with pytest.raises(ConfigError, match="action_dim=4 conflicts"):
        PREDICTOR_PRESETS["tiny"].replace(action_dim=4, action_space=ActionSpace.default(3))
    swapped = PREDICTOR_PRESETS["tiny"].replace(action_dim=7, state_dim=7)
    assert swapped.action_space == ActionSpace.generic(7, "a") and swapped.action_to_state == tuple(range(7))

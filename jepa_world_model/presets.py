"""Named architecture presets (sizes from the V-JEPA 2 paper/repository) and a tiny one for tests and CPU.

A preset fixes the architecture; ``load_encoder("vit_l")`` gives randomly initialised weights (seeded), the
pretrained weights come from an official ``.pt`` file or a Hugging Face id (``HF_IDS``).
"""
from __future__ import annotations

import math

from jepa_world_model.config import ActionSpace, EncoderConfig, PredictorConfig, StateSpace
from jepa_world_model.errors import ConfigError

_ROT = math.radians(15.0)

#: 7-D end-effector pose (xyz, extrinsic Euler angles, gripper) as in V-JEPA 2-AC / DROID.
EE7_STATE = StateSpace(
    names=("x", "y", "z", "roll", "pitch", "yaw", "gripper"),
    units=("m", "m", "m", "rad", "rad", "rad", "1"),
    low=(-1.5, -1.5, -1.5, -math.pi, -math.pi, -math.pi, 0.0),
    high=(1.5, 1.5, 1.5, math.pi, math.pi, math.pi, 1.0),
    mean=(0.0,) * 7,
    std=(1.0,) * 7,
)
#: 7-D end-effector delta (difference of consecutive EE7 states); bounds follow the public planning defaults.
EE7_ACTION = ActionSpace(
    names=("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper"),
    units=("m", "m", "m", "rad", "rad", "rad", "1"),
    low=(-0.075, -0.075, -0.075, -_ROT, -_ROT, -_ROT, -1.0),
    high=(0.075, 0.075, 0.075, _ROT, _ROT, _ROT, 1.0),
    mean=(0.0,) * 7,
    std=(1.0,) * 7,
)

ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "tiny": EncoderConfig(name="tiny", patch_size=8, tubelet_size=2, crop_size=64, width=64, depth=2,
                          num_heads=4, mlp_hidden=256, resize_mode="if_needed"),
    "vit_l": EncoderConfig(name="vit_l", width=1024, depth=24, num_heads=16, mlp_hidden=4096),
    "vit_h": EncoderConfig(name="vit_h", width=1280, depth=32, num_heads=16, mlp_hidden=5120),
    "vit_g": EncoderConfig(name="vit_g", width=1408, depth=40, num_heads=22, mlp_hidden=6144),
    "vit_g_384": EncoderConfig(name="vit_g_384", crop_size=384, width=1408, depth=40, num_heads=22,
                               mlp_hidden=6144),
}

PREDICTOR_PRESETS: dict[str, PredictorConfig] = {
    "tiny": PredictorConfig(name="tiny", embed_dim=64, width=64, depth=2, num_heads=4, mlp_hidden=256,
                            grid_size=(8, 8), max_steps=8, action_space=ActionSpace.default(3),
                            state_space=StateSpace.default(3)),
    "ac_vit_g": PredictorConfig(name="ac_vit_g", embed_dim=1408, width=1024, depth=24, num_heads=16,
                                mlp_hidden=4096, grid_size=(16, 16), max_steps=32, action_space=EE7_ACTION,
                                state_space=EE7_STATE, extrinsics_dim=6, state_update="ee_pose"),
}

#: Hugging Face hub ids of the released encoders, by preset.
HF_IDS: dict[str, str] = {
    "vit_l": "facebook/vjepa2-vitl-fpc64-256",
    "vit_h": "facebook/vjepa2-vith-fpc64-256",
    "vit_g": "facebook/vjepa2-vitg-fpc64-256",
    "vit_g_384": "facebook/vjepa2-vitg-fpc64-384",
}


def encoder_preset(name: str) -> EncoderConfig:
    """The encoder preset ``name``; unknown names raise :class:`ConfigError` listing the known ones."""
    if name not in ENCODER_PRESETS:
        raise ConfigError(f"unknown encoder preset {name!r}; known presets: {sorted(ENCODER_PRESETS)}")
    return ENCODER_PRESETS[name]


def predictor_preset(name: str) -> PredictorConfig:
    """The predictor preset ``name``; unknown names raise :class:`ConfigError` listing the known ones."""
    if name not in PREDICTOR_PRESETS:
        raise ConfigError(f"unknown predictor preset {name!r}; known presets: {sorted(PREDICTOR_PRESETS)}")
    return PREDICTOR_PRESETS[name]


def encoder_preset_for_width(width: int) -> EncoderConfig:
    """The first encoder preset with this width (fills in the head count and crop of official files)."""
    for config in ENCODER_PRESETS.values():
        if config.width == width:
            return config
    known = ", ".join(f"{name} {p.width}" for name, p in ENCODER_PRESETS.items())
    raise ConfigError(f"encoder width {width} matches no preset ({known})")

"""Encoder: input layouts, preprocessing, errors, model_id (tiny preset, CPU)."""
import pytest
import torch
import torch.nn.functional as F

from jepa_world_model import ConfigError, Encoder, EncoderConfig, InputError, load_encoder
from jepa_world_model.networks.preprocessing import preprocess


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return load_encoder("tiny")


def _images(batch: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=gen)


def test_tiny_preset_shapes_and_attributes(encoder):
    assert isinstance(encoder.config, EncoderConfig)
    assert encoder.embed_dim == 64
    assert encoder.num_tokens(64) == 64
    assert encoder.num_tokens((64, 64), num_frames=4) == 128
    with torch.no_grad():
        out = encoder(_images())
    assert out.shape == (2, encoder.num_tokens(64), encoder.embed_dim)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_layouts_and_dtypes_agree(encoder):
    images = _images()
    with torch.no_grad():
        hwc = encoder(images)
        chw = encoder(images.permute(0, 3, 1, 2))
        unit = encoder(images.float() / 255.0)
        clip = encoder(images[:, None])
    torch.testing.assert_close(hwc, chw, rtol=0, atol=0)
    torch.testing.assert_close(hwc, unit, rtol=0, atol=1e-5)
    torch.testing.assert_close(hwc, clip, rtol=0, atol=0)


def test_single_image_is_repeated_to_fill_a_tubelet(encoder):
    images = _images()
    pair = images[:, None].expand(-1, 2, -1, -1, -1)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), encoder(pair), rtol=0, atol=1e-6)
        clip = encoder(torch.cat([pair, _images(seed=1)[:, None].expand(-1, 2, -1, -1, -1)], dim=1))
    assert clip.shape == (2, 128, 64)
    # tokens attend across tubelets: the first tubelet in a clip differs from that tubelet encoded alone
    assert not torch.allclose(clip[:, :64], encoder(images).detach(), atol=1e-3)


def test_preprocessing_normalises_and_resizes():
    cfg = EncoderConfig(patch_size=8, crop_size=32, width=32, depth=1, num_heads=2, mlp_hidden=64)
    grey = torch.full((1, 3, 40, 60), 0.5)
    pixels = preprocess(grey, cfg)
    assert pixels.shape == (1, 3, 2, 32, 32)
    expected = (0.5 - torch.tensor(cfg.mean)) / torch.tensor(cfg.std)
    torch.testing.assert_close(pixels[0, :, 0, 5, 5], expected)
    # short side to int(32 * 256/224) = 36, long side scaled to 54, then the centre 32x32
    ramp = torch.linspace(0, 1, 60).view(1, 1, 1, 60).expand(1, 3, 40, 60)
    ref = F.interpolate(ramp, size=(36, 54), mode="bilinear", align_corners=False, antialias=True)[..., 2:34, 11:43]
    ref = (ref - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    torch.testing.assert_close(preprocess(ramp, cfg)[:, :, 0], ref)


def test_resize_modes(encoder):
    big = _images(size=96)
    with torch.no_grad():
        assert encoder(big).shape == (2, 64, 64)  # if_needed: resized + cropped
    strict = load_encoder("tiny", resize_mode="none")
    with pytest.raises(InputError, match="96x96 != crop size 64x64"):
        strict(big)
    with pytest.raises(InputError, match="resize_mode='none'"):
        strict.num_tokens(96)
    always = load_encoder("tiny", resize_mode="short_side")
    with torch.no_grad():
        assert not torch.allclose(always(_images()), encoder(_images()))


def test_output_layer_norm():
    enc = load_encoder("tiny", output_layer_norm=True)
    with torch.no_grad():
        out = enc(_images())
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 64), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(2, 64), atol=1e-3, rtol=0)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 4, 64, 64), "3 colour channels"),
    (torch.zeros(2, 64, 64, 1, dtype=torch.uint8), "3 colour channels"),
    (torch.zeros(64, 64, 3, dtype=torch.uint8), r"add a batch dim"),
    (torch.zeros(2, 3, 3, 64, 64), "not a multiple of the tubelet size"),
    (torch.full((1, 3, 64, 64), 2.0), r"must be in \[0, 1\]"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.int32), "uint8 or floating point"),
])
def test_bad_inputs_raise(encoder, bad, message):
    with pytest.raises(InputError, match=message):
        encoder(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_inf_input_raises(encoder, value):
    x = torch.rand(1, 3, 64, 64)
    x[0, 1, 3, 4] = value
    with pytest.raises(InputError, match="NaN or Inf"):
        encoder(x)


def test_unknown_preset_and_override_raise():
    with pytest.raises(ConfigError, match="unknown preset or model source 'vit_x'"):
        load_encoder("vit_x")
    with pytest.raises(ConfigError, match="unknown EncoderConfig field"):
        load_encoder("tiny", widht=32)
    with pytest.raises(ConfigError, match="resize_mode"):
        load_encoder("tiny", resize_mode="stretch")


def test_model_id_tracks_weights_and_preprocessing_not_dtype():
    a, b = load_encoder("tiny"), load_encoder("tiny")
    assert a.model_id == b.model_id and len(a.model_id) == 16
    assert load_encoder("tiny", seed=1).model_id != a.model_id
    assert load_encoder("tiny", output_layer_norm=True).model_id != a.model_id
    assert b.to(torch.bfloat16).model_id == a.model_id
    with torch.no_grad():
        b.norm.bias.add_(0.5)
    assert b.model_id != a.model_id


def test_bfloat16_encoder_runs_close_to_fp32(encoder):
    half = load_encoder("tiny").to(torch.bfloat16)
    with torch.no_grad():
        out = half(_images())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), encoder(_images()).detach(), atol=0.15, rtol=0.05)

"""Hugging Face interop: numerical equivalence with transformers' VJEPA2Model, name mapping, loading, offline."""
import pytest
import torch

from jepa_world_model import ConfigError, ModelNotAvailableError, load_encoder, load_predictor
from jepa_world_model.checkpoints.hf import hf_to_ours, ours_to_hf

transformers = pytest.importorskip("transformers")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hf_config():
    return transformers.VJEPA2Config(
        patch_size=8, crop_size=64, frames_per_clip=4, tubelet_size=2, hidden_size=64, num_attention_heads=4,
        num_hidden_layers=2, mlp_ratio=4.0, pred_hidden_size=32, pred_num_attention_heads=2,
        pred_num_hidden_layers=1)


@pytest.fixture(scope="module")
def pair():
    """Our tiny encoder with large random weights (so attention and RoPE matter) and an HF model sharing them."""
    encoder = load_encoder("tiny", resize_mode="none")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in encoder.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
    hf = transformers.VJEPA2Model(_hf_config()).eval()
    missing, unexpected = hf.load_state_dict(ours_to_hf(encoder.state_dict()), strict=False)
    assert unexpected == [] and all(k.startswith("predictor.") for k in missing)
    return encoder, hf


def _hf_features(hf, pixels):
    with torch.no_grad():
        return hf(pixel_values_videos=pixels, skip_predictor=True).last_hidden_state


def test_image_features_match_transformers(pair):
    encoder, hf = pair
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    pixels = (images.permute(0, 3, 1, 2)[:, None].float() / 255.0 - MEAN) / STD
    expected = _hf_features(hf, pixels.repeat(1, 2, 1, 1, 1))
    with torch.no_grad():
        ours = encoder(images)
    assert ours.shape == expected.shape == (2, 64, 64)
    assert (ours - expected).abs().max() < 1e-4
    assert (expected[0] - expected[1]).abs().mean() > 0.05  # non-trivial features


def test_clip_features_match_transformers(pair):
    encoder, hf = pair
    clip = torch.rand(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    expected = _hf_features(hf, (clip - MEAN) / STD)
    with torch.no_grad():
        ours = encoder(clip)
    assert ours.shape == expected.shape == (2, 128, 64)
    assert (ours - expected).abs().max() < 1e-4


def test_weight_name_mapping_round_trips(pair):
    encoder, hf = pair
    ours = encoder.state_dict()
    mapped = ours_to_hf(ours)
    assert "encoder.layer.1.attention.query.weight" in mapped
    assert mapped["encoder.layer.0.attention.key.bias"].shape == (64,)
    assert mapped.keys() == {k for k in hf.state_dict() if k.startswith("encoder.")}
    back = hf_to_ours(hf.state_dict())
    assert back.keys() == ours.keys()
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def test_load_encoder_from_local_hf_directory(tmp_path, pair):
    encoder, hf = pair
    hf.save_pretrained(tmp_path / "hfmodel")
    loaded = load_encoder(tmp_path / "hfmodel", resize_mode="none")
    cfg = loaded.config
    sizes = (cfg.width, cfg.depth, cfg.num_heads, cfg.mlp_hidden, cfg.patch_size, cfg.crop_size)
    assert sizes == (64, 2, 4, 256, 8, 64)
    images = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), encoder(images), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="no action-conditioned predictor"):
        load_predictor(tmp_path / "hfmodel")


def test_uncached_hub_id_offline_raises_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as info:
        load_encoder("jepa-ros-tests/vjepa2-not-cached-anywhere")
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download jepa-ros-tests/vjepa2-not-cached-anywhere --local-dir DIR" in message
    assert "pass DIR" in message


def test_layer_norm_eps_comes_from_the_hf_config(tmp_path, pair):
    encoder, _ = pair
    config = _hf_config()
    config.layer_norm_eps = 0.5  # large enough to change the features
    hf = transformers.VJEPA2Model(config).eval()
    hf.load_state_dict(ours_to_hf(encoder.state_dict()), strict=False)
    hf.save_pretrained(tmp_path / "eps")
    loaded = load_encoder(tmp_path / "eps", resize_mode="none")
    assert loaded.config.layer_norm_eps == 0.5
    clip = torch.rand(1, 2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours, default_eps = loaded(clip), encoder(clip)
    expected = _hf_features(hf, (clip - MEAN) / STD)
    assert (ours - expected).abs().max() < 1e-5
    assert (default_eps - expected).abs().max() > 1e-3  # the eps matters

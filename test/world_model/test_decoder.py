"""The picture decoder as a module: shapes, dtypes and range, size and speed, its checkpoint round-trip, where it
is found, the refusal of another encoder's features, the encoder crop it is trained on, PSNR and picture strips."""
import time

import numpy as np
import pytest
import torch

from jepa_world_model.checkpoints.decoder_loading import (DECODER_DIR, DecoderMismatchError, check_decoder,
                                                          find_decoder, load_decoder, save_decoder)
from jepa_world_model.checkpoints.files import save_checkpoint
from jepa_world_model.config import EncoderConfig
from jepa_world_model.errors import ConfigError, InputError, ModelNotAvailableError
from jepa_world_model.evaluation.pictures import save_png, strip
from jepa_world_model.networks.decoder import DecoderConfig, FeatureDecoder, encoder_crop, psnr
from jepa_world_model.networks.encoder import load_encoder
from jepa_world_model.training.decoder import DecoderTrainConfig, DecoderTrainingError

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def encoder():
    """The shipped sim models' encoder: 16 tokens of 64 features for a 64 px image (one image -> one tubelet)."""
    return load_encoder("default")


@pytest.fixture(scope="module")
def decoder(encoder):
    torch.manual_seed(0)
    return FeatureDecoder(DecoderConfig.for_encoder(encoder))


def test_config_follows_the_encoder_and_round_trips(encoder, decoder):
    config = decoder.config
    sizes = (config.embed_dim, config.grid, config.image_size, config.patch_size, config.frames)
    assert sizes == (64, (4, 4), 64, 16, 1)
    assert config.num_tokens == encoder.num_tokens() == 16
    assert config.encoder_id == encoder.model_id == decoder.encoder_id
    assert DecoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown DecoderConfig"):
        DecoderConfig.from_dict({**config.to_dict(), "colour": 1})
    with pytest.raises(ConfigError, match="does not cover"):
        DecoderConfig(embed_dim=64, grid=(4, 4), image_size=60, patch_size=16)


def test_forward_and_decode_images_shapes_dtypes_range(encoder, decoder):
    with torch.no_grad():
        features = encoder(torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8))
    pixels = decoder(features)
    assert pixels.shape == (3, 3, 64, 64) and pixels.dtype == torch.float32
    assert 0.0 <= pixels.min().item() and pixels.max().item() <= 1.0
    pictures = decoder.decode_images(features)
    assert pictures.shape == (3, 64, 64, 3) and pictures.dtype == np.uint8
    single = decoder.decode_images(features[1])                        # (N, D) -> one picture
    assert single.shape == (1, 64, 64, 3)
    assert np.array_equal(single[0], pictures[1])
    assert np.array_equal(decoder.decode_images(features.numpy()), pictures)   # numpy in, same pictures
    assert np.array_equal(decoder.decode_images(features.double()), pictures)  # any dtype in
    with pytest.raises(InputError, match="16, 64"):
        decoder(features[:, :8])


def test_small_and_fast_on_the_cpu(encoder, decoder):
    assert sum(p.numel() for p in decoder.parameters()) < 1_000_000
    with torch.no_grad():
        features = encoder(torch.zeros(8, 64, 64, 3, dtype=torch.uint8))
    decoder.decode_images(features)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        decoder.decode_images(features)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.05, times   # a few ms on an idle core; generous for a busy shared machine


def test_save_load_round_trip_and_where_it_is_found(tmp_path, encoder, decoder):
    directory = save_decoder(tmp_path / "dec", decoder, {"note": "test"})
    loaded = load_decoder(directory)
    assert loaded.config == decoder.config and loaded.metadata == {"note": "test"}
    with torch.no_grad():
        features = encoder(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert np.array_equal(loaded.decode_images(features), decoder.decode_images(features))
    # a model directory carries it in decoder/; a model without one has none
    model = save_checkpoint(tmp_path / "model", encoder=encoder)
    assert find_decoder(model) is None and find_decoder("tiny") is None and find_decoder(tmp_path / "nowhere") is None
    with pytest.raises(ModelNotAvailableError, match="train-decoder"):
        load_decoder(model)
    save_decoder(model / DECODER_DIR, decoder)
    assert find_decoder(model).config == decoder.config


def test_another_encoders_features_are_refused(encoder, decoder):
    check_decoder(decoder, encoder)
    other = load_encoder("tiny", patch_size=16, crop_size=64, seed=1, output_layer_norm=True)
    assert (other.embed_dim, other.num_tokens()) == (encoder.embed_dim, encoder.num_tokens())
    with pytest.raises(DecoderMismatchError, match=f"trained on encoder {encoder.model_id}, not on {other.model_id}"):
        check_decoder(decoder, other)


def test_encoder_crop_is_what_the_encoder_sees():
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert np.array_equal(encoder_crop(frames, EncoderConfig(crop_size=64, resize_mode="if_needed")), frames)
    wide = np.zeros((1, 40, 80, 3), dtype=np.uint8)
    wide[:, :, 20:60] = 200
    crop = encoder_crop(wide, EncoderConfig(crop_size=32, resize_mode="short_side", resize_ratio=1.0))
    assert crop.shape == (1, 32, 32, 3) and crop.dtype == np.uint8
    assert crop[0, 16, 16, 0] == 200


def test_psnr():
    target = np.full((2, 4, 4, 3), 100, dtype=np.uint8)
    off = target.copy()
    off[1] += 10                                                       # MSE 100 -> 10 log10(255^2 / 100)
    values = psnr(off, target)
    assert values[0] > 90 and values[1] == pytest.approx(10 * np.log10(255 ** 2 / 100))


def test_strip_lays_out_labelled_rows(tmp_path):
    red = np.zeros((8, 8, 3), dtype=np.uint8)
    red[..., 0] = 255
    picture = strip([[red, red, red], [red, None]], ["imagined", "actual"], ["now", "t+1", "end"], scale=3)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] > 3 * 24 and picture.shape[0] > 2 * 24
    assert (picture.reshape(-1, 3) == (255, 0, 0)).all(axis=1).sum() == 4 * 24 * 24   # 4 cells, 1 blank
    assert save_png(picture, tmp_path / "a" / "strip.png").stat().st_size > 0
    with pytest.raises(ValueError, match="uint8"):
        strip([[red.astype(np.float32)]])


def test_train_decoder_takes_an_encoder_or_a_model_not_both():
    with pytest.raises(DecoderTrainingError, match="not both"):
        DecoderTrainConfig(data=["x"], out="y", encoder="tiny", model="default")


def test_train_decoder_options_come_from_its_settings():
    import argparse

    from jepa_common.settings import settings_fields
    from jepa_common.settings_cli import option_name
    from jepa_world_model.training import decoder as recipe

    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    help_text = parser.format_help()
    assert all(option_name(f) in help_text for f in settings_fields(DecoderTrainConfig))
    args = parser.parse_args(["data", "--out", "o", "--model", "push_default", "--steps", "5"])
    config = recipe.config_from_args(args)
    assert (config.model, config.encoder, config.steps, config.batch_size) == ("push_default", None, 5, 32)
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "--out", "o", "--model", "default", "--encoder", "tiny"])

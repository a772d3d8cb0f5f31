"""The decoders shipped with the sim models: found by model name, fit their model's encoder, small, no path of the
build machine in their config.json, and on held-out sim frames (seeds no build used) their pictures are closer to
the frames than the mean frame is."""
import json

import numpy as np
import pytest
import torch

from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
from jepa_world_model.checkpoints.decoder_loading import DECODER_DIR, check_decoder, find_decoder
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.data.dataset import load_episodes
from jepa_world_model.networks.decoder import encoder_crop, psnr
from jepa_world_model.networks.encoder import load_encoder
from test.world_model.test_shipped_models import machine_path, strings

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]

MODELS = {"default": "reach", "push_default": "push"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_decoder_loads_fits_and_is_small(name):
    decoder = find_decoder(name)
    assert decoder is not None
    check_decoder(decoder, load_encoder(name))
    directory = resolve_model_source(name) / DECODER_DIR
    assert sum(f.stat().st_size for f in directory.iterdir()) < 2 * 2**20
    config = json.loads((directory / "config.json").read_text())
    found = [(where, text) for where, text in strings(config) if machine_path(text)]
    assert not found, f"{name}: machine paths in decoder/config.json: {found}"
    assert decoder.metadata["verdict"]["better_than_mean_frame"], decoder.metadata["verdict"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_decoder_beats_the_mean_frame_on_new_frames(name, tmp_path):
    task = MODELS[name]
    record_sim_episodes(tmp_path, 2, steps=10, seed=900, config=SimRecordingConfig(task=task))
    episodes, skipped = load_episodes([tmp_path])
    assert len(episodes) == 2 and not skipped
    encoder, decoder = load_encoder(name), find_decoder(name)
    frames = encoder_crop(np.concatenate([e.frames for e in episodes]), encoder.config)
    with torch.no_grad():
        pictures = decoder.decode_images(encoder(torch.from_numpy(frames)))
    ours = psnr(pictures, frames).mean()
    mean_frame = psnr(np.broadcast_to(frames.mean(axis=0).round().astype(np.uint8), frames.shape), frames).mean()
    print(f"{name}: decoded {ours:.2f} dB, mean frame {mean_frame:.2f} dB")
    assert ours > mean_frame + 1.0, (ours, mean_frame)

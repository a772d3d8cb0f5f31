"""Checkpoints: our directory format and official-format .pt files (prefixes, strictness, pickle refusal)."""
import json

import pytest
import torch

from jepa_world_model import (CheckpointError, ConfigError, load_encoder, load_predictor, read_checkpoint_config,
                              save_checkpoint)

PREFIX = "module.backbone."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models():
    return load_encoder("tiny", seed=3), load_predictor("tiny", seed=4)


def _inputs():
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=gen)
    return image, torch.randn(1, 1, 64, 64, generator=gen), torch.zeros(1, 1, 3), torch.randn(4, 2, 3, generator=gen)


def _assert_same_outputs(enc_a, enc_b, pred_a, pred_b):
    image, feats, state, actions = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(enc_a(image), enc_b(image), rtol=0, atol=0)
    torch.testing.assert_close(pred_a.rollout(feats, state, actions), pred_b.rollout(feats, state, actions),
                               rtol=0, atol=0)


def test_roundtrip_our_format(tmp_path, models):
    encoder, predictor = models
    out = save_checkpoint(tmp_path / "ck", encoder=encoder, predictor=predictor, metadata={"epochs": 2})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = read_checkpoint_config(out)
    assert config["format"] == "jepa_ros/1" and config["encoder_id"] == encoder.model_id
    assert config["metadata"] == {"epochs": 2}
    assert config["predictor"]["action_space"]["names"] == ["dx", "dy", "dz"]
    enc2, pred2 = load_encoder(out), load_predictor(out)
    assert enc2.config == encoder.config and pred2.config == predictor.config
    assert enc2.model_id == encoder.model_id and pred2.encoder_id == encoder.model_id
    assert not enc2.training and not pred2.training
    _assert_same_outputs(encoder, enc2, predictor, pred2)


def test_partial_checkpoints(tmp_path, models):
    encoder, predictor = models
    only_pred = save_checkpoint(tmp_path / "p", predictor=predictor, metadata={"encoder_id": "abc"})
    assert load_predictor(only_pred).encoder_id == "abc"
    with pytest.raises(CheckpointError, match="has no encoder"):
        load_encoder(only_pred)
    only_enc = save_checkpoint(tmp_path / "e", encoder=encoder)
    with pytest.raises(CheckpointError, match="has no predictor"):
        load_predictor(only_enc)
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "x", encoder=encoder, metadata={"bad": object()})


def test_overrides_apply_to_loaded_checkpoints(tmp_path, models):
    encoder, predictor = models
    out = save_checkpoint(tmp_path / "ck", encoder=encoder, predictor=predictor)
    assert load_encoder(out, output_layer_norm=True).config.output_layer_norm
    assert load_predictor(out, max_steps=4).max_horizon == 4


def _official(encoder, predictor, prefix=PREFIX, encoder_key="encoder"):
    return {encoder_key: {prefix + k: v.clone() for k, v in encoder.state_dict().items()},
            "predictor": {prefix + k: v.clone() for k, v in predictor.state_dict().items()},
            "epoch": 7, "lr": 1e-4}


def test_official_format_loads_through_both_loaders(tmp_path, models):
    encoder, predictor = models
    path = tmp_path / "official.pt"
    torch.save(_official(encoder, predictor), path)
    enc2, pred2 = load_encoder(path), load_predictor(path, preset="tiny")
    assert enc2.config.width == 64 and enc2.config.num_heads == 4 and enc2.config.patch_size == 8
    assert pred2.config.depth == 2 and pred2.config.action_dim == 3
    assert enc2.model_id == encoder.model_id
    _assert_same_outputs(encoder, enc2, predictor, pred2)
    target = tmp_path / "target.pt"
    torch.save(_official(encoder, predictor, prefix="module.", encoder_key="target_encoder"), target)
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(target)(_inputs()[0]), encoder(_inputs()[0]), rtol=0, atol=0)


def test_official_encoder_unused_pos_embed_is_dropped(tmp_path, models):
    encoder, predictor = models
    data = _official(encoder, predictor)
    data["encoder"][PREFIX + "pos_embed"] = torch.zeros(1, 64, 64)
    torch.save(data, tmp_path / "with_pos.pt")
    assert load_encoder(tmp_path / "with_pos.pt").model_id == encoder.model_id


def test_official_predictor_with_extrinsics_encoder_loads_strictly(tmp_path):
    encoder = load_encoder("tiny")
    predictor = load_predictor("tiny", extrinsics_dim=2)
    path = tmp_path / "ac.pt"
    torch.save(_official(encoder, predictor), path)
    loaded = load_predictor(path, preset="tiny")
    assert loaded.config.extrinsics_dim == 2 and "extrinsics_encoder.weight" in loaded.state_dict()


@pytest.mark.parametrize("part, edit, key", [
    ("encoder", "missing", "blocks.1.mlp.fc2.bias"),
    ("encoder", "extra", "blocks.0.attn.rel_pos"),
    ("encoder", "shape", "norm.weight"),
    ("predictor", "missing", "predictor_proj.weight"),
    ("predictor", "extra", "mask_tokens"),
    ("predictor", "shape", "predictor_blocks.0.norm2.bias"),
])
def test_official_key_errors_name_the_key(tmp_path, models, part, edit, key):
    data = _official(*models)
    weights = data[part]
    if edit == "missing":
        del weights[PREFIX + key]
    elif edit == "extra":
        weights[PREFIX + key] = torch.zeros(3)
    else:
        weights[PREFIX + key] = torch.zeros(5)
    path = tmp_path / "bad.pt"
    torch.save(data, path)
    loader = load_encoder if part == "encoder" else (lambda p: load_predictor(p, preset="tiny"))
    wording = {"missing": "missing key", "extra": "unexpected key", "shape": "mis-shaped key"}[edit]
    with pytest.raises(CheckpointError, match=wording) as info:
        loader(path)
    assert key in str(info.value)


class _NeedsPickle:
    pass


def test_pickle_code_is_refused(tmp_path, models):
    data = _official(*models)
    data["optimizer_factory"] = _NeedsPickle()
    path = tmp_path / "unsafe.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="pickle code execution"):
        load_encoder(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_encoder(tmp_path / "junk.pt")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="neither a jepa_ros checkpoint"):
        load_predictor(tmp_path / "dir")
    torch.save({"something": {"a": torch.zeros(1)}}, tmp_path / "nokey.pt")
    with pytest.raises(CheckpointError, match="predictor"):
        load_predictor(tmp_path / "nokey.pt", preset="tiny")


def test_official_width_without_a_preset_needs_the_head_count(tmp_path):
    """Heads cannot be read from weights: a width no preset has is refused instead of guessed."""
    encoder = load_encoder("tiny", width=48, num_heads=4, mlp_hidden=192, seed=1)
    predictor = load_predictor("tiny", width=48, num_heads=4, mlp_hidden=192, seed=2)
    path = tmp_path / "odd.pt"
    torch.save(_official(encoder, predictor), path)
    with pytest.raises(ConfigError, match=r"predictor width 48 matches no preset .*num_heads=N.*--predictor-heads"):
        load_predictor(path, preset="tiny")
    with pytest.raises(ConfigError, match=r"encoder width 48 matches no preset .*num_heads=N.*--encoder-heads"):
        load_encoder(path)
    enc2 = load_encoder(path, num_heads=4, crop_size=64, resize_mode="if_needed")
    pred2 = load_predictor(path, preset="tiny", num_heads=4)
    _assert_same_outputs(encoder, enc2, predictor, pred2)
    wrong = load_predictor(path, preset="tiny", num_heads=3)  # what a guess would give: loads, predicts otherwise
    _, feats, state, actions = _inputs()
    assert (wrong.rollout(feats, state, actions) - predictor.rollout(feats, state, actions)).abs().max() > 1e-4


def test_layer_norm_eps_follows_the_source_format(tmp_path):
    encoder = load_encoder("tiny", layer_norm_eps=1e-5)
    predictor = load_predictor("tiny", layer_norm_eps=1e-5)
    ours = save_checkpoint(tmp_path / "ck", encoder=encoder, predictor=predictor)
    assert load_encoder(ours).config.layer_norm_eps == load_predictor(ours).config.layer_norm_eps == 1e-5
    official = tmp_path / "official.pt"
    torch.save(_official(encoder, predictor), official)  # official files carry no eps: the reference's 1e-6
    assert load_encoder(official).config.layer_norm_eps == 1e-6
    assert load_predictor(official, preset="tiny").config.layer_norm_eps == 1e-6
    assert load_predictor(official, preset="tiny", layer_norm_eps=1e-5).config.layer_norm_eps == 1e-5


def test_shipped_model_names_resolve_in_one_place(tmp_path, monkeypatch):
    from jepa_world_model import ModelNotAvailableError, resolve_model_source
    from jepa_world_model.checkpoints import shipped as models

    assert resolve_model_source("default") == models.DEFAULT_MODEL_DIR
    assert resolve_model_source("tiny") == "tiny" and resolve_model_source(tmp_path) == tmp_path
    monkeypatch.setitem(models.SHIPPED_MODELS, "default", tmp_path / "absent")
    with pytest.raises(ModelNotAvailableError, match="scripts/make_default_model.sh"):
        load_predictor("default")

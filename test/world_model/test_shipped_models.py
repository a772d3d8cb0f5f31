"""Every model name the package ships resolves, loads and stays within the 20 MB budget."""
import pytest

from jepa_world_model import load_encoder, load_predictor, read_checkpoint_config
from jepa_world_model.checkpoints.shipped import SHIPPED_MODELS, resolve_model_source


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_model_loads_and_is_small(name):
    directory = resolve_model_source(name)
    assert sum(f.stat().st_size for f in directory.iterdir()) < 20 * 2**20
    config = read_checkpoint_config(directory)
    encoder = load_encoder(name)
    assert encoder.config.output_layer_norm          # the features the predictors and the planner compare
    if config.get("predictor"):
        predictor = load_predictor(name)
        assert predictor.encoder_id == encoder.model_id  # trained on this very encoder


def test_the_pretrained_encoder_is_not_a_random_one():
    pretrained, random = load_encoder("pretrained_sim"), load_encoder("tiny")
    assert pretrained.config.patch_size == random.config.patch_size == 8
    assert pretrained.model_id != load_encoder("tiny", output_layer_norm=True).model_id

"""Every model name the package ships resolves, loads and stays within the 20 MB budget; its config.json names its
data and encoder by recipe and shipped name, never by a path of the machine that built it."""
import json
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from jepa_world_model import load_encoder, load_predictor, read_checkpoint_config
from jepa_world_model.checkpoints.bundle import EncoderSource, encoder_reference, predictor_encoder
from jepa_world_model.checkpoints.shipped import SHIPPED_MODELS, resolve_model_source
from jepa_world_model.training.run_record import recorded_path

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]


def strings(value, where="config"):
    """(location, text) of every string in a JSON value, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key} (key)", key
            yield from strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def machine_path(text: str) -> bool:
    """An absolute path (POSIX, home-relative or Windows) or anything under /tmp."""
    return (PurePosixPath(text).is_absolute() or text.startswith("~") or PureWindowsPath(text).drive != ""
            or "/tmp" in text)


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


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_config_holds_no_path_of_the_build_machine(name):
    config = json.loads((resolve_model_source(name) / "config.json").read_text())
    found = [(where, text) for where, text in strings(config) if machine_path(text)]
    assert not found, f"{name}: machine paths in config.json: {found}"


def test_the_path_check_catches_machine_paths():
    assert all(machine_path(p) for p in ("/tmp/obl/encoder", "/work/main/artifacts/x", "~/runs/x", "C:\\runs",
                                         "runs/tmp/../../tmp/x"))
    assert not any(machine_path(p) for p in ("data/push", "default", "tiny", "jepa_ros/1", "feature_cache"))


@pytest.mark.parametrize("name", ["default", "push_default"])
def test_a_shipped_predictors_encoder_reference_reloads_its_encoder(name):
    config = read_checkpoint_config(resolve_model_source(name))
    record = config["metadata"]["encoder"]
    assert record["source"] in SHIPPED_MODELS or record["source"] == "tiny"
    reference = EncoderSource(record["source"], record["overrides"], record["id"], "test")
    assert reference.load().model_id == record["id"] == config["encoder_id"]
    assert predictor_encoder(name).load().model_id == config["encoder_id"]   # the weights saved with it


def test_shipped_models_are_recorded_by_name_even_when_given_as_directories(tmp_path, monkeypatch):
    for name, directory in SHIPPED_MODELS.items():
        assert encoder_reference(name) == encoder_reference(directory) == recorded_path(str(directory)) == name
    assert encoder_reference("tiny") == "tiny"
    (tmp_path / "runs" / "enc").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert encoder_reference("runs/enc") == str(tmp_path / "runs" / "enc")   # reloadable from anywhere
    assert recorded_path(str(tmp_path / "runs" / "enc")) == "runs/enc"       # metadata: relative to the run
    assert recorded_path("/elsewhere/data") == "/elsewhere/data"
    assert recorded_path(str(Path("data/x"))) == "data/x"


def test_the_pretrained_encoder_is_not_a_random_one():
    pretrained, random = load_encoder("pretrained_sim"), load_encoder("tiny")
    assert pretrained.config.patch_size == random.config.patch_size == 8
    assert pretrained.model_id != load_encoder("tiny", output_layer_norm=True).model_id

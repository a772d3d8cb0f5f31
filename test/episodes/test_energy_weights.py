"""`jepa energy-weights`: the planning energy of rendered scenes that differ from the goal in one known way (real
sims, real encoders, the planner's energy)."""
import json

import pytest

from jepa_episodes.energy_weights import energy_weights
from jepa_ros.cli import main as jepa_main
from jepa_world_model import load_encoder

pytestmark = pytest.mark.unit


def test_push_table_of_the_shipped_encoder_grows_with_the_arms_error_and_ranks_a_short_push_first():
    table = energy_weights(load_encoder("push_default", output_layer_norm=True), "push", episodes=2, seed=0)
    energies = table["mean_energy"]
    assert set(energies) == {"object_off", "ee_off_5mm", "ee_off_3cm", "not_done"}
    assert 0.0 < energies["ee_off_5mm"] < energies["ee_off_3cm"]
    assert table["done_before_not_done"] == 1.0  # the puck 3 cm short is closer to the goal than never pushed
    assert table["object_over_ee"] == pytest.approx(energies["object_off"] / energies["ee_off_5mm"], rel=0.5)


def test_grasp_table_measures_the_held_cube_against_the_hand_alone():
    table = energy_weights(load_encoder("tiny", output_layer_norm=True, crop_size=32), "grasp", episodes=1, seed=0)
    assert table["image_size"] == 32 and table["episodes"] == 1
    assert set(table["mean_energy"]) == {"object_off", "not_done"}
    assert all(value > 0.0 for value in table["mean_energy"].values())
    assert table["done_before_not_done"] in (0.0, 1.0) and "object_over_ee" not in table


def test_the_command_writes_its_json_and_refuses_a_missing_encoder_in_one_line(tmp_path, capsys):
    out = tmp_path / "weights.json"
    assert jepa_main(["energy-weights", "--encoder", "push_default", "--episodes", "1", "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["task"] == "push" and table["encoder"] == "push_default" and len(table["encoder_id"]) == 16
    capsys.readouterr()
    assert jepa_main(["energy-weights", "--encoder", str(tmp_path / "nothing"), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load encoder" in err[0]
    with pytest.raises(ValueError, match="task"):
        energy_weights(load_encoder("tiny", output_layer_norm=True), "stack")


def test_an_encoder_override_changes_the_rendered_size_and_a_bad_one_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "weights.json"
    assert jepa_main(["energy-weights", "--encoder", "tiny", "--encoder-override", "crop_size=32", "--task", "grasp",
                      "--episodes", "1", "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["image_size"] == 32 and table["encoder_overrides"] == {"crop_size": 32}
    for bad in ("crop_size=30", "crop_size", "no_such_field=1"):
        capsys.readouterr()
        assert jepa_main(["energy-weights", "--encoder", "tiny", "--encoder-override", bad, "--episodes", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot load encoder" in err[0], bad

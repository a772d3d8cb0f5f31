"""One source for every default: settings dataclasses, the YAML files under config/ and the launch files agree.

A node's defaults are written once, in its settings dataclass (`SETTINGS` in its module under jepa_ros/nodes);
the YAML files hold only what a deployment changes (test_launch_files.py checks the launch files' parameters).
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import yaml

from jepa_common.settings import SettingsError, describe, make_settings, non_defaults, setting, settings_fields

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
# config file -> the file it is layered on (launch files load the base first); base files are layered on defaults
OVERLAYS = {"controller_arm.yaml": "controller.yaml"}


def node_settings(node: str) -> type:
    """The settings dataclass of a node executable (module jepa_ros.nodes.<node>, attribute SETTINGS)."""
    return importlib.import_module(f"jepa_ros.nodes.{node}").SETTINGS


def yaml_sections(name: str) -> dict[str, dict]:
    """{node name: ros__parameters} of one file under config/."""
    sections = yaml.safe_load((CONFIG / name).read_text()) or {}
    return {node: (body or {}).get("ros__parameters") or {} for node, body in sections.items()}


def effective(name: str, node: str) -> dict:
    """The values a file's node section is layered on: the dataclass defaults, then the base file if any."""
    defaults = {f.name: f.default for f in settings_fields(node_settings(node))}
    if name in OVERLAYS:
        defaults.update(yaml_sections(OVERLAYS[name]).get(node, {}))
    return defaults


def comparable(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG.glob("*.yaml")))
def test_yaml_holds_only_known_settings_that_differ_from_their_default(name):
    for node, params in yaml_sections(name).items():
        below = effective(name, node)
        unknown = sorted(set(params) - set(below))
        assert not unknown, f"config/{name}: {node} has no setting(s) {unknown}"
        repeated = sorted(k for k, v in params.items() if comparable(v) == comparable(below[k]))
        assert not repeated, (f"config/{name}: {node} repeats the default of {repeated}; defaults are written once, "
                              f"in {node_settings(node).__name__}")
        make_settings(node_settings(node), {k: comparable(v) for k, v in params.items()})  # types and ranges


@pytest.mark.parametrize("node", ["perception_node", "planner_node", "controller_node", "sim_node", "recorder_node"])
def test_every_setting_is_documented_and_its_default_is_valid(node):
    cls = node_settings(node)
    assert dataclasses.is_dataclass(cls)
    fields = settings_fields(cls)
    assert fields and len(fields) == len(dataclasses.fields(cls)), f"{cls.__name__}: a field without setting()"
    for field in fields:
        assert field.metadata["doc"].strip(), f"{cls.__name__}.{field.name} has no description"
    assert non_defaults(make_settings(cls, {})) == {}


@dataclasses.dataclass(frozen=True)
class Example:
    rate: float = setting(20.0, "control loop", unit="Hz", low=0.1, high=1000.0)
    mode: str = setting("step", "how plans run", choices=("step", "continuous"))
    low: tuple = setting((), "bounds", unit="m")
    count: int = setting(3, "how many", low=1, high=10)


def test_make_settings_checks_names_types_ranges_and_choices():
    assert make_settings(Example, {"rate": 5, "low": [1, 2]}) == Example(rate=5.0, low=(1.0, 2.0))
    for bad, words in [({"rat": 1.0}, "unknown setting(s) rat"), ({"rate": 0.0}, "outside 0.1..1000"),
                       ({"mode": "fast"}, "not one of step, continuous"), ({"count": 2.5}, "expected an integer"),
                       ({"count": True}, "expected an integer"), ({"low": "1,2"}, "expected a list")]:
        with pytest.raises(SettingsError, match=words.replace("(", r"\(").replace(")", r"\)")):
            make_settings(Example, bad)


def test_describe_gives_unit_range_and_choices():
    fields = {f.name: f for f in settings_fields(Example)}
    assert describe(fields["rate"]) == "control loop [Hz] range 0.1..1000"
    assert describe(fields["mode"]) == "how plans run one of step, continuous"


def test_parameter_reference_is_generated_from_the_settings():
    from jepa_ros.params import markdown

    committed = (REPO / "docs" / "PARAMETERS.md").read_text()
    assert committed == markdown(), "docs/PARAMETERS.md is stale: run `jepa params --markdown > docs/PARAMETERS.md`"

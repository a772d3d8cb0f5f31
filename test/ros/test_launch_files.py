"""Launch and parameter files are consistent: documented tags only, real executables, existing YAML files,
parameters the nodes declare, device `auto`."""
import importlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from jepa_ros.launch_runner.launch_file import LaunchFileError, read_launch_file
from jepa_common.settings import settings_fields

# files and the nodes' declared parameters, no DDS
pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.xml"))
REQUIRED_ARGS = {"encoder": "default", "predictor": "default"}
# Tags and attributes of the ROS 2 XML launch format that our files may use.
ALLOWED = {"launch": set(), "arg": {"name", "default", "description"},
           "node": {"pkg", "exec", "name", "output", "args", "namespace", "if"},
           "param": {"name", "value", "from"}, "remap": {"from", "to"}}


def console_scripts() -> set[str]:
    setup = (ROOT / "setup.py").read_text()
    return set(re.findall(r'"(\w+) = [\w.]+:main"', setup))


def test_there_is_a_launch_file_per_target():
    assert {p.name for p in LAUNCH_FILES} == {"sim.launch.xml", "sim_push.launch.xml", "arm_servo.launch.xml",
                                              "gazebo.launch.xml", "sim_grasp.launch.xml"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_only_documented_tags_and_attributes(path):
    for element in ET.parse(path).getroot().iter():
        assert element.tag in ALLOWED, f"{path.name}: <{element.tag}>"
        assert set(element.attrib) <= ALLOWED[element.tag], f"{path.name}: <{element.tag}> {element.attrib}"
        for value in element.attrib.values():
            for kind in re.findall(r"\$\(([\w-]+)", value):
                assert kind in {"var", "find-pkg-share"}, f"{path.name}: substitution $({kind} ...)"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_nodes_point_at_real_executables_and_parameter_files(path):
    nodes = read_launch_file(path, REQUIRED_ARGS)
    assert nodes
    scripts = console_scripts()
    for node in nodes:
        if node.package != "jepa_ros":
            assert node.package == "ros_gz_bridge" and node.executable == "parameter_bridge"
            continue
        assert node.executable in scripts, node.executable
        for param_file in node.param_files:
            content = yaml.safe_load(param_file.read_text())
            assert node.name in content and "ros__parameters" in content[node.name], param_file


def test_every_parameter_file_is_used_by_a_launch_file():
    used = {f.name for path in LAUNCH_FILES for node in read_launch_file(path, REQUIRED_ARGS)
            for f in node.param_files}
    assert used == {p.name for p in (ROOT / "config").glob("*.yaml")}


def test_missing_required_argument_is_a_clear_error():
    with pytest.raises(LaunchFileError, match="launch argument 'predictor' has no default"):
        read_launch_file(ROOT / "launch" / "arm_servo.launch.xml", {})


def test_the_encoder_defaults_to_the_predictor_bundle():
    specs = {s.name: s for s in read_launch_file(ROOT / "launch" / "arm_servo.launch.xml", {"predictor": "runs/x"})}
    assert specs["perception_node"].params["model"] == "runs/x"
    assert specs["planner_node"].params["encoder"] == "runs/x"
    specs = {s.name: s for s in read_launch_file(ROOT / "launch" / "arm_servo.launch.xml",
                                                 {"predictor": "runs/x", "encoder": "vit_l.pt"})}
    assert specs["perception_node"].params["model"] == specs["planner_node"].params["encoder"] == "vit_l.pt"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_device_arguments_default_to_auto(path):
    """Issue 13 defect 10: a launch file must start on a machine without CUDA (the nodes resolve `auto`)."""
    devices = [a for a in ET.parse(path).getroot().iter("arg") if a.attrib["name"] == "device"]
    assert devices and all(a.attrib.get("default") == "auto" for a in devices), path.name


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_parameter_is_declared_by_its_node(path):
    """A <param name=...> the node does not declare would be silently ignored by ROS."""
    for node in read_launch_file(path, REQUIRED_ARGS):
        if node.package != "jepa_ros":
            continue
        settings = importlib.import_module(f"jepa_ros.nodes.{node.executable}").SETTINGS
        declared = {f.name for f in settings_fields(settings)} | {"use_sim_time"}
        assert set(node.params) <= declared, (path.name, node.name, sorted(set(node.params) - declared))


def test_the_arm_launch_file_starts_in_a_dry_run_unless_told_otherwise():
    def controller(arguments: dict[str, str]):
        nodes = read_launch_file(ROOT / "launch" / "arm_servo.launch.xml", {**REQUIRED_ARGS, **arguments})
        return next(n for n in nodes if n.name == "controller_node")

    assert controller({}).params["dry_run"] == "true"
    assert controller({"dry_run": "false"}).params["dry_run"] == "false"
    assert controller({"servo_startup": "humble"}).params["servo_startup"] == "humble"

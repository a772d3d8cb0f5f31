"""The repository is a valid ROS 2 workspace source: the README's colcon invocation finds both packages."""
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLCON = Path(sys.executable).parent / "colcon"


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """A colcon workspace with this repository at src/jepa_ros (as a user clones it)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "jepa_ros").symlink_to(ROOT, target_is_directory=True)
    return tmp_path


def colcon_list(workspace: Path, *args: str) -> list[tuple[str, str]]:
    out = subprocess.run([str(COLCON), "list", "--topological-order", *args], cwd=workspace, check=True,
                         capture_output=True, text=True).stdout
    return [tuple(line.split("\t")[::2]) for line in out.splitlines()]


def test_plain_colcon_misses_the_nested_interface_package(workspace):
    assert [name for name, _ in colcon_list(workspace)] == ["jepa_ros"]


def test_readme_colcon_invocation_finds_both_packages_in_build_order(workspace):
    found = colcon_list(workspace, "--base-paths", "src", "src/jepa_ros/jepa_msgs")
    assert found == [("jepa_msgs", "(ros.ament_cmake)"), ("jepa_ros", "(ros.ament_python)")]
    readme = (ROOT / "README.md").read_text()
    assert "colcon build --base-paths src src/jepa_ros/jepa_msgs" in readme


def test_package_xml_lists_interface_and_message_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "jepa_ros"
    exec_deps = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "jepa_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "diagnostic_msgs",
            "std_srvs"} <= exec_deps
    assert root.find("export/build_type").text == "ament_python"


def test_console_scripts_are_installed_where_ros2_run_looks():
    setup_cfg = (ROOT / "setup.cfg").read_text()
    assert "install_scripts=$base/lib/jepa_ros" in setup_cfg
    for exe in ["jepa", "perception_node", "planner_node", "controller_node", "sim_node", "recorder_node"]:
        assert shutil.which(exe, path=str(Path(sys.executable).parent)), exe

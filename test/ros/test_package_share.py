"""Launch and config files are found through the installed package share: source checkout (editable install),
wheel install (`<prefix>/share/jepa_ros` from setup.py's data_files) and the colcon/ament layout."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from jepa_common.package_data import SHARE_DIR, package_share
from jepa_ros.launch_runner.launch_file import read_launch_file

# No DDS here: the source-checkout and layout checks are unit tests, the wheel build is slow (marked on its test).
pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHECK = """
import json, jepa_ros
from jepa_common.package_data import SHARE_DIR
from jepa_ros.launch_runner.launch_file import read_launch_file
nodes = read_launch_file(SHARE_DIR / "launch" / "sim.launch.xml")
print(json.dumps({"module": jepa_ros.__file__, "share": str(SHARE_DIR),
                  "param_files": [str(p) for n in nodes for p in n.param_files]}))
"""


def test_the_source_checkout_is_the_share_of_a_development_install():
    assert SHARE_DIR == REPO
    nodes = read_launch_file(REPO / "launch" / "sim.launch.xml")
    assert nodes and all(p.is_file() and p.parent == REPO / "config" for n in nodes for p in n.param_files), nodes


def test_a_colcon_or_wheel_layout_is_found_from_the_installed_module(tmp_path, monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    module = tmp_path / "install" / "lib" / "python3.11" / "site-packages" / "jepa_common" / "package_data.py"
    module.parent.mkdir(parents=True)
    module.touch()
    share = tmp_path / "install" / "share" / "jepa_ros"
    (share / "launch").mkdir(parents=True)
    (share / "launch" / "sim.launch.xml").write_text("<launch/>")
    assert package_share(module) == share

    elsewhere = tmp_path / "other" / "lib" / "python3" / "dist-packages" / "jepa_common" / "package_data.py"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "install"))   # an ament prefix holds it
    assert package_share(elsewhere) == share


@pytest.mark.slow
def test_a_wheel_install_finds_its_launch_and_config_files(installed_wheel, tmp_path):
    """The wheel, built from a copy of the sources, installed into a fresh venv of its own (test/support/wheel.py:
    pip there cannot see, let alone uninstall, this environment's editable install)."""
    result = installed_wheel.run([str(installed_wheel.python), "-c", CHECK], cwd=tmp_path, timeout=120,
                                 env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    site, venv = installed_wheel.site, installed_wheel.venv
    assert Path(found["module"]).is_relative_to(site), found
    assert Path(found["share"]) == installed_wheel.share, found
    assert (venv / "share" / "ament_index" / "resource_index" / "packages" / "jepa_ros").is_file()
    assert found["param_files"] and all(Path(p).is_file() and Path(p).is_relative_to(venv / "share")
                                        for p in found["param_files"]), found
    assert (site / "jepa_world_model" / "shipped_models" / "sim_reach" / "config.json").is_file()
    assert (Path(sys.executable).parent / "jepa").is_file(), "this environment's install of jepa_ros was touched"

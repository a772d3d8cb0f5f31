"""Launch and config files are found through the installed package share: source checkout (editable install),
wheel install (`<prefix>/share/jepa_ros` from setup.py's data_files) and the colcon/ament layout."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from jepa_common.package_data import SHARE_DIR, package_share
from jepa_ros.launch_runner.launch_file import read_launch_file

REPO = Path(__file__).resolve().parents[2]
#: What setup.py needs to build the wheel (a copy, so the build leaves nothing in the working tree).
SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", "jepa_common", "jepa_sim",
           "jepa_world_model", "jepa_planner", "jepa_control", "jepa_episodes", "jepa_ros")
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


def test_a_wheel_install_finds_its_launch_and_config_files(tmp_path):
    """Build the wheel from a copy of the sources and install it into a fresh venv of its own (pip there cannot
    see, let alone uninstall, this environment's editable install)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    quiet = ["--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", *quiet, str(source), "--no-deps", "--no-build-isolation",
                    "-w", str(dist)], check=True, cwd=tmp_path, timeout=300)
    wheel = next(dist.glob("jepa_ros-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", *quiet, "--no-deps", "--no-index", str(wheel)], check=True,
                   cwd=tmp_path, timeout=300)
    result = subprocess.run([str(python), "-c", CHECK], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    site = next(venv.glob("lib/python*/site-packages"))
    assert Path(found["module"]).is_relative_to(site), found
    assert Path(found["share"]) == venv / "share" / "jepa_ros", found
    assert (venv / "share" / "ament_index" / "resource_index" / "packages" / "jepa_ros").is_file()
    assert found["param_files"] and all(Path(p).is_file() and Path(p).is_relative_to(venv / "share")
                                        for p in found["param_files"]), found
    assert (site / "jepa_world_model" / "models" / "sim_reach" / "config.json").is_file()
    assert (Path(sys.executable).parent / "jepa").is_file(), "this environment's install of jepa_ros was touched"

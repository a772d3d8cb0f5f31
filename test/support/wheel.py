"""The project as a user installs it (no tests here): its wheel, built from a copy of the sources, installed into a
fresh virtual environment of its own.

`install_wheel` builds and installs once; test/conftest.py's session fixture `installed_wheel` shares the result
between test/ros/test_package_share.py (the package share of a wheel install) and
test/common/test_installed_wheel.py (the `jepa` command of a wheel install).

The fresh venv gets the heavy dependencies (torch, MuJoCo, numpy, rclpy, ...) without a download: after the wheel is
installed, a .pth file appends this environment's site-packages to its sys.path. A plain path line in a .pth file
adds the folder only, the .pth files inside it are not run, so this environment's editable install of jepa_ros (its
`__editable__.jepa_ros-*.pth` puts the source checkout on sys.path) stays out, and the fresh venv's own
site-packages, which holds the wheel, comes first. The wheel is installed before that .pth is written, so pip
there never sees, let alone uninstalls, this environment's jepa_ros.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: What setup.py needs to build the wheel (a copy, so the build leaves nothing in the working tree).
SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", "jepa_common", "jepa_sim",
           "jepa_world_model", "jepa_planner", "jepa_control", "jepa_episodes", "jepa_ros")
#: The .pth file in the fresh venv that lends it this environment's dependencies.
DEPENDENCIES_PTH = "project_dependencies.pth"
QUIET = ("--disable-pip-version-check", "--no-input", "-q")


@dataclass(frozen=True)
class WheelInstall:
    """A wheel of the project installed into the fresh venv `venv`."""

    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site(self) -> Path:
        return next(self.venv.glob("lib/python*/site-packages"))

    @property
    def share(self) -> Path:
        return self.venv / "share" / "jepa_ros"

    def script(self, name: str) -> Path:
        """A console script of the wheel (`jepa`, `planner_node`, ...)."""
        return self.venv / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for the venv's commands: no PYTHONPATH, no ament prefix, the venv's bin first,
        the ROS libraries (which this environment's bootstrapper .pth would add) on LD_LIBRARY_PATH; the DDS,
        rendering and offline settings of this session are kept."""
        prefix = Path(sys.prefix)
        ros_libs = [str(p) for p in sorted(Path(sysconfig.get_paths()["purelib"]).glob("ros_*.libs")) if p.is_dir()]
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
               "LD_LIBRARY_PATH": ":".join([str(prefix / "lib"), *ros_libs]),
               "_ROS_WHEELS_BOOTSTRAP_COMPLETE": "1"}
        for name in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "MUJOCO_GL", "HF_HUB_OFFLINE", "TMPDIR",
                     "LANG", "LC_ALL"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(extra)
        return env

    def run(self, args: list[str], cwd: Path, timeout: float, **kwargs) -> subprocess.CompletedProcess:
        """Run a command with the venv's environment (`env`) in `cwd`, output captured as text."""
        return subprocess.run(args, cwd=cwd, env=kwargs.pop("env", None) or self.env(), capture_output=True,
                              text=True, timeout=timeout, **kwargs)


def copy_sources(dest: Path) -> Path:
    """A copy of what setup.py needs under `dest`, without byte code."""
    dest.mkdir(parents=True)
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, dest / name)
    return dest


def build_wheel(workdir: Path) -> Path:
    """Build the project's wheel from a copy of the sources in `workdir`; the wheel lands in `workdir`/dist."""
    source, dist = copy_sources(workdir / "src"), workdir / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", *QUIET, str(source), "--no-deps", "--no-build-isolation",
                    "-w", str(dist)], check=True, cwd=workdir, timeout=300)
    return next(dist.glob("jepa_ros-*.whl"))


def install_wheel(workdir: Path) -> WheelInstall:
    """Build the wheel and install it into a fresh venv `workdir`/venv, then lend the venv this environment's
    dependencies (see the module docstring)."""
    wheel, venv = build_wheel(workdir), workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    installed = WheelInstall(wheel, venv)
    # this environment's pip, installing for the fresh interpreter: nothing of this environment is on its path yet
    subprocess.run([sys.executable, "-m", "pip", "--python", str(installed.python), "install", *QUIET, "--no-deps",
                    "--no-index", str(wheel)], check=True, cwd=workdir, timeout=300)
    (installed.site / DEPENDENCIES_PTH).write_text(sysconfig.get_paths()["purelib"] + "\n")
    return installed

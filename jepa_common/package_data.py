"""The one finder of the package's data folders (launch/, config/, package.xml, the jepa_msgs definitions).

Rules: a source checkout (this module under ``<checkout>/jepa_common/``, with ``package.xml`` beside it) is used
first, so editable installs and tests read the tree they run from; otherwise ``<prefix>/share/jepa_ros`` of the
wheel or colcon install, for every folder above the installed module, then the ament prefixes
(``AMENT_PREFIX_PATH``), then this interpreter's prefix. Nothing else in the project looks for these folders.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

#: The ROS package whose share folder holds launch/ and config/.
PACKAGE = "jepa_ros"
_MARKER = Path("launch") / "sim.launch.xml"


def share_candidates(module_file: Path = Path(__file__)) -> list[Path]:
    """Where launch/ and config/ may be, in order: the source checkout this module runs from, then
    ``<prefix>/share/jepa_ros`` for every folder above the module, the ament prefixes and ``sys.prefix``."""
    here = module_file.resolve().parent
    prefixes = list(here.parents) + [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
                                         if p] + [Path(sys.prefix)]
    return [here.parent] + [prefix / "share" / PACKAGE for prefix in prefixes]


def package_share(module_file: Path = Path(__file__)) -> Path:
    """The first of :func:`share_candidates` that holds the launch files (the source checkout needs its
    package.xml too); FileNotFoundError lists the places searched."""
    candidates = share_candidates(module_file)
    for number, candidate in enumerate(candidates):
        if (candidate / _MARKER).is_file() and (number > 0 or (candidate / "package.xml").is_file()):
            return candidate
    raise FileNotFoundError(f"the {PACKAGE} launch and config files were not found; searched "
                            f"{', '.join(str(c) for c in candidates)}")


def source_checkout() -> Path | None:
    """The source checkout this code runs from (a development install), or None for an installed package."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "package.xml").is_file() and (root / _MARKER).is_file() else None


def _share_or_checkout() -> Path:
    try:
        return package_share()
    except FileNotFoundError:  # reported when a file is read (the reader names the missing file)
        return share_candidates()[0]


#: The package share (launch/, config/, package.xml): the source checkout in a development install.
SHARE_DIR = _share_or_checkout()


def config_file(name: str) -> Path:
    """``config/<name>`` of the package share."""
    return SHARE_DIR / "config" / name


def launch_file(name: str) -> Path:
    """``launch/<name>`` of the package share."""
    return SHARE_DIR / "launch" / name

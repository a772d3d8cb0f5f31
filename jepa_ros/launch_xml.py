"""Reads the subset of ROS 2 launch XML that our launch files use and turns each <node> into a command line.

ROS 2 launch is not installable from PyPI, so without a ROS install `jepa demo`, `jepa eval` and the tests start
the nodes from the same launch and parameter files through this reader (with ROS installed, use ros2 launch).
Supported: <launch>, <arg name default>, <node pkg exec name args>, <param from>, <param name value>,
<remap from to>, and the substitutions $(var NAME) and $(find-pkg-share jepa_ros).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "jepa_ros"
REPO_ROOT = Path(__file__).resolve().parents[1]
_SUBSTITUTION = re.compile(r"\$\((var|find-pkg-share) ([^)]+)\)")


class LaunchFileError(ValueError):
    """The launch file uses something this reader does not support, or lacks a required argument."""


@dataclass
class NodeSpec:
    """One <node> of a launch file, substitutions resolved."""
    package: str
    executable: str
    name: str
    param_files: list[Path] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)

    def ros_args(self) -> list[str]:
        """The --ros-args part of the node's command line, in launch order (files, then single params)."""
        out = ["--ros-args", "-r", f"__node:={self.name}"]
        for path in self.param_files:
            out += ["--params-file", str(path)]
        for key, value in self.params.items():
            out += ["-p", f"{key}:={value}"]
        for source, target in self.remaps:
            out += ["-r", f"{source}:={target}"]
        return out


def _substitute(text: str, values: dict[str, str], share_dir: Path) -> str:
    def replace(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2).strip()
        if kind == "find-pkg-share":
            if name != PACKAGE:
                raise LaunchFileError(f"$(find-pkg-share {name}): only {PACKAGE} is known without a ROS install")
            return str(share_dir)
        if name not in values:
            raise LaunchFileError(f"launch argument {name!r} has no default and was not given")
        return values[name]
    return _SUBSTITUTION.sub(replace, text)


def read_launch_file(path: Path, arguments: dict[str, str] | None = None,
                     share_dir: Path = REPO_ROOT) -> list[NodeSpec]:
    """Parse `path` with the given launch arguments; return the nodes it starts."""
    root = ET.parse(path).getroot()
    if root.tag != "launch":
        raise LaunchFileError(f"{path}: root element is <{root.tag}>, expected <launch>")
    given = dict(arguments or {})
    values: dict[str, str] = {}
    nodes: list[NodeSpec] = []
    for element in root:
        if element.tag == "arg":
            name = element.attrib["name"]
            if name in given:
                values[name] = given.pop(name)
            elif "default" in element.attrib:
                values[name] = _substitute(element.attrib["default"], values, share_dir)
        elif element.tag == "node":
            nodes.append(_read_node(element, values, share_dir))
        else:
            raise LaunchFileError(f"{path}: <{element.tag}> is not supported by this reader")
    if given:
        raise LaunchFileError(f"{path}: unknown launch arguments {sorted(given)}")
    return nodes


def _read_node(element: ET.Element, values: dict[str, str], share_dir: Path) -> NodeSpec:
    sub = lambda text: _substitute(text, values, share_dir)  # noqa: E731
    spec = NodeSpec(package=element.attrib["pkg"], executable=element.attrib["exec"],
                    name=element.attrib.get("name", element.attrib["exec"]),
                    arguments=sub(element.attrib.get("args", "")).split())
    for child in element:
        if child.tag == "param" and "from" in child.attrib:
            spec.param_files.append(Path(sub(child.attrib["from"])))
        elif child.tag == "param":
            spec.params[child.attrib["name"]] = sub(child.attrib["value"])
        elif child.tag == "remap":
            spec.remaps.append((sub(child.attrib["from"]), sub(child.attrib["to"])))
        else:
            raise LaunchFileError(f"<node> child <{child.tag}> is not supported by this reader")
    return spec

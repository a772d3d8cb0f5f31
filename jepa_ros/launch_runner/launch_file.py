"""Reads ROS 2 launch XML files and turns each <node> into a command line, the way ROS 2 launch does.

ROS 2 launch is not installable from PyPI, so without a ROS install `jepa demo`, `jepa eval` and the tests start
the nodes from the same launch and parameter files through this reader (with ROS installed, use ros2 launch).
Supported, with launch's rules:
- <launch>, <arg name default description>, <node pkg exec name namespace args output>, <param from>,
  <param name value>, <remap from to>, <group scoped> and <push-ros-namespace namespace>;
- `if` / `unless` on <arg>, <node>, <group> and <push-ros-namespace> (true/1 or false/0, any case);
- the substitutions of :mod:`jepa_ros.launch_runner.substitutions` ($(var), $(env), $(optenv), $(eval),
  $(find-pkg-share jepa_ros)); `args` is split with shell rules between substitutions.
Every other tag, attribute or substitution is refused with a LaunchFileError that names it.
"""
from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from jepa_common.package_data import SHARE_DIR
from jepa_ros.launch_runner.substitutions import PACKAGE, Context, LaunchFileError, command_line, condition, parse, resolve

__all__ = ["LaunchFileError", "NodeSpec", "read_launch_file"]

# Tag -> the attributes this reader understands (ROS 2 launch accepts more; those are refused, not ignored).
ATTRIBUTES: dict[str, set[str]] = {
    "launch": set(),
    "arg": {"name", "default", "description", "if", "unless"},
    "node": {"pkg", "exec", "name", "namespace", "args", "output", "if", "unless"},
    "group": {"scoped", "if", "unless"},
    "push-ros-namespace": {"namespace", "if", "unless"},
    "param": {"name", "value", "from"},
    "remap": {"from", "to"},
}
_NAMESPACE = re.compile(r"/|(/[A-Za-z_][A-Za-z0-9_]*)+")
_NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EMPTY_VALUES = {"", "~", "null", "Null", "NULL"}  # launch reads these as YAML null, which it passes as ''


@dataclass
class NodeSpec:
    """One <node> of a launch file, substitutions resolved."""
    package: str
    executable: str
    name: str
    namespace: str | None = None
    param_files: list[Path] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)

    def ros_args(self) -> list[str]:
        """The --ros-args part of the node's command line in launch's order: name, namespace, parameter files,
        single parameters (launch gathers those after the files), remaps."""
        out = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace is not None:
            out += ["-r", f"__ns:={self.namespace}"]
        for path in self.param_files:
            out += ["--params-file", str(path)]
        for key, value in self.params.items():
            out += ["-p", f"{key}:={value}"]
        for source, target in self.remaps:
            out += ["-r", f"{source}:={target}"]
        return out


@dataclass
class _Scope:
    """Launch configurations and the pushed ROS namespace; a scoped <group> works on a copy."""
    values: dict[str, str]
    namespace: str | None = None

    def copy(self) -> "_Scope":
        return _Scope(dict(self.values), self.namespace)


def prefix_namespace(base: str | None, namespace: str | None) -> str | None:
    """launch_ros's rule: a relative namespace goes under the pushed one, an absolute one replaces it."""
    if namespace is None:
        return base
    if namespace.startswith("/") or not base:
        return namespace
    return f"{base.rstrip('/')}/{namespace}" if namespace else base


class _Reader:
    def __init__(self, path: Path, share_dir: Path):
        self.path, self.share_dir = path, share_dir
        self.nodes: list[NodeSpec] = []

    def fail(self, element: ET.Element, message: str, attribute: str | None = None) -> LaunchFileError:
        where = f"<{element.tag}" + (f" name={element.attrib['name']!r}" if "name" in element.attrib else "") + ">"
        if attribute:
            where += f" attribute {attribute!r}"
        return LaunchFileError(f"{self.path}: {where}: {message}")

    def context(self, scope: _Scope) -> Context:
        return Context(values=scope.values, share_dir=self.share_dir, environ=os.environ)

    def attr(self, element: ET.Element, name: str, scope: _Scope, required: bool = False) -> str | None:
        """The attribute with substitutions performed (None when absent and not required)."""
        if name not in element.attrib:
            if required:
                raise self.fail(element, "is required", name)
            return None
        try:
            return resolve(parse(element.attrib[name]), self.context(scope))
        except LaunchFileError as exc:
            raise self.fail(element, str(exc), name) from None

    def check(self, element: ET.Element) -> None:
        """Refuse tags and attributes this reader does not understand."""
        if element.tag not in ATTRIBUTES:
            raise LaunchFileError(f"{self.path}: <{element.tag}> is not supported by this reader "
                                  f"(supported: {', '.join(f'<{t}>' for t in ATTRIBUTES)})")
        for name in element.attrib:
            if name not in ATTRIBUTES[element.tag]:
                raise self.fail(element, f"is not supported by this reader (supported on <{element.tag}>: "
                                         f"{', '.join(sorted(ATTRIBUTES[element.tag])) or 'none'})", name)
        if "if" in element.attrib and "unless" in element.attrib:
            raise self.fail(element, "'if' and 'unless' cannot be used together", "unless")

    def included(self, element: ET.Element, scope: _Scope) -> bool:
        """Whether the element's `if` / `unless` lets it run."""
        for name, wanted in (("if", True), ("unless", False)):
            text = self.attr(element, name, scope)
            if text is not None:
                try:
                    return condition(text) == wanted
                except LaunchFileError as exc:
                    raise self.fail(element, str(exc), name) from None
        return True

    def walk(self, parent: ET.Element, scope: _Scope) -> None:
        """Run the actions under `parent` in order."""
        for element in parent:
            self.check(element)
            if element.tag in ("param", "remap"):
                raise self.fail(element, f"belongs inside a <node>, not <{parent.tag}>")
            if not self.included(element, scope):
                continue
            if element.tag == "arg":
                self.declare(element, scope)
            elif element.tag == "node":
                self.nodes.append(self.node(element, scope))
            elif element.tag == "group":
                scoped = self.attr(element, "scoped", scope)
                try:
                    copy = scoped is None or condition(scoped)
                except LaunchFileError as exc:
                    raise self.fail(element, str(exc), "scoped") from None
                self.walk(element, scope.copy() if copy else scope)
            elif element.tag == "push-ros-namespace":
                namespace = prefix_namespace(scope.namespace, self.attr(element, "namespace", scope, True))
                scope.namespace = self.valid_namespace(element, namespace, "namespace")
            else:
                raise self.fail(element, f"is not allowed inside <{parent.tag}>")

    def declare(self, element: ET.Element, scope: _Scope) -> None:
        """<arg>: a value given by the caller wins, else the default; no default and not given is an error."""
        name = self.attr(element, "name", scope, True)
        if name in scope.values:
            return
        default = self.attr(element, "default", scope)
        if default is None:
            raise self.fail(element, f"launch argument {name!r} has no default and was not given")
        scope.values[name] = default

    def valid_namespace(self, element: ET.Element, namespace: str | None, attribute: str) -> str | None:
        if namespace is None:
            return None
        absolute = namespace if namespace.startswith("/") else "/" + namespace
        if not _NAMESPACE.fullmatch(absolute):
            raise self.fail(element, f"{absolute!r} is not a valid ROS namespace", attribute)
        return absolute

    def node(self, element: ET.Element, scope: _Scope) -> NodeSpec:
        executable = self.attr(element, "exec", scope, True)
        name = self.attr(element, "name", scope) or executable
        if not _NODE_NAME.fullmatch(name):
            raise self.fail(element, f"{name!r} is not a valid ROS node name", "name")
        namespace = prefix_namespace(scope.namespace, self.attr(element, "namespace", scope))
        try:
            arguments = command_line(parse(element.attrib.get("args", "")), self.context(scope))
        except LaunchFileError as exc:
            raise self.fail(element, str(exc), "args") from None
        spec = NodeSpec(package=self.attr(element, "pkg", scope, True), executable=executable, name=name,
                        namespace=self.valid_namespace(element, namespace, "namespace"), arguments=arguments)
        for child in element:
            self.node_child(child, spec, scope)
        return spec

    def node_child(self, child: ET.Element, spec: NodeSpec, scope: _Scope) -> None:
        if child.tag not in ("param", "remap"):
            raise LaunchFileError(f"{self.path}: <node name={spec.name!r}> child <{child.tag}> is not supported "
                                  f"by this reader (supported: <param>, <remap>)")
        self.check(child)
        if len(child):
            raise self.fail(child, f"nested <{child[0].tag}> is not supported by this reader")
        if child.tag == "remap":
            spec.remaps.append((self.attr(child, "from", scope, True), self.attr(child, "to", scope, True)))
        elif "from" in child.attrib:
            if "name" in child.attrib or "value" in child.attrib:
                raise self.fail(child, "'from' cannot be combined with 'name' or 'value'", "from")
            spec.param_files.append(Path(self.attr(child, "from", scope)))
        else:
            name = self.attr(child, "name", scope, True)
            value = self.attr(child, "value", scope, True)
            # an empty value is an empty string for launch; `-p name:=` alone is refused by rcl
            spec.params[name] = "''" if value.strip() in _EMPTY_VALUES else value


def read_launch_file(path: Path, arguments: dict[str, str] | None = None,
                     share_dir: Path = SHARE_DIR) -> list[NodeSpec]:
    """Parse `path` with the given launch arguments; return the nodes it starts (those whose conditions hold).

    ``$(find-pkg-share jepa_ros)`` is `share_dir`, the installed package share by default."""
    path = Path(path)
    if not path.is_file():
        raise LaunchFileError(f"{path}: no such launch file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise LaunchFileError(f"{path}: not well-formed XML: {exc}") from None
    if root.tag != "launch":
        raise LaunchFileError(f"{path}: root element is <{root.tag}>, expected <launch>")
    given = {str(k): str(v) for k, v in (arguments or {}).items()}
    declared = {element.attrib.get("name") for element in root.iter("arg")}
    unknown = sorted(set(given) - declared)
    if unknown:
        raise LaunchFileError(f"{path}: unknown launch arguments {unknown} (declared: {sorted(declared)})")
    reader = _Reader(path, share_dir)
    reader.check(root)
    reader.walk(root, _Scope(values=dict(given)))
    return reader.nodes

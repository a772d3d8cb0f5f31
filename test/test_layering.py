"""Layering: the libraries (jepa_world_model, jepa_planner, jepa_sim) are ROS-free, and the four top-level packages
import each other without a cycle (function-level imports included)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("jepa_world_model", "jepa_planner", "jepa_sim")
PACKAGES = (*LIBRARIES, "jepa_ros")
ROS_MODULES = {"rclpy", "rcl", "rcl_interfaces", "builtin_interfaces", "rmw", "rpyutils", "launch", "launch_ros",
               "ament_index_python", "message_filters", "tf2_ros", "rosbag2_py"}


def is_ros_module(name: str) -> bool:
    """rclpy, a ROS message/service/interface package (…_msgs, …_srvs, …_interfaces), rosidl*, rcl*, launch."""
    top = name.split(".")[0]
    return top in ROS_MODULES or top.startswith(("rosidl", "rcl", "rmw")) or \
        top.endswith(("_msgs", "_srvs", "_interfaces"))


def imports_of(path: Path, package: str) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in a source file: module level, in functions, and
    importlib.import_module("literal")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "" if node.level == 0 else package, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            found.append((str(node.args[0].value), node.lineno))
    return found


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) top-level package edges, each with the file:line places that make it."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, line in imports_of(path, package):
                top = module.split(".")[0]
                if top in PACKAGES and top != package:
                    edges[(package, top)].append(f"{path.relative_to(ROOT)}:{line}")
    return dict(edges)


def find_cycle(edges) -> list[str] | None:
    """One cycle of the package graph (as a path a -> ... -> a), or None."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1  # on the current path
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = 2  # done, no cycle through it
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


_IMPORT_ALL = """
import importlib, json, pkgutil, sys
failed = {}
for package in %r:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # reported, not hidden
            failed[info.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": sorted(sys.modules), "failed": failed}))
"""


def test_the_libraries_load_no_ros_module():
    """Import every module of the three libraries in a fresh interpreter; no ROS module may be loaded."""
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL % (LIBRARIES,)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report["failed"], report["failed"]
    ours = [m for m in report["modules"] if m.split(".")[0] in LIBRARIES]
    assert len(ours) > 20, ours  # the walk did import the packages
    loaded = [m for m in report["modules"] if is_ros_module(m) or m.split(".")[0] == "jepa_ros"]
    assert not loaded, f"the libraries loaded ROS-layer modules: {loaded}"


def test_no_library_source_imports_ros_even_inside_functions():
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for package in LIBRARIES for path in sorted((ROOT / package).rglob("*.py"))
                 for module, line in imports_of(path, package) if is_ros_module(module)]
    assert not offenders, offenders


def test_no_import_cycle_between_the_top_level_packages():
    edges = package_edges()
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle) + ": " + "; ".join(
        f"{a} -> {b} at {', '.join(edges[(a, b)][:3])}" for a, b in zip(cycle, cycle[1:]))


def test_layer_rules_hold():
    """The ROS layer sits on top: no library imports jepa_ros, and jepa_world_model does not import the planner."""
    edges = package_edges()
    forbidden = {(lib, "jepa_ros") for lib in LIBRARIES} | {("jepa_world_model", "jepa_planner")}
    assert not forbidden & set(edges), {e: edges[e] for e in forbidden & set(edges)}


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({("a", "b"): [], ("b", "c"): [], ("a", "c"): []}) is None
    assert find_cycle({("a", "b"): [], ("b", "c"): [], ("c", "a"): []}) == ["a", "b", "c", "a"]
    assert find_cycle({("jepa_sim", "jepa_world_model"): [], ("jepa_world_model", "jepa_sim"): []}) in (
        ["jepa_world_model", "jepa_sim", "jepa_world_model"], ["jepa_sim", "jepa_world_model", "jepa_sim"])

"""Layering: which package may import which (``ALLOWED``), no import cycle between the packages nor between the
files of one package (function-level imports included), and the libraries load no ROS module."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Each package and the packages of ours it may import: a layer imports only layers below it.
ALLOWED: dict[str, set[str]] = {
    "jepa_common": set(),
    "jepa_sim": {"jepa_common"},
    "jepa_world_model": {"jepa_common"},
    "jepa_control": {"jepa_common"},
    "jepa_planner": {"jepa_common", "jepa_world_model"},
    "jepa_episodes": {"jepa_common", "jepa_sim", "jepa_world_model", "jepa_planner", "jepa_control"},
    "jepa_ros": {"jepa_common", "jepa_sim", "jepa_world_model", "jepa_planner", "jepa_control", "jepa_episodes"},
}
PACKAGES = tuple(ALLOWED)
LIBRARIES = tuple(p for p in PACKAGES if p != "jepa_ros")
ROS_MODULES = {"rclpy", "rcl", "rcl_interfaces", "builtin_interfaces", "rmw", "rpyutils", "launch", "launch_ros",
               "ament_index_python", "message_filters", "tf2_ros", "rosbag2_py"}


def is_ros_module(name: str) -> bool:
    """rclpy, a ROS message/service/interface package (…_msgs, …_srvs, …_interfaces), rosidl*, rcl*, launch."""
    top = name.split(".")[0]
    return top in ROS_MODULES or top.startswith(("rosidl", "rcl", "rmw")) or \
        top.endswith(("_msgs", "_srvs", "_interfaces"))


def module_name(path: Path) -> str:
    """``jepa_world_model/networks/encoder.py`` -> ``jepa_world_model.networks.encoder`` (a package: its name)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in a source file: module level, in functions, and
    importlib.import_module("literal"); ``from package import name`` also yields ``package.name``."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            found.append((str(node.args[0].value), node.lineno))
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) top-level package edges, each with the file:line places that make it."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sources(package):
            for module, line in imports_of(path):
                top = module.split(".")[0]
                if top in PACKAGES and top != package:
                    edges[(package, top)].append(f"{path.relative_to(ROOT)}:{line}")
    return dict(edges)


def file_edges(package: str) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) edges between the modules of one package (an __init__ that only re-exports lazily is
    a module like any other)."""
    modules = {module_name(path) for path in sources(package)}
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sources(package):
        importer = module_name(path)
        for module, line in imports_of(path):
            if module in modules and module != importer and not importer.startswith(module + "."):
                edges[(importer, module)].append(f"{path.relative_to(ROOT)}:{line}")
    return dict(edges)


def find_cycle(edges) -> list[str] | None:
    """One cycle of the graph (as a path a -> ... -> a), or None."""
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


def describe(cycle: list[str], edges) -> str:
    return " -> ".join(cycle) + ": " + "; ".join(
        f"{a} -> {b} at {', '.join(edges[(a, b)][:3])}" for a, b in zip(cycle, cycle[1:]))


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


# imports every module of the libraries (torch, MuJoCo, transformers, ...) in a fresh interpreter: seconds, more on
# a busy machine; test_no_library_source_imports_ros_even_inside_functions checks the same rule statically
@pytest.mark.slow
def test_the_libraries_load_no_ros_module():
    """Import every module of the libraries in a fresh interpreter; no ROS module may be loaded."""
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL % (LIBRARIES,)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report["failed"], report["failed"]
    ours = [m for m in report["modules"] if m.split(".")[0] in LIBRARIES]
    assert len(ours) > 40, ours  # the walk did import the packages
    loaded = [m for m in report["modules"] if is_ros_module(m) or m.split(".")[0] == "jepa_ros"]
    assert not loaded, f"the libraries loaded ROS-layer modules: {loaded}"


def test_no_library_source_imports_ros_even_inside_functions():
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for package in LIBRARIES for path in sources(package)
                 for module, line in imports_of(path) if is_ros_module(module)]
    assert not offenders, offenders


def test_every_package_imports_only_the_layers_below_it():
    edges = package_edges()
    forbidden = {edge: places for edge, places in edges.items() if edge[1] not in ALLOWED[edge[0]]}
    assert not forbidden, forbidden


def test_every_top_level_package_is_in_the_rules():
    found = {path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name.startswith("jepa_")}
    assert found == set(PACKAGES), found ^ set(PACKAGES)


def test_no_import_cycle_between_the_packages():
    edges = package_edges()
    cycle = find_cycle(edges)
    assert cycle is None, describe(cycle, edges)


def test_no_import_cycle_between_the_files_of_a_package():
    cycles = {}
    for package in PACKAGES:
        edges = file_edges(package)
        cycle = find_cycle(edges)
        if cycle:
            cycles[package] = describe(cycle, edges)
    assert not cycles, cycles


def test_the_rules_are_acyclic():
    assert find_cycle({(a, b): [] for a, allowed in ALLOWED.items() for b in allowed}) is None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({("a", "b"): [], ("b", "c"): [], ("a", "c"): []}) is None
    assert find_cycle({("a", "b"): [], ("b", "c"): [], ("c", "a"): []}) == ["a", "b", "c", "a"]


def test_the_file_graph_sees_a_cycle_made_of_relative_and_function_level_imports(tmp_path, monkeypatch):
    """The file rule is not vacuous: two modules that import each other (one inside a function) are a cycle."""
    package = tmp_path / "jepa_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from jepa_probe_pkg import a\n    return a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    edges = file_edges("jepa_probe_pkg")
    assert find_cycle(edges) in (["jepa_probe_pkg.a", "jepa_probe_pkg.b", "jepa_probe_pkg.a"],
                                 ["jepa_probe_pkg.b", "jepa_probe_pkg.a", "jepa_probe_pkg.b"])

"""Test-session set-up: an isolated DDS domain on loopback and headless rendering."""
import os
import random
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Each pytest session gets its own ROS domain so parallel runs (and other sessions) never cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory):
    """The project's wheel, built once per session from a copy of the sources and installed into a fresh venv that
    borrows this environment's dependencies (test/support/wheel.py)."""
    from test.support.wheel import install_wheel

    return install_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models run fastest single-threaded, especially on a shared, busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: The test tiers (pytest.ini registers them): every test gets exactly one in pytest_collection_modifyitems.
TIERS = ("unit", "nodes", "slow")
#: Modules whose import into a test module means that module talks DDS: rclpy itself, the node helpers
#: (NodeProcess, Driver, ...), the launch runner's stack.
DDS_MODULES = ("rclpy", "test.support.nodes", "jepa_ros.launch_runner.stack")


def _uses_dds(module) -> bool:
    """The test module imports rclpy (or an rclpy submodule, or a name from one), the node helpers or the stack
    runner. `wait_until` alone (a plain polling helper that lives in the stack module) does not count."""
    for name, value in vars(module).items():
        origin = getattr(value, "__name__" if isinstance(value, type(os)) else "__module__", None)
        if name == "wait_until" or not isinstance(origin, str):
            continue
        if any(origin == m or origin.startswith(m + ".") for m in DDS_MODULES):
            return True
    return False


def default_tier(item: pytest.Item) -> str:
    """The tier of a test that has no tier mark: `nodes` for the modules under test/ros/ and for any module that
    imports rclpy, the node helpers or the stack runner (DDS_MODULES); `unit` for everything else. Slow tests
    without DDS are never guessed: their modules (or the tests) say so with `pytest.mark.slow`."""
    if HERE / "ros" in Path(str(item.path)).resolve().parents:
        return "nodes"
    module = getattr(item, "module", None)
    return "nodes" if module is not None and _uses_dds(module) else "unit"


def closest_tier(item: pytest.Item) -> str | None:
    """The tier mark nearest the test: its own (decorator, parametrize id), else its class's, else its module's
    `pytestmark`; two different tiers on one level are an error."""
    for node in reversed(item.listchain()):
        tiers = {m.name for m in node.own_markers if m.name in TIERS}
        if len(tiers) > 1:
            raise pytest.UsageError(f"{node.nodeid}: one tier per test, found {sorted(tiers)}")
        if tiers:
            return tiers.pop()
    return None


@pytest.hookimpl(tryfirst=True)   # before `-m` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test ends up with exactly one tier, on the test itself: the closest explicit one wins (a test marked
    slow in a module marked unit is slow only, so `-m unit` leaves it out), else default_tier. The tier marks of
    modules and classes are moved down onto their tests, so that `-m` sees only the test's tier."""
    tiers = {item: closest_tier(item) or default_tier(item) for item in items}
    for item in items:
        for parent in item.listchain()[:-1]:
            parent.own_markers[:] = [m for m in parent.own_markers if m.name not in TIERS]
    for item, tier in tiers.items():
        if not any(m.name == tier for m in item.own_markers):
            item.add_marker(tier)

"""The test tiers (pytest.ini, test/conftest.py): every test has exactly one of unit, nodes, slow, so `-m unit`,
`-m nodes` and `-m slow` split `make test` with nothing left out and nothing run twice."""
from __future__ import annotations

import types

import pytest

from test.conftest import DDS_MODULES, TIERS, _uses_dds

pytestmark = pytest.mark.unit


def test_every_test_of_this_session_has_exactly_one_tier(request):
    """What `-m` sees: the marks of the test, its class and its module together."""
    several = {item.nodeid: tiers for item in request.session.items
               if len(tiers := [m.name for m in item.iter_markers() if m.name in TIERS]) != 1}
    assert not several, several


def test_the_ini_registers_the_tiers(pytestconfig):
    registered = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    assert set(TIERS) <= registered
    assert "--strict-markers" in pytestconfig.getini("addopts")


def test_a_module_importing_rclpy_or_the_node_helpers_talks_dds():
    def module(**names) -> types.ModuleType:
        m = types.ModuleType("test_fake")
        m.__dict__.update(names)
        return m

    rclpy = types.ModuleType("rclpy")
    node_class = type("Node", (), {"__module__": "rclpy.node"})
    helper = type("NodeProcess", (), {"__module__": "test.support.nodes"})
    stack = type("Stack", (), {"__module__": "jepa_ros.launch_runner.stack"})
    for found in (module(rclpy=rclpy), module(Node=node_class), module(NodeProcess=helper), module(Stack=stack)):
        assert _uses_dds(found)
    wait_until = types.FunctionType((lambda: None).__code__, {}, "wait_until")
    wait_until.__module__ = "jepa_ros.launch_runner.stack"
    look_alike = type("X", (), {"__module__": "rclpy_extras"})
    for plain in (module(np=types.ModuleType("numpy")), module(wait_until=wait_until), module(X=look_alike)):
        assert not _uses_dds(plain)
    assert "rclpy" in DDS_MODULES

"""The launch-file reader follows ROS 2 launch for namespaces, conditions, $(env)/$(eval), `args` splitting and
empty values, and refuses what it does not support with an error naming the attribute. Command lines are checked
by handing them to rcl itself (a node created with them as its arguments). The runner leaves out a viewer
(rviz2, `rviz:=true`) that is not installed, saying so, and starts one from its ament prefix when it is; the RViz
config and the Foxglove layout show the planner's topics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import rclpy
import yaml

from jepa_common import frames, package_data, topics
from jepa_ros.launch_runner.launch_file import LaunchFileError, read_launch_file
from jepa_ros.launch_runner.stack import Stack, wait_until


def launch_file(tmp_path: Path, body: str, name: str = "test.launch.xml") -> Path:
    path = tmp_path / name
    path.write_text(f"<launch>\n{body}\n</launch>\n")
    return path


def read(tmp_path: Path, body: str, arguments: dict[str, str] | None = None):
    return read_launch_file(launch_file(tmp_path, body), arguments)


@pytest.fixture(scope="module")
def rcl():
    """A private rclpy context; `rcl(spec)` is what rcl makes of the node's --ros-args."""
    context = rclpy.Context()
    rclpy.init(context=context)

    def as_rcl_sees_it(spec):
        node = rclpy.create_node("unnamed", context=context, cli_args=spec.ros_args(),
                                 use_global_arguments=False, automatically_declare_parameters_from_overrides=True)
        try:
            return node.get_name(), node.get_namespace(), {p: node.get_parameter(p).value for p in spec.params}
        finally:
            node.destroy_node()

    yield as_rcl_sees_it
    rclpy.try_shutdown(context=context)


# ------------------------------------------------------------------------------------------------ namespaces
def test_node_namespace_reaches_the_command_line(tmp_path, rcl):
    nodes = read(tmp_path, '<node pkg="jepa_ros" exec="controller_node" namespace="robot1"/>'
                           '<node pkg="jepa_ros" exec="planner_node" namespace="/robot2/arm"/>'
                           '<node pkg="jepa_ros" exec="sim_node"/>')
    assert [n.namespace for n in nodes] == ["/robot1", "/robot2/arm", None]
    assert rcl(nodes[0])[:2] == ("controller_node", "/robot1")
    assert rcl(nodes[1])[:2] == ("planner_node", "/robot2/arm")
    assert rcl(nodes[2])[:2] == ("sim_node", "/")


def test_group_and_push_ros_namespace_nest_and_pop_like_launch(tmp_path):
    nodes = read(tmp_path, """
      <group>
        <push-ros-namespace namespace="fleet"/>
        <node pkg="jepa_ros" exec="sim_node" name="a"/>
        <node pkg="jepa_ros" exec="sim_node" name="b" namespace="arm1"/>
        <node pkg="jepa_ros" exec="sim_node" name="c" namespace="/absolute"/>
        <group><push-ros-namespace namespace="inner"/><node pkg="jepa_ros" exec="sim_node" name="d"/></group>
        <node pkg="jepa_ros" exec="sim_node" name="e"/>
      </group>
      <node pkg="jepa_ros" exec="sim_node" name="f"/>
      <group scoped="false"><push-ros-namespace namespace="leaks"/></group>
      <node pkg="jepa_ros" exec="sim_node" name="g"/>""")
    assert {n.name: n.namespace for n in nodes} == {
        "a": "/fleet", "b": "/fleet/arm1", "c": "/absolute", "d": "/fleet/inner", "e": "/fleet", "f": None,
        "g": "/leaks"}


def test_invalid_namespace_names_the_attribute(tmp_path):
    with pytest.raises(LaunchFileError, match=r"attribute 'namespace'.*'/bad name' is not a valid ROS namespace"):
        read(tmp_path, '<node pkg="jepa_ros" exec="sim_node" namespace="bad name"/>')


# ------------------------------------------------------------------------------------------------ conditions
@pytest.mark.parametrize("value, started", [("true", True), ("True", True), (" 1 ", True), ("TRUE", True),
                                            ("false", False), ("0", False), ("False", False)])
def test_if_and_unless_follow_launch_truthiness(tmp_path, value, started):
    body = ('<arg name="flag" default="false"/>'
            '<node pkg="jepa_ros" exec="sim_node" name="with_if" if="$(var flag)"/>'
            '<node pkg="jepa_ros" exec="sim_node" name="with_unless" unless="$(var flag)"/>')
    names = [n.name for n in read(tmp_path, body, {"flag": value})]
    assert names == (["with_if"] if started else ["with_unless"])


def test_conditions_on_groups_and_args(tmp_path):
    body = """
      <arg name="sim" default="true"/>
      <arg name="device" default="cpu" unless="$(var sim)"/>
      <arg name="device" default="auto" if="$(var sim)"/>
      <group if="$(var sim)"><node pkg="jepa_ros" exec="sim_node"/></group>
      <group unless="$(var sim)"><node pkg="jepa_ros" exec="controller_node"/></group>
      <node pkg="jepa_ros" exec="planner_node"><param name="device" value="$(var device)"/></node>"""
    assert [(n.name, n.params) for n in read(tmp_path, body)] == [("sim_node", {}),
                                                                 ("planner_node", {"device": "auto"})]
    assert [(n.name, n.params) for n in read(tmp_path, body, {"sim": "0"})] == [
        ("controller_node", {}), ("planner_node", {"device": "cpu"})]


@pytest.mark.parametrize("value", ["yes", "", "2", "on"])
def test_a_condition_that_is_not_a_boolean_is_refused(tmp_path, value):
    with pytest.raises(LaunchFileError, match="attribute 'if'.*not a condition"):
        read(tmp_path, '<arg name="flag" default="x"/><node pkg="jepa_ros" exec="sim_node" if="$(var flag)"/>',
             {"flag": value})


def test_if_and_unless_together_are_refused(tmp_path):
    with pytest.raises(LaunchFileError, match="'if' and 'unless' cannot be used together"):
        read(tmp_path, '<node pkg="jepa_ros" exec="sim_node" if="true" unless="false"/>')


# ------------------------------------------------------------------------------------------ $(env) / $(eval)
def test_env_substitution_with_and_without_default(tmp_path, monkeypatch):
    monkeypatch.setenv("JEPA_TEST_ROBOT", "arm7")
    monkeypatch.delenv("JEPA_TEST_UNSET", raising=False)
    nodes = read(tmp_path, '<node pkg="jepa_ros" exec="sim_node" namespace="$(env JEPA_TEST_ROBOT)">'
                           '<param name="a" value="$(env JEPA_TEST_UNSET fallback)"/>'
                           '<param name="b" value="$(env JEPA_TEST_ROBOT fallback)"/>'
                           '<param name="c" value="x$(optenv JEPA_TEST_UNSET)y"/></node>')
    assert nodes[0].namespace == "/arm7" and nodes[0].params == {"a": "fallback", "b": "arm7", "c": "xy"}
    with pytest.raises(LaunchFileError, match=r"attribute 'value'.*environment variable 'JEPA_TEST_UNSET' does "
                                              r"not exist"):
        read(tmp_path, '<node pkg="jepa_ros" exec="sim_node"><param name="a" value="$(env JEPA_TEST_UNSET)"/>'
                       '</node>')


def test_eval_substitution_computes_python_expressions(tmp_path):
    body = """
      <arg name="n" default="3"/>
      <arg name="mode" default="sim"/>
      <node pkg="jepa_ros" exec="sim_node" if="$(eval &quot;'$(var mode)' == 'sim'&quot;)">
        <param name="twice" value="$(eval '2 * $(var n) + 1')"/>
        <param name="root" value="$(eval 'math.sqrt(16) + floor(pi)')"/>
        <param name="pick" value="$(eval &quot;'big' if $(var n) > 2 and not False else 'small'&quot;)"/>
        <param name="rate" value="$(eval '1.0 / max($(var n), 1)')"/>
      </node>
      <node pkg="jepa_ros" exec="planner_node" unless="$(eval '$(var n) in (1, 2, 3)')"/>"""
    nodes = read(tmp_path, body)
    assert [n.name for n in nodes] == ["sim_node"]
    assert nodes[0].params == {"twice": "7", "root": "7.0", "pick": "big", "rate": str(1.0 / 3)}
    assert [n.name for n in read(tmp_path, body, {"mode": "real", "n": "5"})] == ["planner_node"]


@pytest.mark.parametrize("expression, complaint", [
    ("__import__('os').system('touch /tmp/jepa_launch_pwned')", "is not allowed"),
    ("__import__('os')", "unknown name '__import__'"),
    ("().__class__.__bases__", "attribute"),
    ("[x for x in (1, 2)]", "ListComp is not allowed"),
    ("open('/etc/passwd')", "unknown name 'open'"),
    ("2 ** 10 ** 10", "too large"),
    ("'a' * 10 ** 9", "too long"),
    ("1 +", "not a Python expression"),
    ("lambda: 1", "Lambda is not allowed"),
])
def test_eval_refuses_everything_but_plain_expressions_naming_the_attribute(tmp_path, expression, complaint):
    quoted = expression.replace("'", "&apos;")
    with pytest.raises(LaunchFileError, match=rf"attribute 'value'.*{complaint}"):
        read(tmp_path, f'<node pkg="jepa_ros" exec="sim_node"><param name="x" value="$(eval &quot;{quoted}&quot;)"/>'
                       f'</node>')
    assert not Path("/tmp/jepa_launch_pwned").exists()


# -------------------------------------------------------------------------------------------- args and values
def test_args_are_split_with_shell_rules_and_substitutions_stay_whole(tmp_path):
    body = ('<arg name="topic" default="/my camera"/>'
            '<node pkg="jepa_ros" exec="sim_node" '
            'args="--title \'two words\' &quot;double quoted&quot; plain $(var topic)@sensor --last"/>')
    assert read(tmp_path, body)[0].arguments == ["--title", "two words", "double quoted", "plain",
                                                 "/my camera@sensor", "--last"]


def test_args_with_an_unclosed_quote_name_the_attribute(tmp_path):
    with pytest.raises(LaunchFileError, match="attribute 'args'.*No closing quotation"):
        read(tmp_path, '<node pkg="jepa_ros" exec="sim_node" args="--title \'open"/>')


def test_an_empty_value_is_an_empty_string_parameter(tmp_path, rcl):
    nodes = read(tmp_path, '<node pkg="jepa_ros" exec="sim_node"><param name="empty" value=""/>'
                           '<param name="spaces" value="  "/><param name="text" value="two words"/>'
                           '<param name="number" value="2.5"/></node>')
    assert rcl(nodes[0]) == ("sim_node", "/", {"empty": "", "spaces": "", "text": "two words", "number": 2.5})


# ------------------------------------------------------------------------------------ refused, with a reason
@pytest.mark.parametrize("body, attribute", [
    ('<node pkg="jepa_ros" exec="sim_node" respawn="true"/>', "respawn"),
    ('<node pkg="jepa_ros" exec="sim_node" launch-prefix="gdb -ex run"/>', "launch-prefix"),
    ('<node pkg="jepa_ros" exec="sim_node" ros_args="--log-level debug"/>', "ros_args"),
    ('<node pkg="jepa_ros" exec="sim_node" args="$(command ls)"/>', "args"),
    ('<node pkg="jepa_ros" exec="sim_node"><param name="x" value="$(anon x)"/></node>', "value"),
    ('<node pkg="jepa_ros" exec="sim_node"><remap from="a" to="b" if="true"/></node>', "if"),
    ('<group forwarding="false"/>', "forwarding"),
    ('<arg name="x" choices="a,b" default="a"/>', "choices"),
])
def test_unsupported_attributes_and_substitutions_are_refused_by_name(tmp_path, body, attribute):
    with pytest.raises(LaunchFileError, match=f"attribute '{attribute}'"):
        read(tmp_path, body)


@pytest.mark.parametrize("tag", ["let", "include", "executable", "set_env"])
def test_unsupported_tags_are_refused_by_name(tmp_path, tag):
    with pytest.raises(LaunchFileError, match=f"<{tag}> is not supported"):
        read(tmp_path, f'<{tag} name="x" value="y"/>')


def test_scoped_group_arguments_do_not_leak_and_given_arguments_are_seen_everywhere(tmp_path):
    body = """
      <group><arg name="inner" default="1"/></group>
      <node pkg="jepa_ros" exec="sim_node"><param name="x" value="$(var inner)"/></node>"""
    with pytest.raises(LaunchFileError, match="launch argument 'inner' is not declared"):
        read(tmp_path, body)
    assert read(tmp_path, body, {"inner": "7"})[0].params == {"x": "7"}
    with pytest.raises(LaunchFileError, match=r"unknown launch arguments \['typo'\]"):
        read(tmp_path, body, {"typo": "1"})


# ---------------------------------------------------------------------------------------------------- viewers
@pytest.mark.parametrize("name", ["sim.launch.xml", "sim_push.launch.xml"])
def test_rviz_true_adds_rviz2_with_the_packaged_config_and_is_off_by_default(name):
    path = package_data.launch_file(name)
    assert "rviz2" not in [n.name for n in read_launch_file(path)]
    (rviz,) = [n for n in read_launch_file(path, {"rviz": "true"}) if n.package == "rviz2"]
    assert rviz.executable == "rviz2" and rviz.arguments == ["-d", str(package_data.config_file("jepa.rviz"))]
    assert Path(rviz.arguments[1]).is_file()


def test_the_runner_goes_on_without_rviz2_when_it_is_not_installed_and_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    stack = Stack(package_data.launch_file("sim.launch.xml"), {"rviz": "true"}, log_dir=tmp_path / "logs")
    assert "rviz2" not in stack.specs and "rviz2" in stack.left_out
    assert set(stack.specs) == {"sim_node", "perception_node", "planner_node", "controller_node"}
    assert "rviz2 is not installed: going on without it" in capsys.readouterr().err
    assert all(Path(stack.command(spec)[0]).is_file() for spec in stack.specs.values())


def test_the_runner_starts_an_installed_rviz2_from_its_ament_prefix(monkeypatch, capsys, tmp_path):
    executable = tmp_path / "lib" / "rviz2" / "rviz2"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\necho \"rviz2 $*\"\n")
    executable.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    stack = Stack(package_data.launch_file("sim.launch.xml"), {"rviz": "true"}, log_dir=tmp_path / "logs")
    assert not stack.left_out and capsys.readouterr().err == ""
    command = stack.command(stack.specs["rviz2"])
    assert command[:3] == [str(executable), "-d", str(package_data.config_file("jepa.rviz"))]
    stack.start("rviz2")
    assert wait_until(lambda: not stack.alive("rviz2"), 10.0)
    assert stack.log_tail("rviz2").startswith(f"rviz2 -d {package_data.config_file('jepa.rviz')}")


@pytest.mark.unit
def test_the_rviz_config_and_foxglove_layout_show_the_planners_topics_in_the_base_frame():
    rviz = yaml.safe_load(package_data.config_file("jepa.rviz").read_text())["Visualization Manager"]
    assert rviz["Global Options"]["Fixed Frame"] == frames.BASE
    shown = {d["Class"].split("/")[-1]: d["Topic"]["Value"] for d in rviz["Displays"] if "Topic" in d
             and d["Topic"]["Value"].startswith("/jepa/")}
    assert shown == {"Image": topics.PREDICTION_IMAGE, "Path": topics.PLANNED_PATH,
                     "MarkerArray": topics.PLANNED_PATH_MARKERS}
    layout = json.loads(package_data.config_file("foxglove_layout.json").read_text())
    panels = layout["configById"]
    assert panels["Image!prediction"]["imageMode"]["imageTopic"] == topics.PREDICTION_IMAGE
    assert set(panels["3D!path"]["topics"]) == {topics.PLANNED_PATH, topics.PLANNED_PATH_MARKERS}
    assert panels["3D!path"]["followTf"] == frames.BASE
    assert panels["Plot!energies"]["paths"][0]["value"] == f"{topics.PLAN}.energy"
    placed = json.dumps(layout["layout"])
    assert all(f'"{panel}"' in placed for panel in panels)

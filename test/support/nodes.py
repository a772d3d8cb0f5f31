"""Shared helpers of the node tests (no tests here): node processes, a test-side rclpy driver, a fake planner.

Run as a module it is the fake planner process: ``python -m test.support.nodes planner --rate 10 --dx 0.005``
publishes a fresh one-step Plan [dx, 0, 0] on /jepa/plan at ``rate`` Hz until killed.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

from jepa_common import frames, topics
from jepa_ros.launch_runner.stack import wait_until

REPO = Path(__file__).resolve().parents[2]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return str(value)


def ros_args(params_file: str | None = None, remaps: dict[str, str] | None = None, **params: Any) -> list[str]:
    """`--ros-args` list: a YAML file (under config/ unless absolute), then -p overrides and -r remaps."""
    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", params_file if os.path.isabs(params_file) else str(REPO / "config" / params_file)]
    for name, value in params.items():
        args += ["-p", f"{name}:={_format(value)}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    return args


def wildcard_params(params_file: str) -> str:
    """A temp copy of config/<params_file> keyed `/**` so that it also applies to renamed/namespaced nodes."""
    import yaml

    sections = yaml.safe_load((REPO / "config" / params_file).read_text())
    merged: dict = {}
    for section in sections.values():
        merged.update(section["ros__parameters"])
    out = tempfile.NamedTemporaryFile("w", prefix="params_", suffix=".yaml", delete=False)
    with out:
        yaml.safe_dump({"/**": {"ros__parameters": merged}}, out)
    return out.name


class NodeProcess:
    """A node (or any python command) in its own OS process, its output captured in a temp file."""

    def __init__(self, argv: list[str]):
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
                   RCUTILS_COLORIZED_OUTPUT="0", PYTHONPATH=os.pathsep.join(
                       [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self._log = tempfile.NamedTemporaryFile(prefix="node_", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @classmethod
    def module(cls, module: str, args: list[str]) -> "NodeProcess":
        """`python -m module args...`."""
        return cls(["-m", module, *args])

    def output(self) -> str:
        """Everything the process printed so far."""
        return Path(self._log.name).read_text(errors="replace")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def interrupt(self) -> None:
        """Send SIGINT (a normal shutdown) without waiting."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL if it does not exit; returns the exit code."""
        if self.alive():
            self.interrupt()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        """Stop and remove the log file."""
        self.stop()
        Path(self._log.name).unlink(missing_ok=True)


def cleanup_all(processes: list[NodeProcess]) -> None:
    """Interrupt every process at once (their shutdowns overlap), then reap them."""
    for process in processes:
        process.interrupt()
    for process in processes:
        process.cleanup()


class Collector:
    """Messages received on one topic, in arrival order, thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: list = []

    def __call__(self, msg) -> None:
        with self._lock:
            self._items.append(msg)

    @property
    def messages(self) -> list:
        """A snapshot of the messages so far."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class Driver:
    """The test side of the DDS conversation: one rclpy node spun in a background thread.

    Make action clients before the thread spins (``Driver(spin=False)``, then ``start()``): rclpy (9.1) adds an
    ActionClient to its node before the client is fully built, and an executor spinning in another thread that
    looks at it then dies with an AttributeError, silently ending every callback of the test.
    """

    def __init__(self, spin: bool = True):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"test_driver_{uuid.uuid4().hex[:8]}", context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        if spin:
            self.start()

    def start(self) -> None:
        """Start spinning the node in the background thread."""
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    def now(self) -> float:
        """ROS time in seconds (the nodes use the same system clock)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def stamp(self, seconds: float | None = None):
        """A builtin_interfaces/Time for `seconds` (default now)."""
        from builtin_interfaces.msg import Time
        seconds = self.now() if seconds is None else seconds
        sec = int(seconds // 1)
        return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)

    def collect(self, msg_type, topic: str, qos) -> Collector:
        """Subscribe and keep every message."""
        collector = Collector()
        self.node.create_subscription(msg_type, topic, collector, qos)
        return collector

    def publisher(self, msg_type, topic: str, qos):
        """A publisher of the test node."""
        return self.node.create_publisher(msg_type, topic, qos)

    def every(self, period: float, callback: Callable[[], None]):
        """A timer in the spin thread; cancel it with `.cancel()`."""
        return self.node.create_timer(period, callback)

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 20.0) -> None:
        """Block until `publisher` is matched (discovery done)."""
        assert wait_until(lambda: publisher.get_subscription_count() >= count, timeout), \
            f"no subscriber on {publisher.topic_name} after {timeout} s"

    def call(self, srv_type, name: str, request, timeout: float = 20.0):
        """Call a service and wait for the response."""
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            future = client.call_async(request)
            assert wait_until(future.done, timeout, 0.005), f"no response from {name}"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        """Shut the node and the context down."""
        import rclpy
        self._executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread.is_alive():
            self._thread.join(5.0)


def latest_status(collector: Collector, name: str):
    """The newest DiagnosticStatus named `name` as (level (bytes, like DiagnosticStatus.OK), message, values
    dict), or None."""
    for array in reversed(collector.messages):
        for status in array.status:
            if status.name == name:
                return status.level, status.message, {kv.key: kv.value for kv in status.values}
    return None


def wait_status(collector: Collector, name: str, predicate: Callable, timeout: float = 10.0):
    """Wait for a status of `name` satisfying predicate(level, message, values); returns it (or the last one)."""
    found = {}

    def check() -> bool:
        status = latest_status(collector, name)
        found["status"] = status
        return status is not None and predicate(*status)

    wait_until(check, timeout, 0.05)
    return found.get("status")


# ------------------------------------------------------------------------------------------- controller helpers
CONTROLLER_STATUS = "jepa_ros: controller_node"
HOME_Q = [0.0, 0.43, 2.04]


def set_bool(driver: Driver, service: str, value: bool):
    """Call a std_srvs/SetBool service (e.g. /controller_node/arm)."""
    from std_srvs.srv import SetBool
    return driver.call(SetBool, service, SetBool.Request(data=value))


def wait_for_service(driver: Driver, name: str, process: NodeProcess, timeout: float = 60.0) -> None:
    """Wait for a node's SetBool service (the node is up); fail with the node's output otherwise."""
    from std_srvs.srv import SetBool
    client = driver.node.create_client(SetBool, name)
    ready = client.wait_for_service(timeout_sec=timeout)
    driver.node.destroy_client(client)
    assert ready, f"{name} did not come up:\n{process.output()}"


def make_plan(driver: Driver, rows, names=("dx", "dy", "dz"), units=None, sequence: int = 1,
              stamp: float | None = None, energy: float = 0.5):
    """A jepa_msgs/Plan stamped `stamp` (default now) with a finite `energy` (the controller refuses NaN)."""
    import numpy as np
    from jepa_msgs.msg import Plan

    from jepa_ros.msg_validation import fill_plan
    msg = Plan()
    msg.header.stamp = driver.stamp(stamp)
    units = units if units is not None else ["m"] * len(names)
    return fill_plan(msg, np.asarray(rows, dtype=np.float32), action_names=list(names), action_units=units,
                     sequence=sequence, energy=energy)


class Robot:
    """Plays the arm: publishes /ee_pose (or /joint_states) with fresh stamps at 50 Hz from the spin thread."""

    def __init__(self, driver: Driver, joints: bool = False):
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        from jepa_ros.ros_util import reliable_qos
        self.driver = driver
        self.joints = joints
        self.position = list(HOME_Q) if joints else [0.3, 0.0, 0.2]
        self.last_stamp: float | None = None
        self.publisher = driver.publisher(JointState if joints else PoseStamped,
                                          topics.JOINT_STATES if joints else topics.EE_POSE, reliable_qos(5))
        self.timer = None
        self.start()

    def start(self) -> None:
        """(Re)start publishing."""
        if self.timer is None:
            self.timer = self.driver.every(0.02, self.publish)

    def stop(self) -> None:
        """Stop publishing (the state goes stale)."""
        if self.timer is not None:
            self.timer.cancel()
            self.driver.node.destroy_timer(self.timer)
            self.timer = None

    def publish(self) -> None:
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState
        now = self.driver.now()
        if self.joints:
            # An extra joint and a shuffled order: the controller must pick its joints by name.
            msg = JointState(name=["gripper", "elbow_pitch", "base_yaw", "shoulder_pitch"],
                             position=[0.7, self.position[2], self.position[0], self.position[1]])
            msg.header.stamp = self.driver.stamp(now)
        else:
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = self.driver.stamp(now), frames.BASE
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = self.position
            msg.pose.orientation.w = 1.0
        self.publisher.publish(msg)
        self.last_stamp = now


def twist_vector(msg):
    """TwistStamped -> [vx, vy, vz, wx, wy, wz]."""
    import numpy as np
    t = msg.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])


def moving(msg) -> bool:
    """Whether a TwistStamped commands any motion."""
    return bool((twist_vector(msg) != 0.0).any())


def stamped_after(messages, t: float) -> list:
    """Messages whose header stamp is later than `t`."""
    from jepa_ros.ros_util import stamp_seconds
    return [m for m in messages if stamp_seconds(m.header.stamp) > t]


class FollowingRobot(Robot):
    """A Robot whose /ee_pose follows the controller's twist commands exactly as stamped, each held until the next
    (as the sim and MoveIt Servo do); `stop()` silences the pose stream while the arm keeps following."""

    def __init__(self, driver: Driver, position):
        import numpy as np
        from geometry_msgs.msg import TwistStamped

        from jepa_ros.ros_util import reliable_qos
        self._lock = threading.Lock()
        self._origin = np.asarray(position, dtype=float)   # the position at the stamp of the last command
        self._command: tuple[float, Any] | None = None      # (stamp, linear velocity) of the last command
        self.commands: list[tuple[float, Any]] = []
        driver.node.create_subscription(TwistStamped, topics.SERVO_TWIST, self._on_twist,
                                        reliable_qos(100))
        super().__init__(driver)
        self.position = list(position)

    def _on_twist(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        stamp, velocity = stamp_seconds(msg.header.stamp), twist_vector(msg)[:3]
        with self._lock:
            if self._command is not None:
                self._origin = self._origin + self._command[1] * (stamp - self._command[0])
            self._command = (stamp, velocity)
            self.commands.append((stamp, velocity))

    def position_at(self, t: float) -> list[float]:
        """Where the arm is at time `t` (after the last command received)."""
        with self._lock:
            if self._command is None:
                return self._origin.tolist()
            return (self._origin + self._command[1] * max(0.0, t - self._command[0])).tolist()

    def publish(self) -> None:
        self.position = self.position_at(self.driver.now())
        super().publish()


class ControllerBench:
    """One controller process (params over config/controller.yaml) plus the test side: a robot (`robot(driver)`,
    default a fixed /ee_pose), a plan publisher, and collectors of its commands, its diagnostics and the plans."""

    ARM, ESTOP = "/controller_node/arm", "/controller_node/estop"

    def __init__(self, robot: Callable[[Driver], Robot] | None = None, **params: Any):
        import itertools

        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from jepa_msgs.msg import Plan

        from jepa_ros.ros_util import reliable_qos
        self.driver = Driver()
        self.twists = self.driver.collect(TwistStamped, topics.SERVO_TWIST, reliable_qos(100))
        self.diagnostics = self.driver.collect(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(50))
        self.seen_plans = self.driver.collect(Plan, topics.PLAN, reliable_qos(50))
        self.robot = (robot or Robot)(self.driver)
        self.processes = [NodeProcess.module("jepa_ros.nodes.controller_node", ros_args("controller.yaml", **params))]
        wait_for_service(self.driver, self.ARM, self.processes[0])
        self.plans = self.driver.publisher(Plan, topics.PLAN, reliable_qos(5))
        self.driver.wait_for_subscribers(self.plans)
        # Up and receiving the robot state (arming needs it).
        assert wait_status(self.diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: float(v["state_age"]) < 1.0), \
            self.report()
        self._sequence = itertools.count(1)
        self.feeder = None

    def next_sequence(self) -> int:
        """A fresh Plan.sequence."""
        return next(self._sequence)

    def feed(self, on: bool, row=(0.005, 0.0, 0.0), names=("dx", "dy", "dz"), units=None) -> None:
        """Publish fresh one-step plans `row` at 10 Hz from the test process (on) or stop (off)."""
        if on and self.feeder is None:
            self.feeder = self.driver.every(0.1, lambda: self.plans.publish(
                make_plan(self.driver, [list(row)], names=names, units=units, sequence=self.next_sequence())))
        elif not on and self.feeder is not None:
            self.feeder.cancel()
            self.driver.node.destroy_timer(self.feeder)
            self.feeder = None

    def arm(self, timeout: float = 10.0) -> float:
        """Arm the controller (it must succeed; retried while the state is not fresh yet, e.g. after
        `robot.start()`); returns the time just before the successful request."""
        last = {}

        def attempt() -> bool:
            last["before"] = self.driver.now()
            last["response"] = set_bool(self.driver, self.ARM, True)
            return last["response"].success or "no fresh state" not in last["response"].message

        wait_until(attempt, timeout, 0.1)
        assert last["response"].success, (last["response"].message, self.report())
        return last["before"]

    def moving_after(self, t: float) -> bool:
        """Whether a command stamped after `t` moves."""
        return any(moving(m) for m in stamped_after(self.twists.messages, t))

    def assert_stopped_after(self, t: float) -> None:
        """Commands stamped after `t` exist (wait for them) and none of them moves."""
        assert wait_until(lambda: len(stamped_after(self.twists.messages, t + 0.2)) > 0, 10.0)
        late = stamped_after(self.twists.messages, t)
        assert late and not any(moving(m) for m in late), [m.twist.linear.x for m in late]

    def status(self):
        """The controller's latest (level, message, values)."""
        return latest_status(self.diagnostics, CONTROLLER_STATUS)

    def report(self) -> str:
        """The controller's latest status and log, for assertion messages."""
        return f"{self.status()}\n{self.processes[0].output()[-3000:]}"

    def close(self) -> None:
        self.feed(False)
        cleanup_all(self.processes)
        self.driver.close()


def run_fake_planner(argv: list[str]) -> int:
    """The fake planner process: fresh one-step plans on /jepa/plan until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--dx", type=float, default=0.005)
    options = parser.parse_args(argv)
    import numpy as np
    import rclpy
    from jepa_msgs.msg import Plan

    from jepa_ros.msg_validation import fill_plan
    from jepa_ros.ros_util import reliable_qos

    rclpy.init()
    node = rclpy.create_node(f"fake_planner_{uuid.uuid4().hex[:6]}")
    publisher = node.create_publisher(Plan, topics.PLAN, reliable_qos(5))
    sequence = [0]

    def publish() -> None:
        sequence[0] += 1
        msg = Plan()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = frames.CAMERA_OPTICAL
        fill_plan(msg, np.array([[options.dx, 0.0, 0.0]]), action_names=["dx", "dy", "dz"],
                  action_units=["m", "m", "m"], energies=[0.5], energy=0.5, sequence=sequence[0])
        publisher.publish(msg)

    node.create_timer(1.0 / options.rate, publish)
    rclpy.spin(node)
    return 0


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "planner":
    sys.exit(run_fake_planner(sys.argv[2:]))


def run_fake_twist(argv: list[str]) -> int:
    """A fake servo client process: ``python -m test.support.nodes twist --rate 50 --vx 0.4`` publishes a
    constant TwistStamped (frame base_link, fresh stamps) on /servo_node/delta_twist_cmds until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--vx", type=float, default=0.4)
    options = parser.parse_args(argv)
    import rclpy
    from geometry_msgs.msg import TwistStamped

    from jepa_ros.ros_util import reliable_qos

    rclpy.init()
    node = rclpy.create_node(f"fake_twist_{uuid.uuid4().hex[:6]}")
    publisher = node.create_publisher(TwistStamped, topics.SERVO_TWIST, reliable_qos(5))

    def publish() -> None:
        msg = TwistStamped()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = frames.BASE
        msg.twist.linear.x = options.vx
        publisher.publish(msg)

    node.create_timer(1.0 / options.rate, publish)
    rclpy.spin(node)
    return 0


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "twist":
    sys.exit(run_fake_twist(sys.argv[2:]))

"""Small ROS 2 helpers shared by the nodes: QoS profiles, declared parameters, stamps and /diagnostics."""
from __future__ import annotations

import signal
from typing import Any, Callable, Sequence, TypeVar

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy import Parameter
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions

from jepa_common import topics
from jepa_common.settings import SettingsError, check_value, describe, settings_fields

SettingsT = TypeVar("SettingsT")
_ARRAY_TYPES = {float: Parameter.Type.DOUBLE_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
                str: Parameter.Type.STRING_ARRAY, bool: Parameter.Type.BOOL_ARRAY}

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


def sensor_qos() -> QoSProfile:
    """Best-effort, keep-last-5: the standard profile for camera images."""
    return qos_profile_sensor_data


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable, volatile, keep-last `depth`: embeddings, plans, commands."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)


def latched_qos() -> QoSProfile:
    """Reliable, transient-local, depth 1: a late subscriber still gets the last value (e-stop, goals)."""
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


def declare(node: Node, name: str, default: Any, description: str, *, low: float | None = None,
            high: float | None = None, read_only: bool = False) -> Any:
    """Declare a parameter with a descriptor (and a range for numbers); return its current value."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if low is not None and high is not None:
        if isinstance(default, bool):
            raise TypeError(f"parameter {name}: a range makes no sense for a bool")
        if isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                                  step=0.0)]
    return node.declare_parameter(name, default, descriptor).value


def declare_settings(node: Node, cls: type[SettingsT], overrides: dict[str, Any] | None = None) -> SettingsT:
    """Declare one parameter per field of settings dataclass `cls` (descriptor, range, read-only) and return the
    settings built from the parameters' values; a bad value raises ParameterException naming the parameter, an
    inconsistent combination the settings class's ValueError.

    `overrides` replace a field's default for this node only (e.g. bounds taken from the loaded model).
    """
    values = {}
    for field in settings_fields(cls):
        meta = field.metadata
        default = (overrides or {}).get(field.name, field.default)
        descriptor = ParameterDescriptor(description=describe(field), read_only=meta["read_only"])
        if isinstance(default, tuple):
            # an empty list has no ROS type of its own: declare the array type, then no value means "empty"
            default = [meta["item_type"](v) for v in default] or _ARRAY_TYPES[meta["item_type"]]
            value = node.declare_parameter(field.name, default, descriptor).value
            value = [] if value is None else list(value)
        else:
            low, high = meta["low"], meta["high"]
            if low is not None and high is not None and not isinstance(default, bool):
                if isinstance(default, int):
                    descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
                else:
                    descriptor.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                                          to_value=float(high), step=0.0)]
            value = node.declare_parameter(field.name, default, descriptor).value
        try:
            values[field.name] = check_value(field, value)
        except SettingsError as exc:
            raise ParameterException(str(exc), [field.name]) from exc
    return cls(**values)  # cross-field checks raise ValueError with their own message


def run_node(make_node: Callable[[], Node], name: str, args: Sequence[str] | None = None, *,
             make_executor: Callable[[], Executor] = SingleThreadedExecutor,
             startup_errors: tuple[type[BaseException], ...] = (ValueError, ParameterException),
             own_signals: bool = False) -> int:
    """Init rclpy, build the node, spin until Ctrl-C/SIGTERM, clean up; exit code 0, or 2 if it cannot start.

    `own_signals`: SIGINT/SIGTERM raise KeyboardInterrupt in the spinning thread instead of rclpy shutting the
    context down from its signal handler, so the node is torn down only between callbacks (for nodes holding
    native resources, such as the sim's GL renderer).
    """
    if own_signals:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _raise_keyboard_interrupt)
    else:
        rclpy.init(args=args)
    try:
        node = make_node()
    except startup_errors as exc:
        rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 2
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _raise_keyboard_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def stamp_seconds(stamp) -> float:
    """builtin_interfaces/Time -> seconds as float."""
    return stamp.sec + stamp.nanosec * 1e-9


def age_seconds(node: Node, stamp) -> float:
    """How old a header stamp is according to the node's clock (sim time aware)."""
    return node.get_clock().now().nanoseconds * 1e-9 - stamp_seconds(stamp)


class Diagnostics:
    """Publishes one DiagnosticStatus for a node on /diagnostics at a fixed rate.

    Call `set(level, message, **values)` whenever the node's condition changes; the timer republishes the
    latest status. Level becomes STALE when nothing was set for `stale_after` seconds.
    """

    def __init__(self, node: Node, name: str, period: float = 1.0, stale_after: float | None = None):
        self._node = node
        self._publisher = node.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self._status = DiagnosticStatus(name=f"jepa_ros: {name}", hardware_id=node.get_fully_qualified_name(),
                                        level=STALE, message="starting")
        self._stale_after = stale_after
        self._last_set = node.get_clock().now()
        self._timer = node.create_timer(period, self.publish)

    def set(self, level: bytes | int, message: str, **values: Any) -> None:
        """Record the node's current condition (OK/WARN/ERROR/STALE) with key values."""
        self._status.level = level if isinstance(level, bytes) else bytes([level])
        self._status.message = message
        self._status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
        self._last_set = self._node.get_clock().now()

    @property
    def level(self) -> bytes:
        """The level last set."""
        return self._status.level

    def publish(self) -> None:
        """Publish the current status now."""
        status = self._status
        if self._stale_after is not None:
            age = (self._node.get_clock().now() - self._last_set).nanoseconds * 1e-9
            if age > self._stale_after:
                status = DiagnosticStatus(name=status.name, hardware_id=status.hardware_id, level=STALE,
                                          message=f"no update for {age:.1f} s", values=status.values)
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [status]
        self._publisher.publish(array)

"""The ROS side of `jepa soak`: one rclpy node that records what the stack does and pokes at it.

:class:`SoakNode` (spun in a background thread) records every command on /servo_node/delta_twist_cmds, the genuine
state on /ee_pose, the plan times on /jepa/plan and the controller's /diagnostics as the
:mod:`jepa_control.command_audit` types, publishes the hostile messages of :mod:`jepa_ros.soak.hostile`, and calls
the controller's ~/arm and ~/estop services (each call recorded as a :class:`Gate`).
"""
from __future__ import annotations

import math
import threading

import numpy as np

from jepa_common import topics
from jepa_control.command_audit import Command, Gate, Pose
from jepa_ros.soak.hostile import HOSTILE_TOPICS, hostile_message


class SoakNode:
    """The soak's rclpy node (spun in a background thread): records commands, state, plans and the controller's
    diagnostics, publishes hostile messages and calls the controller's services."""

    def __init__(self, controller: str = "/controller_node"):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from jepa_msgs.msg import Embedding, Plan
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import Bool
        from std_srvs.srv import SetBool

        from jepa_ros.ros_util import latched_qos, reliable_qos, sensor_qos

        self.node = node = Node("jepa_soak")
        self._lock = threading.Lock()
        self._service_lock = threading.Lock()
        self.commands: list[Command] = []
        self.poses: list[Pose] = []
        self.future_poses = 0
        self.plan_times: list[float] = []
        self.gates: list[Gate] = []
        self.controller_values: dict[str, str] = {}
        self.last_embedding = None
        self.last_image = None
        node.create_subscription(TwistStamped, topics.SERVO_TWIST, self._on_twist, reliable_qos(200))
        node.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, reliable_qos(200))
        node.create_subscription(Plan, topics.PLAN, self._on_plan, reliable_qos(50))
        node.create_subscription(Embedding, topics.EMBEDDING, self._on_embedding, reliable_qos(5))
        node.create_subscription(Image, topics.CAMERA, self._on_image, sensor_qos())
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, reliable_qos(50))
        hostile_types = {"plan": (Plan, reliable_qos(5)), "embedding": (Embedding, reliable_qos(5)),
                         "image": (Image, sensor_qos()), "compressed": (CompressedImage, sensor_qos()),
                         "pose": (PoseStamped, reliable_qos(5))}
        self._hostile_pubs = {key: node.create_publisher(msg_type, HOSTILE_TOPICS[key], qos)
                              for key, (msg_type, qos) in hostile_types.items()}
        self.estop_pub = node.create_publisher(Bool, topics.ESTOP, latched_qos())
        self._arm = node.create_client(SetBool, f"{controller}/arm")
        self._estop = node.create_client(SetBool, f"{controller}/estop")
        self._diag_name = f"jepa_ros: {controller.strip('/')}"
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    # --- time ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        """ROS time [s] (the nodes' clock: the system clock)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    # --- recording ----------------------------------------------------------------------------------------
    def _on_twist(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        t, a = msg.twist.linear, msg.twist.angular
        with self._lock:
            self.commands.append(Command(stamp_seconds(msg.header.stamp), (t.x, t.y, t.z), (a.x, a.y, a.z)))

    def _on_pose(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        stamp, p = stamp_seconds(msg.header.stamp), msg.pose.position
        position = (p.x, p.y, p.z)
        with self._lock:
            if stamp > self.now() + 0.5 or not all(math.isfinite(v) for v in position):
                self.future_poses += 1   # a hostile one (ours): not the state of the arm
                return
            self.poses.append(Pose(stamp, position))

    def _on_plan(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        with self._lock:
            self.plan_times.append(min(stamp_seconds(msg.header.stamp), self.now()))

    def _on_embedding(self, msg) -> None:
        if msg.header.stamp.sec < self.now() + 60:  # not one of ours
            self.last_embedding = msg

    def _on_image(self, msg) -> None:
        if msg.height * msg.width <= 4096 * 4096 and len(msg.data) == msg.height * msg.step and msg.step:
            self.last_image = msg

    def _on_diagnostics(self, msg) -> None:
        from jepa_ros.ros_util import stamp_seconds
        for status in msg.status:
            if status.name != self._diag_name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            with self._lock:
                self.controller_values = values
                if values.get("armed") == "False" or values.get("estop") == "True":
                    self.gates.append(Gate(stamp_seconds(msg.header.stamp), False,
                                           f"controller reports: {status.message}", from_diagnostics=True))

    def add_gate(self, gate: Gate) -> None:
        """Record a gate the soak caused."""
        with self._lock:
            self.gates.append(gate)

    def snapshot(self) -> tuple[list[Command], list[Pose], list[float], list[Gate]]:
        """Copies of what was recorded."""
        with self._lock:
            return list(self.commands), list(self.poses), list(self.plan_times), list(self.gates)

    # --- services -----------------------------------------------------------------------------------------
    def _call(self, client, data: bool, timeout: float = 3.0):
        from std_srvs.srv import SetBool

        from jepa_ros.launch_runner.stack import wait_until
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(SetBool.Request(data=data))
        return future.result() if wait_until(future.done, timeout) else None

    def arm(self, armed: bool = True) -> bool:
        """One ~/arm call; the gate it opens (or closes) is recorded. True when the controller agreed."""
        with self._service_lock:
            sent = self.now()
            response = self._call(self._arm, armed)
            ok = response is not None and response.success
            if ok or not armed:
                self.add_gate(Gate(sent, armed, "armed" if armed else "disarmed by ~/arm", settled=self.now()))
            return ok

    def estop_service(self, engage: bool) -> bool:
        """~/estop true (engage, recorded as a stop) or false (clear)."""
        with self._service_lock:
            sent = self.now()
            if engage:
                self.add_gate(Gate(sent, False, "e-stop by ~/estop"))
            response = self._call(self._estop, engage)
            return response is not None and response.success

    def estop_topic(self, value: bool) -> None:
        """Publish on /jepa/estop (a true is recorded as a stop)."""
        from std_msgs.msg import Bool
        if value:
            self.add_gate(Gate(self.now(), False, "e-stop by /jepa/estop"))
        self.estop_pub.publish(Bool(data=value))

    # --- hostile messages ---------------------------------------------------------------------------------
    def hostile(self, kind: str, rng: np.random.Generator) -> bool:
        """Publish one hostile message of ``kind`` (see HOSTILE_KINDS); False when it needs a message that has
        not been seen yet (embedding, image, pose)."""
        position = self.poses[-1].position if self.poses else None
        made = hostile_message(kind, self.now(), rng, embedding=self.last_embedding, image=self.last_image,
                               position=position)
        if made is None:
            return False
        key, msg = made
        self._hostile_pubs[key].publish(msg)
        return True

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._executor.shutdown()
        self.node.destroy_node()

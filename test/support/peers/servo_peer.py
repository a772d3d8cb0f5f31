"""A stand-in for MoveIt Servo's ROS interface, for the controller's start-up tests.

``python -m test.support.peers.servo_peer --distro humble|jazzy [--fail-first N] [--stall S]`` runs a node named
``servo_node``
that offers the start-up service of that MoveIt 2 release with MoveIt's service type:
- humble: ``~/start_servo`` (std_srvs/srv/Trigger);
- jazzy: ``~/switch_command_type`` (moveit_msgs/srv/ServoCommandType; needs the stand-in package of
  test/support/fixtures/moveit_stub.py on the path).
Like Servo it takes twists on ``~/delta_twist_cmds`` only after start-up (jazzy: with command type TWIST); it
republishes each accepted twist on ``~/accepted_twists`` and each refused one on ``~/refused_twists`` (with
Servo's log line), and reports every start-up call on ``~/events`` (std_msgs/String). The first N start-up calls
answer failure (``--fail-first``), and the first call is answered only after S seconds (``--stall``), to exercise
the controller's retries and its giving up on unanswered calls.
"""
from __future__ import annotations

import argparse
import sys
import time

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from jepa_ros.ros_util import reliable_qos, run_node

EVENTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


class ServoPeer(Node):
    """Servo's start-up service and command topic, and nothing else (no robot model, no motion)."""

    def __init__(self, distro: str, fail_first: int, stall: float):
        super().__init__("servo_node")
        self._failures_left = fail_first
        self._stall = stall
        self._accepting = False
        self._events = self.create_publisher(String, "~/events", EVENTS_QOS)
        self._accepted = self.create_publisher(TwistStamped, "~/accepted_twists", reliable_qos(200))
        self._refused = self.create_publisher(TwistStamped, "~/refused_twists", reliable_qos(200))
        self.create_subscription(TwistStamped, "~/delta_twist_cmds", self._on_twist, reliable_qos(100))
        if distro == "humble":
            from std_srvs.srv import Trigger
            self.create_service(Trigger, "~/start_servo", self._on_start_servo)
        else:
            from moveit_msgs.srv import ServoCommandType
            self._twist_type = ServoCommandType.Request.TWIST
            self._valid_types = (ServoCommandType.Request.JOINT_JOG, ServoCommandType.Request.TWIST,
                                 ServoCommandType.Request.POSE)
            self.create_service(ServoCommandType, "~/switch_command_type", self._on_switch_command_type)
        print(f"servo peer ({distro}) ready", flush=True)

    def _fail_now(self) -> bool:
        if self._stall > 0:
            self._event(f"stalling {self._stall} s")
            time.sleep(self._stall)   # blocks this peer's executor, as a hung Servo would
            self._stall = 0.0
        if self._failures_left > 0:
            self._failures_left -= 1
            return True
        return False

    def _event(self, text: str) -> None:
        self._events.publish(String(data=text))

    def _on_start_servo(self, request, response):
        response.success = not self._fail_now()
        response.message = "" if response.success else "servo not ready (stand-in refusal)"
        self._accepting = self._accepting or response.success
        self._event(f"start_servo success={response.success}")
        return response

    def _on_switch_command_type(self, request, response):
        response.success = request.command_type in self._valid_types and not self._fail_now()
        if response.success:
            self._accepting = request.command_type == self._twist_type
        self._event(f"switch_command_type {request.command_type} success={response.success}")
        return response

    def _on_twist(self, msg: TwistStamped) -> None:
        if self._accepting:
            self._accepted.publish(msg)
            return
        self.get_logger().warning("Command type has not been set, cannot accept input",
                                  throttle_duration_sec=1.0)
        self._refused.publish(msg)


def main(argv: list[str]) -> int:
    """Run the stand-in until Ctrl-C; the ROS arguments follow the options."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--distro", choices=("humble", "jazzy"), required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--stall", type=float, default=0.0)
    options, ros_args = parser.parse_known_args(argv)
    return run_node(lambda: ServoPeer(options.distro, options.fail_first, options.stall), "servo_node", ros_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

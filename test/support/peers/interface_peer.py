"""Peer process for the interface round-trip test: publishes every message type, serves Predict and ReachGoal.

Every value is rebuilt from the same seed by the test process, which compares field by field. Runs through
`jepa_ros.ros_util.run_node`, like the real nodes: Ctrl-C or SIGTERM ends it cleanly with exit code 0.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from jepa_msgs.action import ReachGoal
from jepa_msgs.srv import Predict
from rclpy.action import ActionServer
from rclpy.node import Node

from jepa_ros.ros_util import latched_qos, run_node
from test.support.peers import interface_samples as samples


class InterfacePeer(Node):
    """Latched samples of every topic type, the Predict service and the ReachGoal action server."""

    def __init__(self):
        super().__init__("interface_peer")
        self._publishers_by_topic = {name: self.create_publisher(msg_type, f"/roundtrip/{name}", latched_qos())
                                     for name, (msg_type, _) in samples.TOPIC_SAMPLES.items()}
        for name, (_, build) in samples.TOPIC_SAMPLES.items():
            self._publishers_by_topic[name].publish(build(np.random.default_rng(samples.SEED)))
        self.create_service(Predict, "/roundtrip/predict", self._on_predict)
        self._action_server = ActionServer(self, ReachGoal, "/roundtrip/reach_goal", self._on_goal)
        print("peer ready", flush=True)

    def _on_predict(self, request: Predict.Request, response: Predict.Response) -> Predict.Response:
        expected = samples.predict_request(np.random.default_rng(samples.SEED))
        answer = samples.predict_response(np.random.default_rng(samples.SEED))
        difference = samples.first_difference(request, expected, "Predict.Request")
        answer.success = difference is None  # the peer checks what it received, too
        answer.message = difference or "request matched"
        return answer

    def _on_goal(self, handle) -> ReachGoal.Result:
        expected = samples.reach_goal_goal(np.random.default_rng(samples.SEED))
        for _ in range(5):  # a few times: the client's feedback subscription may still be matching
            handle.publish_feedback(samples.reach_goal_feedback(np.random.default_rng(samples.SEED)))
            time.sleep(0.1)
        result = samples.reach_goal_result(np.random.default_rng(samples.SEED))
        difference = samples.first_difference(handle.request, expected, "ReachGoal.Goal")
        if difference is None:
            handle.succeed()
        else:
            result.success = False
            result.reason = difference
            handle.abort()
        return result

    def destroy_node(self) -> None:
        """Destroy the action server first: Node.destroy_node leaves it to the garbage collector at exit."""
        self._action_server.destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the peer until Ctrl-C / SIGTERM."""
    return run_node(InterfacePeer, "interface_peer", args)


if __name__ == "__main__":
    sys.exit(main())

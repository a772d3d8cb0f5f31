"""Peer process for the interface round-trip test: publishes every message type, serves Predict and ReachGoal.

Every value is rebuilt from the same seed by the test process, which compares field by field.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from jepa_msgs.action import ReachGoal
from jepa_msgs.srv import Predict
from rclpy.action import ActionServer
from rclpy.node import Node

from jepa_ros.ros_util import latched_qos
from test.peers import interface_samples as samples


def main() -> int:
    rclpy.init()
    node = Node("interface_peer")
    publishers = {name: node.create_publisher(msg_type, f"/roundtrip/{name}", latched_qos())
                  for name, (msg_type, _) in samples.TOPIC_SAMPLES.items()}
    for name, (_, build) in samples.TOPIC_SAMPLES.items():
        publishers[name].publish(build(np.random.default_rng(samples.SEED)))

    def on_predict(request: Predict.Request, response: Predict.Response) -> Predict.Response:
        expected = samples.predict_request(np.random.default_rng(samples.SEED))
        answer = samples.predict_response(np.random.default_rng(samples.SEED))
        difference = samples.first_difference(request, expected, "Predict.Request")
        answer.success = difference is None  # the peer checks what it received, too
        answer.message = difference or "request matched"
        return answer

    def on_goal(handle) -> ReachGoal.Result:
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

    node.create_service(Predict, "/roundtrip/predict", on_predict)
    ActionServer(node, ReachGoal, "/roundtrip/reach_goal", on_goal)
    print("peer ready", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a physical arm needs from the controller, over real DDS: a dry run (previews, nothing on the actuator
topic) and the base-frame check (a pose in another frame stops the arm with a diagnostic)."""
from __future__ import annotations

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped

from jepa_common import frames, topics
from jepa_ros.launch_runner.launch_file import read_launch_file
from jepa_ros.ros_util import ERROR, reliable_qos
from test.support.nodes import (CONTROLLER_STATUS, REPO, ControllerBench, Driver, NodeProcess, Robot,
                                     moving, stamped_after, wait_for_service, wait_status, wait_until)

pytestmark = pytest.mark.nodes


def test_the_arm_launch_file_starts_the_controller_in_a_dry_run():
    nodes = read_launch_file(REPO / "launch" / "arm_servo.launch.xml", {"encoder": "x", "predictor": "y"})
    controller = next(n for n in nodes if n.name == "controller_node")
    driver = Driver()
    process = NodeProcess.module("jepa_ros.nodes.controller_node", controller.ros_args())
    try:
        diagnostics = driver.collect(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(50))
        Robot(driver)
        wait_for_service(driver, "/controller_node/arm", process)
        status = wait_status(diagnostics, CONTROLLER_STATUS, lambda lv, msg, v: float(v["state_age"]) < 1.0)
        assert status and status[1].startswith("DRY RUN"), (status, process.output())
        assert status[2]["servo_startup"] == "skipped (dry run)" and status[2]["dry_run"] == "True"
        assert driver.node.count_publishers(topics.SERVO_TWIST) == 0
        assert driver.node.count_publishers("/controller_node/preview") == 1
    finally:
        process.cleanup()
        driver.close()


def test_dry_run_publishes_previews_and_nothing_on_the_actuator_topic():
    # servo_startup jazzy: a dry run performs no start-up, so it runs without moveit_msgs and without Servo.
    bench = ControllerBench(dry_run=True, servo_startup="jazzy", plan_timeout=30.0)
    try:
        previews = bench.driver.collect(TwistStamped, "/controller_node/preview", reliable_qos(200))
        assert wait_until(lambda: len(previews) >= 3, 10.0), bench.report()
        armed = bench.arm()
        bench.feed(True)
        assert wait_until(lambda: any(moving(m) for m in stamped_after(previews.messages, armed)), 15.0), \
            bench.report()
        level, message, values = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                                             lambda lv, msg, v: "executing" in msg)
        assert message.startswith("DRY RUN") and values["dry_run"] == "True", message
        assert values["servo_startup"] == "skipped (dry run)", values
        assert previews.messages[-1].header.frame_id == frames.BASE
        assert len(bench.twists) == 0, "a dry run sent commands to the actuator topic"
        assert bench.driver.node.count_publishers(topics.SERVO_TWIST) == 0
    finally:
        bench.close()


def test_one_pose_in_a_wrong_frame_stops_the_arm_with_a_diagnostic():
    bench = ControllerBench(plan_timeout=30.0)
    try:
        armed = bench.arm()
        bench.feed(True)
        assert wait_until(lambda: bench.moving_after(armed), 10.0), bench.report()
        wrong = bench.driver.publisher(PoseStamped, topics.EE_POSE, reliable_qos(5))
        bench.driver.wait_for_subscribers(wrong)
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = bench.driver.stamp(), "world"
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = bench.robot.position
        sent = bench.driver.now()
        wrong.publish(msg)
        level, message, values = wait_status(bench.diagnostics, CONTROLLER_STATUS,
                                             lambda lv, m, v: v["wrong_frame"] == "1")
        assert level == ERROR and "wrong frame" in message and "'world'" in message, message
        assert values["armed"] == "False" and "'world'" in values["last_rejection"], values
        # The plans keep coming and the poses in base_link too, but nothing moves until someone re-arms.
        bench.assert_stopped_after(sent + 0.5)   # margin for the pose's delivery on a loaded machine
        rearmed = bench.arm()
        assert wait_until(lambda: bench.moving_after(rearmed), 10.0), bench.report()
    finally:
        bench.close()

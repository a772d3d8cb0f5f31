"""What the planner expects, through the nodes: launch/sim.launch.xml with a model that has a picture decoder (the
shipped one when it has a decoder, else a copy of it with a small random-weight decoder), a goal image on
/jepa/goal_image, and the planner's /jepa/prediction_image, /jepa/planned_path and /jepa/planned_path_markers
checked against /jepa/plan and /jepa/embedding: sizes, stamps, frames, the goal panel, the path recomputed from
the plan and the state it was planned from; with `visualisation` turned off nothing more is published."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import rclpy
import torch
from jepa_msgs.msg import Embedding, Plan
from nav_msgs.msg import Path
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from jepa_common import frames, topics
from jepa_episodes.tasks.reach import REACH
from jepa_planner.visualisation import planned_states
from jepa_ros.episodes.node_driver import NodeDriver
from jepa_ros.launch_runner.stack import Stack, wait_until
from jepa_ros.msg_validation import image_to_array, plan_actions
from jepa_ros.ros_util import reliable_qos
from jepa_world_model import load_predictor
from jepa_world_model.checkpoints import bundle
from jepa_world_model.checkpoints.decoder_loading import DECODER_DIR, find_decoder, save_decoder
from jepa_world_model.checkpoints.shipped import resolve_model_source
from jepa_world_model.data.image_encoding import prepare_image
from jepa_world_model.networks.decoder import DecoderConfig, FeatureDecoder

pytestmark = pytest.mark.nodes

MODEL = "default"
HORIZON, LOOKAHEAD = 2, 3   # plans of 2 actions, each scored held 3 control steps: the path must follow that
PLANNER = {"horizon": HORIZON, "lookahead_steps": LOOKAHEAD, "samples": 16, "iterations": 2, "elites": 4,
           "visualisation_rate": 4.0}
GOAL_OFFSET = (0.05, 0.03, 0.0)   # m from where the end effector starts


def model_with_decoder(directory) -> str:
    """The shipped model when it has a decoder, else a copy of it with a small random-weight one."""
    if find_decoder(MODEL) is not None:
        return MODEL
    model = directory / "model"
    shutil.copytree(resolve_model_source(MODEL), model)
    torch.manual_seed(0)
    encoder = bundle.encoder_for("", MODEL).load()
    save_decoder(model / DECODER_DIR, FeatureDecoder(DecoderConfig.for_encoder(encoder, hidden=16, conv_width=8)))
    return str(model)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pictures")
    model = model_with_decoder(directory)
    rclpy.init()
    try:
        with Stack(REACH.launch_file, {"predictor": model}, log_dir=directory / "logs",
                   extra_params={"planner_node": {k: str(v) for k, v in PLANNER.items()}}) as running:
            client = NodeDriver(REACH, alive=lambda: not running.dead())
            try:
                client.wait_until_ready(timeout=120.0, alive=lambda: not running.dead())
                yield running, client, model
            finally:
                client.close()
    finally:
        rclpy.try_shutdown()


def key(stamp) -> tuple[int, int]:
    return stamp.sec, stamp.nanosec


def test_prediction_pictures_and_the_planned_path_follow_the_plan(stack):
    running, client, model = stack
    node = client.node
    received = {name: [] for name in ("images", "paths", "markers", "embeddings")}
    node.create_subscription(Image, topics.PREDICTION_IMAGE, received["images"].append, reliable_qos(10))
    node.create_subscription(Path, topics.PLANNED_PATH, received["paths"].append, reliable_qos(10))
    node.create_subscription(MarkerArray, topics.PLANNED_PATH_MARKERS, received["markers"].append, reliable_qos(10))
    node.create_subscription(Embedding, topics.EMBEDDING, received["embeddings"].append, reliable_qos(50))
    goal_pub = node.create_publisher(Image, topics.GOAL_IMAGE, reliable_qos(1))
    assert wait_until(lambda: client.ee_position is not None and received["embeddings"], 20.0)
    goal = client.request_goal_image(client.ee_position + np.array(GOAL_OFFSET))
    assert wait_until(lambda: goal_pub.get_subscription_count() >= 1, 20.0)
    goal_pub.publish(goal)

    assert wait_until(lambda: min(len(received[name]) for name in ("images", "paths", "markers")) >= 3, 60.0), \
        ({name: len(items) for name, items in received.items()}, running.log_tail("planner_node"))
    assert not running.dead()
    plans = {key(p.header.stamp): p for p in client.plans}
    states = {key(e.header.stamp): np.asarray(e.state) for e in received["embeddings"]}
    decoder = find_decoder(model)
    size = decoder.config.image_size
    goal_panel = prepare_image(image_to_array(goal), size)

    for image in received["images"]:
        plan = plans[key(image.header.stamp)]              # stamped as the plan (the camera frame it came from)
        assert image.header.frame_id == frames.SIM_CAMERA_OPTICAL == plan.header.frame_id
        assert (image.encoding, image.height, image.width) == ("rgb8", size, (plan.horizon + 2) * size)
        assert image.step == image.width * 3 and len(image.data) == image.step * image.height
        np.testing.assert_array_equal(image_to_array(image)[:, -size:], goal_panel)   # the goal as received

    config = load_predictor(model).config
    markers_of = {key(m.markers[0].header.stamp): m for m in received["markers"]}
    paths = [path for path in received["paths"] if key(path.header.stamp) in markers_of]
    assert len(paths) >= 2
    for path in paths:
        plan, markers = plans[key(path.header.stamp)], markers_of[key(path.header.stamp)]
        assert path.header.frame_id == frames.BASE and len(path.poses) == plan.horizon + 1 == HORIZON + 1
        expected = planned_states(config, states[key(path.header.stamp)], plan_actions(plan), LOOKAHEAD)
        positions = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in path.poses])
        np.testing.assert_allclose(positions[0], expected[0], atol=1e-9)    # starts at the planned-from state
        np.testing.assert_allclose(positions[-1], expected[-1], atol=1e-6)  # ends where the plan's state ends
        np.testing.assert_allclose(positions, expected, atol=1e-6)
        assert all((p.pose.orientation.x, p.pose.orientation.w) == (0.0, 1.0) for p in path.poses)
        assert all(p.header.stamp == path.header.stamp and p.header.frame_id == frames.BASE for p in path.poses)
        assert all(m.header == path.header for m in markers.markers)
        (line,) = [m for m in markers.markers if m.type == Marker.LINE_STRIP]
        np.testing.assert_allclose([[q.x, q.y, q.z] for q in line.points], positions)
        (end,) = [m for m in markers.markers if m.ns == "plan_end"]
        np.testing.assert_allclose([end.pose.position.x, end.pose.position.y, end.pose.position.z], positions[-1])
    assert any(np.abs(np.diff(np.array([[p.pose.position.x, p.pose.position.y] for p in path.poses]), axis=0))
               .max() > 1e-4 for path in paths)   # real plans move, not only hold plans

    # Off: nothing more on the image and path topics while the planner goes on planning.
    request = SetParameters.Request(parameters=[ParameterMsg(
        name="visualisation", value=Parameter("visualisation", value=False).to_parameter_msg().value)])
    client_srv = node.create_client(SetParameters, "/planner_node/set_parameters")
    assert client_srv.wait_for_service(timeout_sec=10.0)
    future = client_srv.call_async(request)
    assert wait_until(future.done, 10.0) and future.result().results[0].successful
    time.sleep(1.0)                                 # anything already on its way arrives
    counts = {name: len(received[name]) for name in ("images", "paths", "markers")}
    plans_before = len(client.plans)
    assert wait_until(lambda: len(client.plans) >= plans_before + 5, 30.0)
    assert {name: len(received[name]) for name in counts} == counts
    assert "visualisation failed" not in running.log_tail("planner_node", 500)

"""Planner node: goal-conditioned model-predictive control with the world model, over ROS.

``python -m jepa_ros.nodes.planner_node --ros-args --params-file config/planner.yaml``

Inputs: /jepa/embedding (jepa_msgs/Embedding with the paired state, from the perception node); goals from
/jepa/goal_image (sensor_msgs/Image, encoded with the same encoder as the perception node), /jepa/goal_embedding
(jepa_msgs/Embedding) or the /jepa/reach_goal action (jepa_msgs/ReachGoal).
Outputs: /jepa/plan (jepa_msgs/Plan) and /jepa/prediction (jepa_msgs/Prediction, the chosen plan's predicted
embeddings), both stamped with the camera stamp of the embedding they were planned from. Service: /jepa/predict
(jepa_msgs/Predict). Diagnostics on /diagnostics as "jepa_ros: planner_node".
Visualisation (parameter `visualisation`, at most `visualisation_rate` plans a second, the newest one): the plan's
decoded predicted frames between the current frame and the goal as one picture (/jepa/prediction_image,
sensor_msgs/Image rgb8, the plan's header) and its end-effector path (/jepa/planned_path, nav_msgs/Path, and
/jepa/planned_path_markers, visualization_msgs/MarkerArray, in `frame_id`, the plan's stamp). They are made by a
worker thread fed by a latest-only slot (`jepa_planner.visualisation`), never on the planning thread; with
`visualisation` false no visualisation work is done. Without a decoder only the path is published. QoS: reliable,
depth 1: a reliable publisher matches reliable (RViz's default) and best-effort subscribers alike, and only the
newest plan is worth delivering.

Every planning decision (which input is usable, goals, budgets, staleness, hold plans, valid results) is made by
the ROS-free `jepa_planner.mpc.MPCLoop`, whose docstring lists the rules; its settings (`PlannerSettings`) are this
node's parameters. The node converts messages, publishes what the loop decides and reports it. One lock guards the
loop; goal images are encoded outside it (only the swap of the new goal into the loop takes it), so planning, the
Predict service and goal requests go on meanwhile, and a ReachGoal with more than `max_goal_images` goal images is
refused before any is encoded. A ReachGoal belongs to its execute callback from acceptance to result: that thread
steps the loop until the loop says the goal has ended; the timer steps topic goals only while no ReachGoal runs.
"""
from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np
import torch
from geometry_msgs.msg import Point, PoseStamped
from jepa_msgs.action import ReachGoal
from jepa_msgs.msg import Embedding, Plan, Prediction
from jepa_msgs.srv import Predict
from nav_msgs.msg import Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from jepa_common import topics
from jepa_common.outcomes import END_CANCELED
from jepa_planner.mpc import (FINISHED, HOLD, INVALID, PLAN, WAIT, Decision, InvalidGoalError, MPCLoop, Observation,
                              PlannerModels, PlannerSettings, PlannerSetupError, ReachOutcome,
                              check_goal_image_count)
from jepa_planner.visualisation import (LatestWorker, PlanView, load_decoder, planned_states, poses,
                                        position_problem, render_strip)
from jepa_ros.msg_validation import (MessageValidationError, embedding_array, embedding_state, fill_embedding,
                                     fill_image, fill_plan)
from jepa_ros.ros_util import ERROR, OK, WARN, Diagnostics, declare_settings, reliable_qos, run_node
from jepa_world_model.data.image_encoding import image_to_rgb
from jepa_common.settings import SettingsError, make_settings, settings_fields

SETTINGS = PlannerSettings
EXECUTOR_THREADS = 6
_FIELDS = tuple(f.name for f in settings_fields(PlannerSettings))
#: Marker sizes (m) and colours (r, g, b, a) of the planned path.
LINE_WIDTH, SPHERE, END_SPHERE, LABEL_HEIGHT = 0.004, 0.012, 0.025, 0.02
PATH_COLOUR, PREDICTED_COLOUR, CURRENT_COLOUR, END_COLOUR = (0.1, 0.8, 0.2, 1.0), (0.2, 0.4, 1.0, 0.9), \
    (1.0, 1.0, 1.0, 1.0), (1.0, 0.55, 0.0, 1.0)


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def observation(msg: Embedding, field: str = "Embedding") -> Observation:
    """An Embedding message as an MPC observation (header kept as `source`); MessageValidationError if malformed."""
    return Observation(embedding_array(msg, field), stamp_ns(msg.header.stamp), state=embedding_state(msg, field),
                       state_names=tuple(msg.state_names), model_id=msg.model_id, source=msg.header)


class PlannerNode(Node):
    """Embeddings + goals -> plans, predictions, the Predict service and the ReachGoal action."""

    def __init__(self, **kwargs):
        super().__init__("planner_node", **kwargs)
        settings = declare_settings(self, PlannerSettings)
        models = PlannerModels.load(settings)
        self._mpc = MPCLoop(models, settings)
        self._lock = threading.Lock()   # the MPC loop: one user at a time (goal images are encoded outside it)
        self._busy = False              # a ReachGoal was accepted and has not ended
        self._sequence = 0
        self._goal_views: list[tuple[torch.Tensor, np.ndarray | None]] = []   # (features, image) of each goal
        self._decoder, self._images_off = self._load_decoder(settings, models)
        self._path_off = position_problem(models.state_names)
        self._worker: LatestWorker[PlanView] = LatestWorker(self._show, self._show_failed, "planner-visualisation")
        self.add_on_set_parameters_callback(self._on_set_parameters)

        group = ReentrantCallbackGroup()
        self._plan_pub = self.create_publisher(Plan, topics.PLAN, reliable_qos(5))
        self._prediction_pub = self.create_publisher(Prediction, topics.PREDICTION, reliable_qos(5))
        self._image_pub = self.create_publisher(Image, topics.PREDICTION_IMAGE, reliable_qos(1))
        self._path_pub = self.create_publisher(Path, topics.PLANNED_PATH, reliable_qos(1))
        self._markers_pub = self.create_publisher(MarkerArray, topics.PLANNED_PATH_MARKERS, reliable_qos(1))
        self.create_subscription(Embedding, topics.EMBEDDING, self._on_embedding, reliable_qos(5),
                                 callback_group=group)
        # goals on the topics are encoded outside the planning lock, one after the other (the newest one wins)
        topic_goals = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Image, topics.GOAL_IMAGE, self._on_goal_image, reliable_qos(1),
                                 callback_group=topic_goals)
        self.create_subscription(Embedding, topics.GOAL_EMBEDDING, self._on_goal_embedding, reliable_qos(1),
                                 callback_group=topic_goals)
        self.create_service(Predict, topics.PREDICT_SERVICE, self._on_predict, callback_group=group)
        self._action_server = ActionServer(self, ReachGoal, topics.REACH_GOAL_ACTION, self._execute,
                                           callback_group=group, goal_callback=self._on_goal_request,
                                           cancel_callback=lambda _handle: CancelResponse.ACCEPT)
        self._diagnostics = Diagnostics(self, "planner_node")
        self._report(WARN, "waiting: no goal")
        self.create_timer(1.0 / settings.plan_rate, self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        space = models.action_space
        encoder = repr(settings.encoder) if settings.encoder else "saved with the predictor"
        self.get_logger().info(
            f"predictor {settings.predictor!r} ({models.predictor.model_id}), encoder {encoder} "
            f"(model_id {models.model_id}) on {models.device} (device {settings.device!r}); actions "
            f"{list(space.names)}, horizon {settings.horizon}, mode {settings.mode}, goal tolerance "
            f"{self._mpc.tolerance:g}")
        if self._images_off:
            self.get_logger().warning(f"visualisation: {self._images_off}")
        if self._path_off:
            self.get_logger().warning(f"visualisation: no planned path: {self._path_off}")

    def _load_decoder(self, settings: PlannerSettings, models: PlannerModels) -> tuple[object | None, str]:
        """(decoder on the models' device, "") or (None, why the prediction pictures are off; "" when the
        `decoder` setting turned them off)."""
        decoder, problem = load_decoder(settings.decoder, settings.predictor, models.encoder)
        if decoder is None:
            return None, problem and f"no prediction images: {problem}"
        return decoder.to(models.device), ""

    # ---------------------------------------------------------------------------------------------- helpers
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _report(self, level, message: str) -> None:
        values = self._mpc.status_values(self._now_ns())
        self._diagnostics.set(level, message, plans=self._sequence, model_id=self._mpc.models.model_id,
                              visualisation=self._visualisation_status(), **values)

    def _visualisation_status(self) -> str:
        if not self._mpc.settings.visualisation:
            return "off"
        problems = "; ".join(filter(None, (self._images_off, self._path_off)))
        if problems:
            return f"WARNING: {problems}"
        return "on" if self._decoder is not None else "on, path only (decoder none)"

    def _goal_features(self, msg: Embedding, field: str):
        """Goal features of an Embedding message (tensor on the device); ValueError says what is wrong."""
        return self._mpc.goal_tensor(embedding_array(msg, field), model_id=msg.model_id, field=field)

    def _goal_image(self, msg: Image) -> tuple[torch.Tensor, np.ndarray]:
        """(features, the image as received) of a goal image message; ValueError on a bad image."""
        rgb = image_to_rgb(msg)
        return self._mpc.models.encode_image(rgb), rgb

    # ----------------------------------------------------------------------------------------------- inputs
    def _on_embedding(self, msg: Embedding) -> None:
        try:
            problem = self._mpc.inputs.offer(observation(msg), self._now_ns())
        except MessageValidationError as exc:
            problem = f"malformed embedding: {exc}"
            self._mpc.inputs.refuse("malformed_embeddings", problem)
        if problem.startswith("waiting for state"):
            self.get_logger().info(f"{topics.EMBEDDING} not used yet: {problem}", throttle_duration_sec=5.0)
        elif problem:
            self.get_logger().warning(f"ignoring /jepa/embedding: {problem}", throttle_duration_sec=5.0)

    def _set_topic_goal(self, make_goal, source: str) -> None:
        """Track the goal `make_goal()` gives as (features, image or None); it is made outside the lock."""
        try:
            features, image = make_goal()
            with self._lock:
                self._mpc.set_topic_goal(features)
                self._goal_views = [(features, image)]
        except (ValueError, RuntimeError) as exc:   # InvalidGoalError, bad images or messages
            with self._lock:
                self._mpc.refuse_goal(f"invalid goal on {source}: {exc}")
            self.get_logger().warning(f"ignoring goal on {source}: {exc}")
            return
        self.get_logger().info(f"new goal from {source}")

    def _on_goal_image(self, msg: Image) -> None:
        self._set_topic_goal(lambda: self._goal_image(msg), topics.GOAL_IMAGE)

    def _on_goal_embedding(self, msg: Embedding) -> None:
        self._set_topic_goal(lambda: (self._goal_features(msg, "goal_embedding"), None), topics.GOAL_EMBEDDING)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Run-time changes go through the MPC loop's checks; a CEM change rebuilds its planner."""
        changed = {p.name: p.value if p.value is not None else [] for p in parameters if p.name in _FIELDS}
        if not changed:
            return SetParametersResult(successful=True)
        with self._lock:
            current = {name: getattr(self._mpc.settings, name) for name in _FIELDS}
            try:
                self._mpc.reconfigure(make_settings(PlannerSettings, {**current, **changed}))
            except (SettingsError, PlannerSetupError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------------------------------- stepping
    def _tick(self) -> None:
        """Topic goals: step the loop whenever no ReachGoal owns it."""
        with self._lock:
            if not self._busy:
                self._apply(self._mpc.step(self._mpc.inputs.latest, self._now_ns(), time.monotonic()))

    def _apply(self, decision: Decision, handle: ServerGoalHandle | None = None) -> None:
        """Publish and report what the loop decided (called under the lock)."""
        if decision.kind in (PLAN, HOLD):
            self._publish(decision)
            if handle is not None:
                result = decision.result
                handle.publish_feedback(ReachGoal.Feedback(
                    goal_index=decision.goal_index, step=decision.step, energy=decision.energy,
                    planning_time_ms=result.time_ms, predictor_evaluations=result.evaluations,
                    action=result.actions[0].float().cpu().tolist()))
            self._report(OK, decision.message)
        elif decision.kind == INVALID:
            self.get_logger().error(f"nothing published: {decision.message}", throttle_duration_sec=5.0)
            self._report(ERROR, decision.message)
        elif decision.kind == WAIT and decision.message:
            self._report(WARN, decision.message)
        elif decision.kind == FINISHED:
            reason = decision.outcome.reason
            self._report(OK if decision.outcome.success else ERROR if reason.startswith("planner error") else WARN,
                         decision.message)

    def _publish(self, decision: Decision) -> None:
        header, result = decision.observation.source, decision.result
        space, model_id = self._mpc.models.action_space, self._mpc.models.model_id
        self._sequence += 1
        energies = result.step_energies.float().cpu().numpy()
        plan = fill_plan(Plan(), result.actions.float().cpu().numpy(), action_names=space.names,
                         action_units=space.units, energies=energies, energy=result.energy, header=header,
                         goal_index=decision.goal_index, planning_time_ms=result.time_ms, sequence=self._sequence)
        steps = [fill_embedding(Embedding(), step, header=header, model_id=model_id)
                 for step in result.predictions.float().cpu().numpy()]
        self._plan_pub.publish(plan)
        self._prediction_pub.publish(Prediction(header=header, sequence=self._sequence, energies=energies,
                                                steps=steps))
        settings = self._mpc.settings
        if settings.visualisation and decision.goal_index < len(self._goal_views):
            goal_features, goal_image = self._goal_views[decision.goal_index]
            obs = decision.observation
            # a hold plan is rolled out one control step per action; a searched plan as CEM scored it
            hold_steps = settings.lookahead_steps if decision.kind == PLAN else 1
            self._worker.offer(PlanView(header, obs.features, obs.state, result.actions, result.predictions,
                                        result.step_energies, goal_features, goal_image, decision.goal_index,
                                        hold_steps), 1.0 / settings.visualisation_rate)

    # --------------------------------------------------------------------------------------- visualisation
    def _show(self, view: PlanView) -> None:
        """Publish the path and the picture strip of one plan (the visualisation worker's thread)."""
        settings, models = self._mpc.settings, self._mpc.models
        if not settings.visualisation:
            return
        if not self._path_off:
            states = planned_states(models.predictor.config, view.state, view.actions.float().cpu(), view.hold_steps)
            positions, quaternions = poses(states, models.state_names)
            header = Header(stamp=view.header.stamp, frame_id=settings.frame_id)
            energy = float(view.energies[-1])
            self._path_pub.publish(path_message(header, positions, quaternions))
            self._markers_pub.publish(path_markers(header, positions, f"goal {view.goal_index}: energy {energy:.3g}"))
        if self._decoder is not None:
            strip = render_strip(self._decoder, view.current, view.predictions, view.goal_features, view.goal_image,
                                 models.crop)
            self._image_pub.publish(fill_image(Image(), strip, header=view.header))

    def _show_failed(self, exc: Exception) -> None:
        self.get_logger().error(f"visualisation failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    # ------------------------------------------------------------------------------------------------ action
    def _on_goal_request(self, request: ReachGoal.Goal) -> GoalResponse:
        with self._lock:
            if self._busy:
                why = "another goal is being executed"
                try:   # say everything that is wrong with it (an accepted goal learns this from its result)
                    check_goal_image_count(len(request.goal_images), self._mpc.settings.max_goal_images)
                except InvalidGoalError as exc:
                    why += f", and {exc}"
                self.get_logger().warning(f"ReachGoal rejected: {why}")
                return GoalResponse.REJECT
            self._busy = True
        return GoalResponse.ACCEPT

    def _request_goals(self, request: ReachGoal.Goal) -> list[tuple[torch.Tensor, np.ndarray | None]]:
        """The request's goals in order as (features, the image as received or None), made without the lock;
        ValueError says what is wrong (too many goal images before any is encoded)."""
        if bool(request.goal_images) == bool(request.goal_embeddings):
            raise InvalidGoalError("give goal_images or goal_embeddings (one of them, not both)")
        check_goal_image_count(len(request.goal_images), self._mpc.settings.max_goal_images)
        goals = []
        for i, image in enumerate(request.goal_images):
            try:
                goals.append(self._goal_image(image))
            except ValueError as exc:
                raise InvalidGoalError(f"goal_images[{i}]: {exc}") from exc
        return goals + [(self._goal_features(msg, f"goal_embeddings[{i}]"), None)
                        for i, msg in enumerate(request.goal_embeddings)]

    def _execute(self, handle: ServerGoalHandle) -> ReachGoal.Result:
        """Own the ReachGoal from acceptance to result: step the loop at plan_rate until it ends."""
        try:
            request = handle.request
            try:
                goals = self._request_goals(request)   # encoded without the lock: planning goes on meanwhile
                with self._lock:
                    sequence = self._mpc.begin_reach(
                        [features for features, _ in goals], time.monotonic(),
                        budgets=list(request.step_budgets) or None,
                        tolerance=request.tolerance if request.tolerance > 0 else None)
                    self._goal_views = goals
            except (ValueError, RuntimeError) as exc:   # InvalidGoalError, bad images or messages
                with self._lock:
                    self._mpc.refuse_goal(f"invalid ReachGoal: {exc}")
                self.get_logger().warning(f"ReachGoal aborted: invalid goal: {exc}")
                handle.abort()
                return ReachGoal.Result(success=False, final_energy=math.nan, reason=f"invalid goal: {exc}")
            self.get_logger().info(f"ReachGoal: {len(sequence.goals)} goal(s), budgets {sequence.budgets}, "
                                   f"tolerance {sequence.tolerances[0]:g}")
            period = 1.0 / self._mpc.settings.plan_rate
            while True:
                with self._lock:
                    if handle.is_cancel_requested:
                        self._mpc.end(END_CANCELED)
                    elif not self.context.ok():
                        self._mpc.end("planner shutting down")
                    decision = self._mpc.step(self._mpc.inputs.latest, self._now_ns(), time.monotonic())
                    if decision.kind == PLAN and handle.is_cancel_requested:
                        self._mpc.end(END_CANCELED)   # canceled while planning: that plan never goes out
                    else:
                        self._apply(decision, handle)
                if decision.kind == FINISHED:
                    return self._end(handle, decision.outcome)
                time.sleep(period)
        finally:
            with self._lock:
                self._busy = False

    def _end(self, handle: ServerGoalHandle, outcome: ReachOutcome) -> ReachGoal.Result:
        if outcome.success:
            handle.succeed()
        elif outcome.reason == END_CANCELED and handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        detail = f" ({outcome.detail})" if outcome.detail else ""
        self.get_logger().info(f"ReachGoal ended: {outcome.reason}{detail} after {outcome.steps} steps, "
                               f"{outcome.goals_reached} goal(s) reached, energy {outcome.final_energy:.4g}")
        return ReachGoal.Result(success=outcome.success, final_energy=outcome.final_energy, steps=outcome.steps,
                                goals_reached=outcome.goals_reached, reason=outcome.reason)

    # ----------------------------------------------------------------------------------------------- predict
    def _on_predict(self, request: Predict.Request, response: Predict.Response) -> Predict.Response:
        response.energy = math.nan
        try:
            context = observation(request.context, "context")
            goal = self._goal_features(request.goal, "goal") if len(request.goal.data) else None
            with self._lock:
                predictions, energies = self._mpc.predict(context, np.asarray(request.actions), int(request.horizon),
                                                          goal)
        except (ValueError, RuntimeError) as exc:   # PredictError, MessageValidationError, InvalidGoalError
            response.success, response.message = False, str(exc)
            return response
        header, model_id = request.context.header, request.context.model_id
        response.predictions = [fill_embedding(Embedding(), step, header=header, model_id=model_id)
                                for step in predictions]
        if energies is not None:
            response.energies = energies
            response.energy = float(energies[-1])
        response.success, response.message = True, f"{len(predictions)} steps predicted"
        return response

    def destroy_node(self) -> None:
        """Destroy the action server too (Node.destroy_node leaves it to interpreter exit, which can hang)."""
        server = getattr(self, "_action_server", None)  # absent when the constructor failed before making it
        if server is not None:
            server.destroy()
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.close()
        super().destroy_node()


def colour(rgba: tuple[float, float, float, float]) -> ColorRGBA:
    """std_msgs/ColorRGBA of (r, g, b, a) in [0, 1]."""
    r, g, b, a = rgba
    return ColorRGBA(r=r, g=g, b=b, a=a)


def path_message(header: Header, positions: np.ndarray, quaternions: np.ndarray) -> Path:
    """nav_msgs/Path of poses (K, 3) + quaternions (K, 4) as x, y, z, w, every pose with `header`."""
    path = Path(header=header)
    for (px, py, pz), (qx, qy, qz, qw) in zip(positions.tolist(), quaternions.tolist()):
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = px, py, pz
        pose.pose.orientation.x, pose.pose.orientation.y = qx, qy
        pose.pose.orientation.z, pose.pose.orientation.w = qz, qw
        path.poses.append(pose)
    return path


def path_markers(header: Header, positions: np.ndarray, label: str) -> MarkerArray:
    """The planned path as markers (fixed namespaces and ids, so each plan replaces the last): a line strip
    through every position, spheres at the current and the predicted positions, the plan's end (where it expects
    the goal) and a label above it."""
    points = [Point(x=x, y=y, z=z) for x, y, z in positions.tolist()]

    def marker(ns: str, kind: int, size: float, rgba, at: list[Point]) -> Marker:
        m = Marker(header=header, ns=ns, id=0, type=kind, action=Marker.ADD, color=colour(rgba), points=at)
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = size
        return m

    end = marker("plan_end", Marker.SPHERE, END_SPHERE, END_COLOUR, [])
    end.pose.position = points[-1]
    text = marker("plan_label", Marker.TEXT_VIEW_FACING, LABEL_HEIGHT, CURRENT_COLOUR, [])
    text.pose.position = Point(x=points[-1].x, y=points[-1].y, z=points[-1].z + 2 * END_SPHERE)
    text.text = label
    line = marker("planned_path", Marker.LINE_STRIP, LINE_WIDTH, PATH_COLOUR, points)
    return MarkerArray(markers=[line, marker("current", Marker.SPHERE_LIST, SPHERE, CURRENT_COLOUR, points[:1]),
                                marker("predicted", Marker.SPHERE_LIST, SPHERE, PREDICTED_COLOUR, points[1:]),
                                end, text])


def main(args: list[str] | None = None) -> int:
    """Run the planner until shutdown; returns a process exit code (2: bad parameters or models)."""
    return run_node(PlannerNode, "planner_node", args,
                    make_executor=lambda: MultiThreadedExecutor(num_threads=EXECUTOR_THREADS))


if __name__ == "__main__":
    sys.exit(main())

"""The offline driver: episodes in-process, without ROS: ArmSim + encoder + the planner's MPC loop.

Rules: it runs the planner node's loop (`jepa_planner.mpc.MPCLoop`, the task's deployed settings in continuous
mode): each control step plans from the current camera frame (one context frame, the end-effector position as
state) and executes the plan's first action as one ``move_ee_by`` step, shortened like the controller's box
(the task's workspace) so the end effector stays in it. Observation stamps come from an episode clock of
``STEP_NS`` per step that runs on across episodes, as a camera's does. A tolerance of None is the planner's
default, as a ReachGoal with tolerance 0 is to the planner node.

Franka tasks (``task.sim_task`` "grasp" or "pick_place"): the sim is a ``FrankaSim``, the predictor's states and
actions are the 7-D V-JEPA 2-AC ones ([x, y, z, roll, pitch, yaw, gripper] and their deltas); each plan's first
action is executed with ``apply_action`` (its xyz part shortened like the controller's box), and the observed
scene state carries the 7-D state as ``ee`` and the cube's centre as ``object``.

The models run on the settings' ``device`` (``auto``: CUDA when available, as the nodes); the settings returned
with the records name the encoder and predictor sources that were run.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import torch

from jepa_planner.mpc import FINISHED, PLAN, MPCLoop, Observation, PlannerModels, PlannerSettings

from jepa_episodes.record import SceneState
from jepa_episodes.runner import clipped, run_episodes
from jepa_episodes.tasks.base import GoalScene, StartScene, Task

STEP_NS = 100_000_000  # one control step (0.1 s) of the episode clock that stamps the observations
#: sim tasks played on the Franka (FrankaSim), with 7-D states and actions
FRANKA_SIM_TASKS = ("grasp", "pick_place")


def load_models(encoder: str, predictor: str) -> tuple[torch.nn.Module, Any]:
    """Encoder (layer-normed output, as the predictor was trained on) and predictor, both in eval mode."""
    from jepa_world_model import load_encoder, load_predictor

    return load_encoder(encoder, output_layer_norm=True), load_predictor(predictor)


def place_start(sim: Any, scene: StartScene) -> None:
    """Put an ArmSim at ``scene``: home pose (and the object placed), then the end effector at ``scene.ee`` by
    inverse kinematics from the home pose, so the start depends on the scene only."""
    if scene.object_xy is None:
        sim.reset()
    else:
        sim.reset(object_xy=scene.object_xy)
    if scene.ee is not None:
        q = sim.ik(scene.ee)
        if q is None:
            raise ValueError(f"start ee {list(scene.ee)} is not reachable")
        sim.reset(q, object_xy=scene.object_xy)


def place_franka_start(sim: Any, scene: StartScene) -> None:
    """Put a FrankaSim at ``scene``: the arm at rest with the EE at ``scene.ee`` / ``scene.ee_euler`` (inverse
    kinematics from home), gripper open, the cube at rest at ``object_xy`` / ``object_yaw``, the target marker."""
    from jepa_sim.franka_sim import DOWN_EULER

    q = sim.ik(scene.ee, scene.ee_euler or DOWN_EULER, seeds=[sim.home])
    if q is None:
        raise ValueError(f"start ee {list(scene.ee)} {list(scene.ee_euler or DOWN_EULER)} is not reachable")
    sim.reset(joint_positions=q, cube_xy=scene.object_xy, cube_yaw=scene.object_yaw, target_xy=scene.target_xy)


def _yaw_quat(yaw: float | None) -> np.ndarray | None:
    return None if yaw is None else np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


class OfflineDriver:
    """A ``runner.Driver`` over an in-process sim of ``task``'s scene and the MPC loop (``close`` the sim)."""

    name = "offline"

    def __init__(self, task: Task, encoder: torch.nn.Module, predictor: Any,
                 settings: PlannerSettings | None = None, ee_box: Any = "task",
                 image_size: int | None = None) -> None:
        self.franka = task.sim_task in FRANKA_SIM_TASKS
        dims = 7 if self.franka else 3
        if predictor.config.state_dim != dims or predictor.config.action_dim != dims:
            kind = "7-D V-JEPA 2-AC" if self.franka else "xyz"
            raise ValueError(f"the sim needs {kind} state/action predictors, got state_dim="
                             f"{predictor.config.state_dim} action_dim={predictor.config.action_dim}")
        from jepa_world_model.devices import resolve_device

        self.task = task
        settings = settings or task.planner_settings()
        self.models = PlannerModels(encoder, predictor, resolve_device(settings.device))
        self.loop = MPCLoop(self.models, settings)
        self.ee_box = task.workspace() if isinstance(ee_box, str) else ee_box
        self.image_size = image_size or encoder.config.crop_size
        self.now_ns = 0
        self._sim: Any = None

    @property
    def sim(self) -> Any:
        """The sim of the task's scene (made on first use)."""
        if self._sim is None and self.franka:
            from jepa_sim.franka_sim import FrankaSim

            self._sim = FrankaSim(image_size=self.image_size, control_period=STEP_NS * 1e-9)
        elif self._sim is None:
            from jepa_sim.arm_sim import ArmSim

            self._sim = ArmSim(image_size=self.image_size, task=self.task.sim_task)
        return self._sim

    def features(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 image -> (N, D) features."""
        with torch.inference_mode():
            return self.models.encoder(torch.from_numpy(np.ascontiguousarray(image))[None])[0].float().cpu().numpy()

    def start(self, scene: StartScene) -> None:
        """``place_start`` (Franka: ``place_franka_start``) in the sim."""
        (place_franka_start if self.franka else place_start)(self.sim, scene)

    def goal_image(self, scene: GoalScene) -> np.ndarray:
        """The sim's render of ``scene`` (the state is not touched)."""
        if self.franka:
            from jepa_sim.franka_sim import DOWN_EULER

            return self.sim.render_goal(scene.ee, scene.ee_euler or DOWN_EULER, scene.gripper or 0.0,
                                        scene.object_position, _yaw_quat(scene.object_yaw))
        return self.sim.render_goal(scene.ee, scene.object_xy)

    def pursue(self, goal_image: np.ndarray, budget: int, tolerance: float | None,
               on_plan: Callable[[float, float, int], None]) -> str:
        """One ReachGoal of the MPC loop, stepping the sim until it finishes."""
        loop, models, sim = self.loop, self.models, self.sim
        loop.begin_reach([loop.goal_tensor(self.features(goal_image))], time.monotonic(), budgets=[budget],
                         tolerance=tolerance)
        while True:
            self.now_ns += STEP_NS
            now = self.now_ns
            state = sim.state() if self.franka else sim.ee_position()
            observation = Observation(self.features(sim.render()), now, state=state,
                                      state_names=models.state_names, model_id=models.model_id)
            problem = loop.inputs.offer(observation, now)
            if problem:
                raise RuntimeError(f"observation refused: {problem}")
            decision = loop.step(observation, now, time.monotonic())
            if decision.kind == FINISHED:
                return decision.outcome.reason
            if decision.kind != PLAN:
                raise RuntimeError(f"the MPC loop did not plan: {decision.message}")
            on_plan(float(decision.energy), float(decision.result.time_ms), decision.result.evaluations)
            action = decision.result.actions[0].double().cpu().numpy()
            if self.franka:
                sim.apply_action(np.r_[clipped(sim.ee_position(), action[:3], self.ee_box), action[3:]])
            else:
                sim.move_ee_by(clipped(sim.ee_position(), action, self.ee_box))

    def state(self) -> SceneState:
        sim = self.sim
        if self.franka:
            return SceneState(ee=tuple(sim.state().tolist()), object=tuple(sim.cube_position().tolist()))
        obj = tuple(sim.object_position().tolist()) if self.task.sim_task == "push" else None
        return SceneState(ee=tuple(sim.ee_position().tolist()), object=obj)

    def settle(self) -> None:
        """Nothing: each step ends at rest."""

    def camera_image(self) -> np.ndarray:
        """The current camera frame."""
        return self.sim.render()

    def close(self) -> None:
        """Close the sim."""
        if self._sim is not None:
            self._sim.close()
            self._sim = None


def run_offline(task: Task, episodes: list[Any], budgets: tuple[int, ...], tolerances: tuple[float | None, ...],
                encoder: str | None = None, predictor: str | None = None, settings: dict | None = None,
                on_step: Any = None, on_episode: Any = None) -> tuple[list, dict]:
    """``episodes`` of ``task`` through an ``OfflineDriver`` (models: the task's shipped one unless named);
    returns the records and the planner settings used (JSON-able; ``encoder`` and ``predictor`` name the sources
    run)."""
    encoder, predictor = encoder or task.model, predictor or task.model
    encoder_model, predictor_model = load_models(encoder, predictor)
    chosen = {**(settings or {}), "encoder": str(encoder), "predictor": str(predictor)}
    driver = OfflineDriver(task, encoder_model, predictor_model, task.planner_settings(**chosen))
    try:
        records = run_episodes(task, driver, episodes, budgets, tolerances, on_step=on_step, on_episode=on_episode)
    finally:
        driver.close()
    return records, dataclasses.asdict(driver.loop.settings)

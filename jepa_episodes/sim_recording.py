"""Scripted recordings of the built-in simulation (`jepa record --sim`): random play for reach, the noisy scripted
pusher for push, the noisy scripted grasp / pick-and-place policy of the Franka (``jepa_sim.franka_script``) for
grasp and pick_place, written as MCAP episodes by :class:`jepa_world_model.data.recording.EpisodeWriter` with the
topics a real robot's recording has. Deterministic for a given seed."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import transforms3d.axangles as t3d_axangles
import transforms3d.euler as t3d_euler

from jepa_common import frames, topics
from jepa_sim.arm_sim import ArmSim
from jepa_sim.franka_script import TASKS as FRANKA_TASKS
from jepa_sim.franka_script import RANDOM_STEP, PickPlaceScript
from jepa_sim.franka_sim import EULER_AXES, FrankaSim
from jepa_sim.push import ScriptedPusher, sample_push_task, start_episode
from jepa_world_model.data.recording import (IMAGE_TYPE, JOINT_STATE_TYPE, PLAN_TYPE, POSE_TYPE, TWIST_TYPE,
                                             EpisodeWriter, RecordingError, make_message, message_definition,
                                             typestore_for)

LOG = logging.getLogger(__name__)

SIM_TASKS = ("reach", "push") + FRANKA_TASKS
#: The Franka's 7-D V-JEPA 2-AC action, as each step's /jepa/plan (one row) records it.
FRANKA_ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
FRANKA_ACTION_UNITS = ("m", "m", "m", "rad", "rad", "rad", "1")
#: The Franka's camera image size when the config leaves ``image_size`` at 0.
FRANKA_IMAGE_SIZE = 128
ARM_IMAGE_SIZE = 64
#: Task "reach": per-episode step sizes (m per axis) cycled by `jepa record --sim`: half large moves, then 1.5 cm
#: and 0.5 cm ones, as scripts/make_default_model.sh recorded for the shipped model.
REACH_STEP_MIX = (0.04, 0.04, 0.015, 0.005)
#: Task "push": two thirds of the episodes pushed with steps of up to 2 cm, one third with 1 cm (finer moves near
#: contact), the mix scripts/make_push_model.sh records.
PUSH_STEP_MIX = (0.02, 0.02, 0.01)
#: Tasks "grasp" and "pick_place": the step mix sets the largest random step of the scripted play (m per axis).
FRANKA_STEP_MIX = (RANDOM_STEP,)
#: m per axis: the largest step size a step mix may hold (the workspaces are 0.3-0.7 m wide)
LARGEST_STEP = 0.2
#: The default step mix of each task.
STEP_MIXES = {"reach": REACH_STEP_MIX, "push": PUSH_STEP_MIX, **{task: FRANKA_STEP_MIX for task in FRANKA_TASKS}}


@dataclass(frozen=True)
class SimRecordingConfig:
    """Play of the built-in arm. Task "reach": each step moves the EE by a random displacement of up to
    ``max_step`` m per axis (steered back when the next position would leave the workspace). Task "push": a puck
    on the table and the table camera; each episode is a random push task (``jepa_sim.push``) played by the
    noisy scripted pusher (steps of up to ``max_step`` m, x-y noise ``push_noise`` m, a random step with
    probability ``random_prob``). With ``step_mix`` given, episode i uses ``step_mix[i % len]`` as its
    ``max_step``, so that a model learns the large moves and the fine ones (:data:`STEP_MIXES`). Tasks "grasp" and
    "pick_place": the Franka from a random start (``FrankaSim.reset``) played by the scripted policy
    (``PickPlaceScript``) with its noise scaled by ``franka_noise`` and a random step with probability
    ``random_prob``, of up to ``step(episode)`` m per axis with a step mix given, else ``RANDOM_STEP``.
    ``image_size`` 0: 64 px for the 3-joint arm, 128 px for the Franka."""

    image_size: int = 0
    max_step: float = 0.04
    control_period: float = 0.1
    start_time_ns: int = 1_700_000_000 * 1_000_000_000
    chunk_size: int = 1 << 20
    task: str = "reach"
    push_noise: float = 0.003
    random_prob: float = 0.15
    step_mix: tuple[float, ...] = ()
    franka_noise: float = 1.0

    def __post_init__(self) -> None:
        if self.task not in SIM_TASKS:
            raise RecordingError(f"task must be one of {list(SIM_TASKS)}, got {self.task!r}")
        if any(not 0 < step <= LARGEST_STEP for step in self.step_mix):
            raise RecordingError(f"step_mix must hold positive step sizes in m, at most {LARGEST_STEP}, got "
                                 f"{self.step_mix!r}")
        if not 0.0 <= self.franka_noise <= 10.0:
            raise RecordingError(f"franka_noise must be in [0, 10] (1: the script's noise), got {self.franka_noise!r}")
        if not 0.0 <= self.push_noise < 0.05 or not 0.0 <= self.random_prob <= 1.0:
            raise RecordingError(f"push_noise must be in [0, 0.05) m and random_prob in [0, 1], got "
                                 f"{self.push_noise!r} and {self.random_prob!r}")

    def step(self, episode: int) -> float:
        """The largest per-axis displacement (m) of one step in episode ``episode``."""
        mix = self.step_mix
        return mix[episode % len(mix)] if mix else self.max_step

    @property
    def camera_size(self) -> int:
        """The camera image size in px (``image_size``, or the task's default when it is 0)."""
        return self.image_size or (FRANKA_IMAGE_SIZE if self.task in FRANKA_TASKS else ARM_IMAGE_SIZE)


def _random_delta(rng: np.random.Generator, position: np.ndarray, low: np.ndarray, high: np.ndarray,
                  max_step: float) -> np.ndarray:
    delta = rng.uniform(-max_step, max_step, size=3)
    target = position + delta
    outside = (target < low) | (target > high)
    delta[outside] = -delta[outside]  # reflect at the workspace walls
    return delta


def _episode_writer(out_dir: Path, episode: int, config: SimRecordingConfig, extra_topics: tuple[tuple[str, str], ...]
                    ) -> tuple[Path, int, EpisodeWriter]:
    """The file of ``episode`` (``episode_NNNN.mcap``), its start stamp (ns) and a writer with the camera, pose,
    joint and twist topics (then ``extra_topics``: (topic, type) pairs) added."""
    path = out_dir / f"episode_{episode:04d}.mcap"
    writer = EpisodeWriter(path, chunk_size=config.chunk_size)
    writer.add_topic(topics.CAMERA, IMAGE_TYPE, "sensor_data")
    for topic, kind in ((topics.EE_POSE, POSE_TYPE), (topics.JOINT_STATES, JOINT_STATE_TYPE), *extra_topics):
        writer.add_topic(topic, kind)
    return path, config.start_time_ns + episode * 3600 * 1_000_000_000, writer


def _write_observation(writer: EpisodeWriter, stamp: int, sim: ArmSim | FrankaSim, joint_positions: np.ndarray,
                       object_pose: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """One frame's camera image, end-effector pose and joint states (and the object's pose when given); returns
    the end-effector position."""
    position, quat_wxyz = sim.ee_pose()
    writer.write(topics.CAMERA, make_message(IMAGE_TYPE, stamp, frames.SIM_CAMERA_OPTICAL, rgb=sim.render()), stamp)
    writer.write(topics.EE_POSE, make_message(POSE_TYPE, stamp, frames.BASE, position=position,
                                             orientation=np.roll(quat_wxyz, -1)), stamp)
    writer.write(topics.JOINT_STATES, make_message(JOINT_STATE_TYPE, stamp, names=sim.joint_names,
                                                  positions=joint_positions), stamp)
    if object_pose is not None:
        writer.write(topics.OBJECT_POSE, make_message(POSE_TYPE, stamp, frames.BASE, position=object_pose[0],
                                                     orientation=np.roll(object_pose[1], -1)), stamp)
    return position


def record_sim_episodes(out_dir: str | Path, episodes: int, steps: int, seed: int = 0,
                        config: SimRecordingConfig = SimRecordingConfig()) -> list[Path]:
    """Record ``episodes`` episodes of ``steps`` actions each from the built-in MuJoCo arm (``config.task``).

    Each episode file ``episode_NNNN.mcap`` holds /camera/image_raw (rgb8), /ee_pose, /joint_states at every
    frame (task "push": also /object_pose, the puck's pose) and the commanded /servo_node/delta_twist_cmds (EE
    velocity = displacement / control period). Returns the file paths. Deterministic for a given seed.
    """
    if episodes <= 0 or steps <= 0:
        raise RecordingError(f"episodes and steps must be positive, got episodes={episodes} steps={steps}")
    if config.task in FRANKA_TASKS:
        return record_franka_episodes(out_dir, episodes, steps, seed, config)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    period_ns = int(round(config.control_period * 1e9))
    paths = []
    push = config.task == "push"
    with ArmSim(image_size=config.camera_size, seed=seed, control_period=config.control_period,
                task=config.task) as sim:
        low, high = np.asarray(sim.workspace.low), np.asarray(sim.workspace.high)
        for episode in range(episodes):
            pusher = None
            if push:
                task = sample_push_task(sim, rng)
                start_episode(sim, task)
                pusher = ScriptedPusher(task, rng, config.step(episode), config.push_noise, config.random_prob)
            else:
                sim.reset(sim.ik(sim.sample_target(rng)))
            extra = ((topics.SERVO_TWIST, TWIST_TYPE),) + (((topics.OBJECT_POSE, POSE_TYPE),) if push else ())
            path, t0, writer = _episode_writer(out_dir, episode, config, extra)
            with writer:
                for k in range(steps + 1):
                    stamp = t0 + k * period_ns
                    position = _write_observation(writer, stamp, sim, sim.joint_positions(),
                                                  sim.object_pose() if push else None)
                    if k == steps:
                        break
                    if pusher is not None:
                        delta = pusher.action(position, sim.object_position()[:2])
                    else:
                        delta = _random_delta(rng, position, low, high, config.step(episode))
                    writer.write(topics.SERVO_TWIST, make_message(TWIST_TYPE, stamp, frames.BASE,
                                                           linear=delta / config.control_period), stamp)
                    sim.move_ee_by(delta)
            paths.append(path)
            LOG.info("recorded %s (%d frames)", path, steps + 1)
    return paths


def _plan_message(stamp_ns: int, action: np.ndarray, sequence: int):
    """A one-row jepa_msgs/Plan holding the 7-D action executed at ``stamp_ns`` (rosbags message object)."""
    store = typestore_for(PLAN_TYPE, message_definition(PLAN_TYPE))
    types = store.types
    stamp = types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                                 nanosec=int(stamp_ns % 1_000_000_000))
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id=frames.BASE)
    return types[PLAN_TYPE](header=header, action_names=list(FRANKA_ACTION_NAMES),
                            action_units=list(FRANKA_ACTION_UNITS), horizon=1,
                            actions=np.asarray(action, dtype=np.float32), energies=np.zeros(1, dtype=np.float32),
                            energy=0.0, goal_index=0, planning_time_ms=0.0, sequence=int(sequence))


def _angular_velocity(sim: FrankaSim, action: np.ndarray, period: float) -> np.ndarray:
    """The angular velocity (rad/s, base frame) ``FrankaSim.apply_action`` servos ``action``'s rotation with."""
    rot_now = sim.ee_rotation()
    rot_goal = t3d_euler.euler2mat(*(sim.ee_euler() + action[3:6]), EULER_AXES)
    axis, angle = t3d_axangles.mat2axangle(rot_goal @ rot_now.T)
    return np.asarray(axis) * angle / period


def record_franka_episodes(out_dir: str | Path, episodes: int, steps: int, seed: int = 0,
                           config: SimRecordingConfig = SimRecordingConfig(task="pick_place")) -> list[Path]:
    """Record ``episodes`` episodes of ``steps`` actions each of the Franka (``config.task`` "grasp" or
    "pick_place"): each from a random start drawn from the seed's generator, played by the noisy scripted policy
    (zero actions once it is done).

    Each file ``episode_NNNN.mcap`` holds at every frame /camera/image_raw (rgb8), /ee_pose (position and
    orientation: with /joint_states' finger joints the 7-D V-JEPA 2-AC state [x, y, z, roll, pitch, yaw, gripper]),
    /joint_states (panda_joint1..7, panda_finger_joint1/2) and /object_pose (the cube), and per action the
    commanded /servo_node/delta_twist_cmds (linear and angular velocity over one control period) and /jepa/plan (one
    row: the 7-D action dx, dy, dz, droll, dpitch, dyaw, dgripper). Deterministic for a given seed.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    period = config.control_period
    period_ns = int(round(period * 1e9))
    paths = []
    with FrankaSim(image_size=config.camera_size, seed=seed, control_period=period) as sim:
        for episode in range(episodes):
            sim.reset(rng=rng)
            random_step = config.step(episode) if config.step_mix else RANDOM_STEP
            script = PickPlaceScript(config.task, rng=rng, noise=config.franka_noise, random_prob=config.random_prob,
                                     random_step=random_step)
            script.reset(sim)
            extra = ((topics.OBJECT_POSE, POSE_TYPE), (topics.SERVO_TWIST, TWIST_TYPE), (topics.PLAN, PLAN_TYPE))
            path, t0, writer = _episode_writer(out_dir, episode, config, extra)
            with writer:
                for k in range(steps + 1):
                    stamp = t0 + k * period_ns
                    _write_observation(writer, stamp, sim, sim.joint_positions_all(), sim.cube_pose())
                    if k == steps:
                        break
                    action = script.act(sim)
                    writer.write(topics.SERVO_TWIST, make_message(
                        TWIST_TYPE, stamp, frames.BASE, linear=action[:3] / period,
                        angular=_angular_velocity(sim, action, period)), stamp)
                    writer.write(topics.PLAN, _plan_message(stamp, action, k), stamp)
                    sim.apply_action(action)
            paths.append(path)
            LOG.info("recorded %s (%d frames, script %s)", path, steps + 1, script.phase)
    return paths

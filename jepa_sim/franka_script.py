"""Scripted play policy for ``FrankaSim``: grasp and pick-and-place from random starts, as 7-D V-JEPA 2-AC actions.

Each control step the script reads the simulation (EE state, and the cube and target poses, which a learned policy
would not see) and emits one action [dx, dy, dz, droll, dpitch, dyaw, dgripper] for ``FrankaSim.apply_action``: a
proportional step towards the current phase's waypoint, clipped to ``MAX_STEP`` m / ``MAX_TURN`` rad per step, plus
Gaussian noise, so that recordings made from it cover more than one straight line. With probability ``random_prob``
a step is random instead: xyz uniform within ``random_step`` m per axis (default ``RANDOM_STEP``) and, while the
script holds the gripper open, a random close or open. Without random steps the action is a function of what the camera shows (the phase,
the cube), and a predictor trained on such play can predict the next frame without reading the action. Phases:

* grasp: "approach" (above the cube at ``HOVER_HEIGHT``, gripper open, yaw turned to the cube's faces), "descend"
  (EE to ``GRASP_HEIGHT``), "close" (``CLOSE_STEPS`` steps of dgripper = +1, holding the EE at the cube), "lift" (EE to ``LIFT_HEIGHT``).
* pick_place: grasp, then "carry" (above the target at ``LIFT_HEIGHT``), "lower" (EE to ``PLACE_HEIGHT``),
  "release" (``OPEN_STEPS`` steps of dgripper = -1, holding the cube over the target) and "retreat" (EE back up to ``LIFT_HEIGHT``).

The script is closed-loop on the measured state: noise perturbs the path, not the outcome. A waypoint counts as
reached within ``POS_TOL``; a phase that takes longer than ``PHASE_LIMIT`` steps moves on anyway.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from jepa_sim.franka_sim import CUBE_HALF, FrankaSim

Task = Literal["grasp", "pick_place"]
TASKS = ("grasp", "pick_place")
HOVER_HEIGHT = 0.12  # m, EE height above the cube before descending
GRASP_HEIGHT = 0.025  # m, EE height when closing (the pads around the cube's middle, tips 5 mm above the table)
LIFT_HEIGHT = 0.16  # m, EE height after the lift (cube 11+ cm up) and while carrying
PLACE_HEIGHT = 0.03  # m, EE height when opening over the target (the cube 1 cm above the table)
MAX_STEP = 0.04  # m per control step along each axis (0.4 m/s at 0.1 s)
MAX_TURN = 0.15  # rad per control step
GAIN = 0.6  # fraction of the remaining way taken per step
POS_TOL = 0.006  # m
YAW_TOL = 0.05  # rad
CLOSE_STEPS = 7  # 0.7 s: the fingers need 0.5 s for a full close
OPEN_STEPS = 5
PHASE_LIMIT = 60  # steps
NOISE_POS = 0.004  # m, std of the noise on dx, dy, dz
NOISE_ROT = 0.02  # rad, std of the noise on droll, dpitch, dyaw
NOISE_GRIPPER = 0.05  # std of the noise on dgripper
RANDOM_STEP = 0.02  # m, the largest displacement per axis of a random step, by default
LIFT_SUCCESS = 0.05  # m the cube's centre must rise for a successful grasp
PLACE_SUCCESS = 0.03  # m from the target's centre for a successful place


def _wrap(angle: float) -> float:
    """Angle in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


class PickPlaceScript:
    """The scripted policy; call ``reset`` after each ``FrankaSim.reset``, then ``act`` once per control step.

    Args:
        task: "grasp" or "pick_place".
        rng: generator of the action noise.
        noise: scale of the action noise (0: none, 1: ``NOISE_*``).
        random_prob: probability of a random step.
        random_step: the largest displacement per axis of a random step, m (the planner's box allows 0.075).
    """

    def __init__(self, task: Task = "pick_place", rng: np.random.Generator | None = None,
                 noise: float = 1.0, random_prob: float = 0.0, random_step: float = RANDOM_STEP) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        noise = float(noise)
        if not math.isfinite(noise) or noise < 0.0:
            raise ValueError(f"noise must be a finite number >= 0, got {noise}")
        random_prob = float(random_prob)
        if not 0.0 <= random_prob <= 1.0:
            raise ValueError(f"random_prob must be in [0, 1], got {random_prob}")
        random_step = float(random_step)
        if not (math.isfinite(random_step) and random_step > 0.0):
            raise ValueError(f"random_step must be a finite number > 0 (m), got {random_step}")
        self.task: Task = task
        self.rng = np.random.default_rng(0) if rng is None else rng
        self.noise = noise
        self.random_prob = random_prob
        self.random_step = random_step
        self.phases: tuple[str, ...] = ("approach", "descend", "close", "lift") + (
            ("carry", "lower", "release", "retreat") if task == "pick_place" else ())
        self._phase = 0
        self._count = 0
        self._yaw_goal = 0.0

    @property
    def phase(self) -> str:
        """Current phase name, "done" at the end."""
        return self.phases[self._phase] if self._phase < len(self.phases) else "done"

    @property
    def done(self) -> bool:
        """True when every phase has been run."""
        return self._phase >= len(self.phases)

    def reset(self, sim: FrankaSim) -> None:
        """Start from the first phase; the gripper yaw to reach is the one facing the cube closest to the EE's."""
        self._phase = 0
        self._count = 0
        yaw = float(sim.state()[5])
        # The gripper is symmetric under half turns and the cube under quarter turns.
        self._yaw_goal = yaw + _wrap(4 * (sim.cube_yaw() - yaw)) / 4

    def act(self, sim: FrankaSim) -> np.ndarray:
        """The action of this control step (7-D, for ``sim.apply_action``); zeros once done."""
        if self.done:
            return np.zeros(7)
        state = sim.state()
        ee, euler = state[:3], state[3:6]
        cube, target = sim.cube_position(), sim.target_position()
        phase = self.phase
        gripper = -1.0
        goal = ee.copy()
        if phase == "approach":
            goal = np.r_[cube[:2], cube[2] - CUBE_HALF + HOVER_HEIGHT]
        elif phase == "descend":
            goal = np.r_[cube[:2], GRASP_HEIGHT]
        elif phase in ("close", "lift", "carry", "lower"):
            gripper = 1.0
            if phase == "close":  # hold still against the noise
                goal = np.r_[cube[:2], GRASP_HEIGHT]
            elif phase == "lift":
                goal = np.r_[ee[:2], LIFT_HEIGHT]
            elif phase == "carry":  # the cube, not the EE, over the target: the grasp may be off-centre
                goal = np.r_[ee[:2] + target[:2] - cube[:2], LIFT_HEIGHT]
            elif phase == "lower":
                goal = np.r_[ee[:2] + target[:2] - cube[:2], PLACE_HEIGHT]
        elif phase == "release":
            goal = np.r_[ee[:2] + target[:2] - cube[:2], PLACE_HEIGHT]
        elif phase == "retreat":
            goal = np.r_[ee[:2], LIFT_HEIGHT]
        step = np.clip(GAIN * (goal - ee), -MAX_STEP, MAX_STEP)
        turn = np.array([_wrap(math.pi - euler[0]), _wrap(0.0 - euler[1]), _wrap(self._yaw_goal - euler[2])])
        turn = np.clip(GAIN * turn, -MAX_TURN, MAX_TURN)
        if self.random_prob > 0.0 and self.rng.random() < self.random_prob:
            step = self.rng.uniform(-self.random_step, self.random_step, 3)
            if gripper < 0.0:  # never opens on a held cube
                gripper = float(self.rng.choice((-1.0, 1.0)))
        action = np.r_[step, turn, gripper]
        if self.noise > 0.0:
            action[:3] += self.rng.normal(0.0, NOISE_POS * self.noise, 3)
            action[3:6] += self.rng.normal(0.0, NOISE_ROT * self.noise, 3)
            action[6] += self.rng.normal(0.0, NOISE_GRIPPER * self.noise)
        self._count += 1
        reached = bool(np.all(np.abs(goal - ee) < POS_TOL) and abs(_wrap(self._yaw_goal - euler[2])) < YAW_TOL)
        timed = phase in ("close", "release") and self._count >= (CLOSE_STEPS if phase == "close" else OPEN_STEPS)
        if timed or (phase not in ("close", "release") and reached) or self._count >= PHASE_LIMIT:
            self._phase += 1
            self._count = 0
        return action


@dataclass
class EpisodeResult:
    """Outcome of one scripted episode."""

    task: str
    steps: int
    cube_start: np.ndarray
    max_cube_lift: float  # m, highest rise of the cube's centre
    final_cube_lift: float  # m
    final_distance: float  # m, cube centre to target centre (horizontal)
    lifted: bool
    placed: bool
    actions: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """Grasp: lifted; pick_place: placed (and resting near the table)."""
        return self.placed if self.task == "pick_place" else self.lifted


def run_episode(sim: FrankaSim, task: Task = "pick_place", seed: int = 0, noise: float = 1.0,
                max_steps: int = 250, settle_steps: int = 5, record: bool = False) -> EpisodeResult:
    """Reset ``sim`` from ``seed`` and run the script to its end (or ``max_steps`` control steps), then let things
    settle for ``settle_steps`` zero actions. With ``record``, keeps the state before each action and the action."""
    rng = np.random.default_rng(seed)
    sim.reset(rng=rng)
    script = PickPlaceScript(task, rng=rng, noise=noise)
    script.reset(sim)
    start = sim.cube_position()
    max_lift = 0.0
    result = EpisodeResult(task, 0, start, 0.0, 0.0, 0.0, False, False)
    steps = 0
    while not script.done and steps < max_steps:
        action = script.act(sim)
        if record:
            result.states.append(sim.state())
            result.actions.append(action)
        sim.apply_action(action)
        steps += 1
        max_lift = max(max_lift, float(sim.cube_position()[2] - start[2]))
    for _ in range(settle_steps):
        sim.apply_action(np.zeros(7))
    result.steps = steps
    result.max_cube_lift = max_lift
    result.final_cube_lift = float(sim.cube_position()[2] - start[2])
    result.final_distance = sim.cube_to_target()
    result.lifted = max_lift >= LIFT_SUCCESS
    result.placed = result.final_distance <= PLACE_SUCCESS and result.final_cube_lift < 0.01
    return result

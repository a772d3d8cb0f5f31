"""ROS-free MuJoCo simulation of a Franka Panda with its parallel gripper for pick-and-place (``franka_scene.xml``).

The robot is the Franka model that gymnasium-robotics installs (``envs/assets/kitchen_franka/franka_assets``,
Apache-2.0); it is read from the installed package and attached to the scene at load time with ``mujoco.MjSpec``
(``load_model``), together with this module's actuators (joint PD servos with velocity feed-forward, gravity
compensation). The scene adds a table, a 4 cm cube on a free joint and a flat target marker.

Control is taken as MoveIt Servo takes it: an end-effector (EE) twist (linear m/s, angular rad/s, both in the base
frame) held for a duration, plus a gripper command in [0, 1] (1 = closed, the V-JEPA 2-AC convention) that moves the
fingers at a limited speed. The servo keeps a joint-space reference that it moves with damped-least-squares (DLS)
differential IK on MuJoCo's site Jacobian of the reference's own kinematics (joint limits respected, a null-space
pull towards the home posture for the redundant 7th degree of freedom); the simulated joints track that reference.
``apply_action`` executes one 7-D V-JEPA 2-AC action [dx, dy, dz, droll, dpitch, dyaw, dgripper] over one control
period. The state out is the EE pose and the 7-D V-JEPA 2-AC state [x, y, z, roll, pitch, yaw, gripper] (extrinsic
x-y-z Euler angles, transforms3d's "sxyz"; gripper = closure in [0, 1]).

Frames: the world frame is the robot's base frame (the Panda's link0 stands at the origin on the table top, z = 0).
The EE point ("panda_ee" site) lies between the finger pads, 2 cm above the fingertips.

Rendering is headless; ``MUJOCO_GL`` is chosen as in ``arm_sim``. Shadows and reflections are off (3-4x cheaper
with software rendering).
"""
from __future__ import annotations

import importlib.util
import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from jepa_common.gripper import FRANKA_FINGER_TRAVEL, closedness
from jepa_sim.arm_sim import _as_duration, _as_vector  # (importing arm_sim also sets MUJOCO_GL)

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import transforms3d.euler as t3d_euler  # noqa: E402

SCENE_PATH = Path(__file__).with_name("franka_scene.xml")
#: Where the Franka model lies inside the gymnasium-robotics package.
FRANKA_ASSET_DIR = ("envs", "assets", "kitchen_franka", "franka_assets")
ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINT_NAMES: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
JOINT_NAMES: tuple[str, ...] = ARM_JOINT_NAMES + FINGER_JOINT_NAMES
CAMERA_NAME = "exo"
IMAGE_SIZE = 128  # px, side of the camera image unless asked otherwise
EE_SITE = "panda_ee"
CUBE_NAME = "cube"
TARGET_NAME = "target"
STATE_LABELS: tuple[str, ...] = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
EULER_AXES = "sxyz"  # extrinsic x-y-z (roll about base x, then pitch about y, then yaw about z)

# Kinematics of this model (measured on it): the EE point is 0.240 m from link7 along its axis, between the pads.
EE_OFFSET = 0.2404  # m, link7 origin -> EE point
FINGERTIP_BELOW_EE = 0.0195  # m
FINGER_MAX = FRANKA_FINGER_TRAVEL  # m, travel of each finger (opening 0..0.08 m)
GRIPPER_SPEED = 0.08  # m/s per finger: a full close takes 0.5 s
CUBE_HALF = 0.02  # m, the cube is 4 cm
EE_MIN_HEIGHT = 0.022  # m: the servo keeps the EE at least this high (fingertips 2.5 mm above the table)
MAX_JOINT_SPEED = 2.0  # rad/s, reference speed limit of the servo
_DLS_DAMPING = 0.02  # damping of the DLS solve (m / rad)
_NULLSPACE_GAIN = 2.0  # 1/s, pull of the redundant DOF towards the home posture
_REST_PULL = 0.1  # share of the gap to home that each IK iteration pulls in the null space (to the rest posture)
_IK_ITERATIONS = 400  # per seed: the pose takes a few dozen, settling into the rest posture a few hundred
_MAX_TRACKING_LAG = 0.02  # m (and rad), how far the set-point may run ahead of the reference (anti wind-up)
_LIMIT_MARGIN = 0.02  # rad, the reference stays this far inside the joint limits
_ROT_WEIGHT = 0.5  # m/rad: orientation error weight in the IK (a 0.1 rad error weighs like 5 cm)
# Joint servo gains (position kp, velocity kv) and torque limits (Franka: 87 N m joints 1-4, 12 N m joints 5-7).
_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
_KV = (450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0)
_TORQUE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
_FINGER_KP = 500.0  # N/m: a closed command on a 4 cm cube squeezes with 10 N per finger
_FINGER_FORCE = 70.0  # N
# Home: gripper pointing down, EE at (0.45, 0, 0.30).
HOME_EE = (0.45, 0.0, 0.30)
DOWN_EULER = (math.pi, 0.0, 0.0)  # roll, pitch, yaw of the gripper pointing down (fingers open along base y)


@dataclass(frozen=True)
class Region:
    """Axis-aligned box (base frame, metres); a degenerate axis (low == high) is fixed."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A point drawn uniformly from the box."""
        return rng.uniform(self.low, self.high)

    def contains(self, p: Sequence[float], tol: float = 0.0) -> bool:
        """True when ``p`` lies in the box grown by ``tol``."""
        p = np.asarray(p, dtype=float)
        return bool(np.all(p >= np.asarray(self.low) - tol) and np.all(p <= np.asarray(self.high) + tol))


#: Random start EE positions of ``reset`` (gripper pointing down, yaw within +-START_YAW, open).
START_REGION = Region(low=(0.35, -0.20, 0.15), high=(0.60, 0.20, 0.35))
START_YAW = 0.5  # rad
#: Cube centres' xy at reset (the cube rests on the table, yaw within +-CUBE_YAW), and target xy.
CUBE_REGION = Region(low=(0.40, -0.15), high=(0.60, 0.15))
CUBE_YAW = math.pi / 4
TARGET_REGION = Region(low=(0.40, -0.20), high=(0.62, 0.20))
MIN_CUBE_TARGET_DISTANCE = 0.10  # m


def franka_asset_dir() -> Path:
    """Directory of the Franka MJCF + meshes in the installed gymnasium-robotics package (the package is not
    imported: importing it would pull in gymnasium)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("gymnasium-robotics is not installed (pip install -r requirements.txt): the Franka model "
                          "comes from it")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*FRANKA_ASSET_DIR)
    if not (path / "chain.xml").is_file():
        raise FileNotFoundError(f"no Franka model at {path} (gymnasium-robotics changed its layout?)")
    return path


def load_model() -> mujoco.MjModel:
    """Compile the scene with the Franka attached to "base_link", renamed to franka_description's names
    (panda_joint1..7, panda_finger_joint1/2, panda_link0..7), with this module's actuators and gravity compensation."""
    assets = franka_asset_dir()
    robot = mujoco.MjSpec.from_string(
        f'<mujoco><include file="{assets / "assets.xml"}"/>'
        f'<worldbody><include file="{assets / "chain.xml"}"/></worldbody></mujoco>')
    for mesh in robot.meshes:  # the parser resolves mesh files against the include's folder, not its meshdir
        file = Path(mesh.file)
        mesh.file = str(assets / "meshes" / file.parent.name / file.name)
    robot.nuser_actuator = -1
    for joint in robot.joints:  # "robot:panda0_joint1" -> "joint1", "robot:panda0_finger_joint1" -> "finger_joint1"
        joint.name = joint.name.split("panda0_")[-1]
        if joint.name.startswith("finger"):
            joint.damping, joint.armature = [20.0, 0.0, 0.0], 0.5
        else:  # the servo's kv damps; the model's 100 N m s/rad would eat most of the torque budget
            joint.damping, joint.armature = [1.0, 0.0, 0.0], 0.1
    for body in robot.bodies:
        if body.name.startswith("panda0_"):
            body.name = body.name.replace("panda0_", "")
        body.gravcomp = 1.0
    link7 = robot.body("link7")
    ee = link7.add_site()
    ee.name, ee.pos, ee.size = "ee", [0.0, 0.0, EE_OFFSET], [0.005, 0.005, 0.005]
    ee.quat = [math.cos(-math.pi / 8), 0.0, 0.0, math.sin(-math.pi / 8)]  # x along the hand, y along the opening
    ee.group = 4  # not drawn

    scene = mujoco.MjSpec.from_file(str(SCENE_PATH))
    scene.body("base_link").add_frame().attach_body(robot.body("link0"), "panda_", "")
    for i, name in enumerate(ARM_JOINT_NAMES):
        joint = scene.joint(name)
        joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.actfrcrange = [-_TORQUE[i], _TORQUE[i]]
        pos = scene.add_actuator()
        pos.name, pos.target, pos.trntype = f"{name}_pos", name, mujoco.mjtTrn.mjTRN_JOINT
        pos.set_to_position(kp=_KP[i])
        vel = scene.add_actuator()
        vel.name, vel.target, vel.trntype = f"{name}_vel", name, mujoco.mjtTrn.mjTRN_JOINT
        vel.set_to_velocity(kv=_KV[i])
    for name in FINGER_JOINT_NAMES:
        act = scene.add_actuator()
        act.name, act.target, act.trntype = f"{name}_pos", name, mujoco.mjtTrn.mjTRN_JOINT
        act.set_to_position(kp=_FINGER_KP)
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-_FINGER_FORCE, _FINGER_FORCE]
    return scene.compile()


def _rotvec(rot: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad) of a 3x3 rotation matrix."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot).ravel())
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def _rotation(rotvec: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a rotation vector."""
    angle = float(np.linalg.norm(rotvec))
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    if angle > 1e-12:
        quat = np.r_[math.cos(angle / 2), np.asarray(rotvec) / angle * math.sin(angle / 2)]
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


def _mat2quat(rot: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot).ravel())
    return quat


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)])


Mode = Literal["hold", "twist"]


class FrankaSim:
    """The simulated Franka Panda, its gripper, a cube and a target: physics, servo, differential IK and camera.

    Args:
        image_size: side of the square camera image in pixels.
        seed: seed of the default random generator (``reset`` without ``rng``).
        control_period: duration of one control step (``apply_action``) in seconds.
    """

    def __init__(self, image_size: int = IMAGE_SIZE, seed: int = 0, control_period: float = 0.1) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
            raise TypeError(f"image_size must be an int, got {image_size!r}")
        if not 8 <= int(image_size) <= 640:
            raise ValueError(f"image_size must be in [8, 640], got {image_size}")
        self.model = load_model()
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # kinematics of the reference, IK and off-line rendering
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        dt = self.model.opt.timestep
        control_period = float(control_period)
        if not math.isfinite(control_period) or control_period < dt:
            raise ValueError(f"control_period must be >= the physics timestep {dt} s, got {control_period}")
        self.control_period = control_period

        m = self.model
        arm_ids = [m.joint(n).id for n in ARM_JOINT_NAMES]
        finger_ids = [m.joint(n).id for n in FINGER_JOINT_NAMES]
        self._qpos_adr = np.array([m.jnt_qposadr[j] for j in arm_ids])
        self._dof_adr = np.array([m.jnt_dofadr[j] for j in arm_ids])
        self._finger_qpos = np.array([m.jnt_qposadr[j] for j in finger_ids])
        self._finger_dof = np.array([m.jnt_dofadr[j] for j in finger_ids])
        self._pos_act = np.array([m.actuator(f"{n}_pos").id for n in ARM_JOINT_NAMES])
        self._vel_act = np.array([m.actuator(f"{n}_vel").id for n in ARM_JOINT_NAMES])
        self._finger_act = np.array([m.actuator(f"{n}_pos").id for n in FINGER_JOINT_NAMES])
        self._site_id = m.site(EE_SITE).id
        self._cam_id = m.camera(CAMERA_NAME).id
        cube_joint = m.joint(CUBE_NAME)
        self._cube_adr = int(m.jnt_qposadr[cube_joint.id])
        self._cube_dof = int(m.jnt_dofadr[cube_joint.id])
        self._cube_body = m.body(CUBE_NAME).id
        self._target_mocap = int(m.body_mocapid[m.body(TARGET_NAME).id])
        self.joint_lower = m.jnt_range[arm_ids, 0].copy()
        self.joint_upper = m.jnt_range[arm_ids, 1].copy()

        self._renderer: mujoco.Renderer | None = None
        self._release_renderer: weakref.finalize | None = None
        self._mode: Mode = "hold"
        self._q_ref = np.zeros(7)
        self._qd_ref = np.zeros(7)
        self._v = np.zeros(3)
        self._w = np.zeros(3)
        self._p_des = np.zeros(3)
        self._r_des = np.eye(3)
        self._gripper_cmd = 0.0
        self._finger_ref = FINGER_MAX
        # Home posture: a fixed elbow-up seed refined by IK to HOME_EE pointing down.
        self.home = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 0.3, 0.0])
        self.home = np.clip(self.home, self.joint_lower + _LIMIT_MARGIN, self.joint_upper - _LIMIT_MARGIN)
        home = self.ik(HOME_EE, DOWN_EULER, seeds=[self.home])
        if home is None:
            raise RuntimeError("the home pose is not reachable (model changed?)")
        self.home = home
        self.reset(joint_positions=self.home, cube_xy=(0.5, 0.0), target_xy=(0.5, 0.15))

    # ------------------------------------------------------------------ state
    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names of all joints of the robot (7 arm joints, then the 2 fingers), the order of ``joint_*_all``."""
        return JOINT_NAMES

    @property
    def timestep(self) -> float:
        """Physics timestep in seconds."""
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        """Simulated time in seconds (continues across ``reset``)."""
        return float(self.data.time)

    @property
    def mode(self) -> Mode:
        """Active arm command: "hold" or "twist"."""
        return self._mode

    @property
    def gripper_command(self) -> float:
        """The last gripper command in [0, 1] (1 = closed)."""
        return self._gripper_cmd

    def joint_positions(self) -> np.ndarray:
        """Measured arm joint angles (rad), panda_joint1..7."""
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        """Measured arm joint velocities (rad/s)."""
        return self.data.qvel[self._dof_adr].copy()

    def joint_positions_all(self) -> np.ndarray:
        """Measured positions of ``joint_names``: 7 arm angles (rad), then the 2 finger slides (m)."""
        return np.r_[self.joint_positions(), self.data.qpos[self._finger_qpos]]

    def joint_velocities_all(self) -> np.ndarray:
        """Measured velocities of ``joint_names`` (rad/s, m/s)."""
        return np.r_[self.joint_velocities(), self.data.qvel[self._finger_dof]]

    def joint_state(self) -> dict[str, tuple[float, float]]:
        """{joint name: (position, velocity)} of all robot joints."""
        return dict(zip(JOINT_NAMES, zip(self.joint_positions_all().tolist(), self.joint_velocities_all().tolist())))

    def ee_position(self) -> np.ndarray:
        """EE point (m, base frame)."""
        return self.data.site_xpos[self._site_id].copy()

    def ee_rotation(self) -> np.ndarray:
        """EE orientation as a 3x3 rotation matrix (base frame)."""
        return self.data.site_xmat[self._site_id].reshape(3, 3).copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """EE position (m) and orientation quaternion (w, x, y, z), both in the base frame."""
        return self.ee_position(), _mat2quat(self.ee_rotation())

    def ee_euler(self) -> np.ndarray:
        """EE orientation as extrinsic x-y-z Euler angles [roll, pitch, yaw] (rad)."""
        return np.array(t3d_euler.mat2euler(self.ee_rotation(), EULER_AXES))

    def gripper_opening(self) -> float:
        """Distance between the fingers (m), 0 (closed) .. 0.08."""
        return float(np.clip(self.data.qpos[self._finger_qpos].sum(), 0.0, 2 * FINGER_MAX))

    def gripper_state(self) -> float:
        """Normalised gripper closure in [0, 1]: 0 open, 1 closed (V-JEPA 2-AC convention)."""
        return closedness(self.gripper_opening() / 2)   # the mean finger position

    def state(self) -> np.ndarray:
        """The 7-D V-JEPA 2-AC state [x, y, z, roll, pitch, yaw, gripper] (``STATE_LABELS``)."""
        return np.r_[self.ee_position(), self.ee_euler(), self.gripper_state()]

    def cube_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The cube's centre (m) and orientation quaternion (w, x, y, z), base frame (for judging/recording)."""
        return self.data.xpos[self._cube_body].copy(), self.data.xquat[self._cube_body].copy()

    def cube_position(self) -> np.ndarray:
        """The cube's centre (m, base frame)."""
        return self.data.xpos[self._cube_body].copy()

    def cube_yaw(self) -> float:
        """The cube's rotation about the vertical (rad, in (-pi/4, pi/4]: a cube looks the same every 90 deg)."""
        rot = self.data.xmat[self._cube_body].reshape(3, 3)
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4

    def target_position(self) -> np.ndarray:
        """Centre of the target marker on the table (m, base frame, z = 0)."""
        return self.data.mocap_pos[self._target_mocap].copy()

    def cube_to_target(self) -> float:
        """Horizontal distance (m) from the cube's centre to the target's centre."""
        return float(np.linalg.norm(self.cube_position()[:2] - self.target_position()[:2]))

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None, rng: np.random.Generator | None = None,
              joint_positions: Sequence[float] | None = None, cube_xy: Sequence[float] | None = None,
              cube_yaw: float | None = None, target_xy: Sequence[float] | None = None) -> None:
        """Put the robot at rest with the gripper open, the cube on the table and the target marker. Time is kept.

        Whatever is not given is drawn from ``rng`` (else a generator of ``seed``, else the sim's own): the EE
        from ``START_REGION`` pointing down with a yaw within +-``START_YAW``; the cube's xy from ``CUBE_REGION``
        with a yaw within +-``CUBE_YAW``; the target's xy from ``TARGET_REGION``, at least
        ``MIN_CUBE_TARGET_DISTANCE`` from the cube.
        """
        if rng is None:
            rng = self.rng if seed is None else np.random.default_rng(int(seed))
        if joint_positions is None:
            q = None
            for _ in range(50):
                yaw = DOWN_EULER[2] + rng.uniform(-START_YAW, START_YAW)
                q = self.ik(START_REGION.sample(rng), (DOWN_EULER[0], DOWN_EULER[1], yaw))
                if q is not None:
                    break
            if q is None:
                raise RuntimeError("no reachable start pose in 50 tries")
        else:
            q = self._check_joints(joint_positions, "joint_positions")
        xy = CUBE_REGION.sample(rng) if cube_xy is None else _as_vector(cube_xy, 2, "cube_xy")
        yaw = float(rng.uniform(-CUBE_YAW, CUBE_YAW)) if cube_yaw is None else float(cube_yaw)
        if target_xy is None:
            for _ in range(1000):
                txy = TARGET_REGION.sample(rng)
                if np.linalg.norm(txy - xy) >= MIN_CUBE_TARGET_DISTANCE:
                    break
        else:
            txy = _as_vector(target_xy, 2, "target_xy")
        now = self.data.time
        mujoco.mj_resetData(self.model, self.data)
        self.data.time = now
        self.data.qpos[self._qpos_adr] = q
        self.data.qpos[self._finger_qpos] = FINGER_MAX
        self._q_ref = q.copy()
        self._qd_ref = np.zeros(7)
        self._gripper_cmd = 0.0
        self._finger_ref = FINGER_MAX
        self._mode = "hold"
        self._set_cube_qpos(self.data, np.r_[xy, CUBE_HALF], _yaw_quat(yaw))
        self.data.mocap_pos[self._target_mocap] = (txy[0], txy[1], 0.0)
        self._write_ctrl()
        mujoco.mj_forward(self.model, self.data)

    def place_cube(self, position: Sequence[float], quat: Sequence[float] = (1.0, 0.0, 0.0, 0.0)) -> None:
        """Put the cube at rest at ``position`` (m) with orientation ``quat`` (w, x, y, z), base frame."""
        self._set_cube_qpos(self.data, _as_vector(position, 3, "position"), _as_vector(quat, 4, "quat"))
        self.data.qvel[self._cube_dof:self._cube_dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def set_target(self, xy: Sequence[float]) -> None:
        """Move the target marker to ``xy`` (m) on the table."""
        xy = _as_vector(xy, 2, "xy")
        self.data.mocap_pos[self._target_mocap] = (xy[0], xy[1], 0.0)
        mujoco.mj_forward(self.model, self.data)

    # --------------------------------------------------------------- commands
    def start_twist(self, linear: Sequence[float], angular: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        """Start servoing the EE at ``linear`` (m/s) and ``angular`` (rad/s), base frame, until ``stop``."""
        v = _as_vector(linear, 3, "linear")
        w = _as_vector(angular, 3, "angular")
        if self._mode != "twist":  # anchor the set-point at the measured EE so moves are relative to it
            self._p_des = self.ee_position()
            self._r_des = self.ee_rotation()
        self._v, self._w = v, w
        self._mode = "twist"

    def stop(self) -> None:
        """Stop the arm and hold the current reference pose (the gripper keeps its command)."""
        self._mode = "hold"
        self._qd_ref = np.zeros(7)

    def set_gripper(self, command: float) -> None:
        """Gripper command in [0, 1] (1 = closed); the fingers move there at ``GRIPPER_SPEED``."""
        command = float(command)
        if not math.isfinite(command) or not 0.0 <= command <= 1.0:
            raise ValueError(f"gripper command must be a finite number in [0, 1], got {command}")
        self._gripper_cmd = command

    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` timesteps, executing the active commands."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        dt = self.timestep
        for _ in range(int(n)):
            if self._mode == "twist":
                self._twist_reference(dt)
            else:
                self._qd_ref = np.zeros(7)
            goal = FINGER_MAX * (1.0 - self._gripper_cmd)
            self._finger_ref += float(np.clip(goal - self._finger_ref, -GRIPPER_SPEED * dt, GRIPPER_SPEED * dt))
            self._write_ctrl()
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    def apply_twist(self, linear: Sequence[float], angular: Sequence[float], duration: float,
                    gripper: float | None = None) -> None:
        """Servo the EE with ``linear`` (m/s) and ``angular`` (rad/s) for ``duration`` s, then hold; ``gripper``,
        when given, is the gripper command meanwhile."""
        if gripper is not None:
            self.set_gripper(gripper)
        self.start_twist(linear, angular)
        self.step(self._steps(duration))
        self.stop()

    def apply_action(self, delta: Sequence[float]) -> None:
        """One control step of a 7-D V-JEPA 2-AC action [dx, dy, dz, droll, dpitch, dyaw, dgripper].

        The EE moves by (dx, dy, dz) m and its Euler angles change by (droll, dpitch, dyaw) rad within
        ``control_period`` s; the gripper command becomes clip(command + dgripper, 0, 1).
        """
        d = _as_vector(delta, 7, "action")
        rot_now = self.ee_rotation()
        rot_goal = t3d_euler.euler2mat(*(self.ee_euler() + d[3:6]), EULER_AXES)
        angular = _rotvec(rot_goal @ rot_now.T) / self.control_period
        self.apply_twist(d[:3] / self.control_period, angular, self.control_period,
                         gripper=float(np.clip(self._gripper_cmd + d[6], 0.0, 1.0)))

    # -------------------------------------------------------------- kinematics
    def ik(self, position: Sequence[float], euler: Sequence[float] = DOWN_EULER,
           seeds: Sequence[np.ndarray] | None = None, tol: float = 1e-4) -> np.ndarray | None:
        """Arm joint positions placing the EE at ``position`` (m) with extrinsic x-y-z ``euler`` (rad), base frame,
        inside the joint limits, or None when no seed converges (default seeds: home, the current reference).

        Of the postures that place the EE there, the one the servo comes to rest in (its null-space pull towards
        home run to convergence), so that a rendered goal or start shows the arm as it looks when it gets there."""
        p_goal = _as_vector(position, 3, "position")
        r_goal = t3d_euler.euler2mat(*_as_vector(euler, 3, "euler"), EULER_AXES)
        if p_goal[2] < EE_MIN_HEIGHT - 1e-9:
            return None
        low, high = self.joint_lower + _LIMIT_MARGIN, self.joint_upper - _LIMIT_MARGIN
        for seed in (seeds if seeds is not None else [self.home, self._q_ref]):
            q = np.clip(np.asarray(seed, dtype=float), low, high)
            for _ in range(_IK_ITERATIONS):
                pos, rot, jac = self._fk(q)
                err = np.r_[p_goal - pos, _ROT_WEIGHT * _rotvec(r_goal @ rot.T)]
                dq = self._dls(jac, err, 1e-3, q, _REST_PULL)
                if np.linalg.norm(err) < tol and np.max(np.abs(dq)) < tol:
                    return q
                dq *= min(1.0, 0.3 / max(float(np.max(np.abs(dq))), 1e-12))
                q = np.clip(q + dq, low, high)
        return None

    # ---------------------------------------------------------------- camera
    def render(self) -> np.ndarray:
        """Camera image of the current state, uint8 (H, W, 3) RGB."""
        return self._render(self.data)

    def render_state(self, joint_positions: Sequence[float], gripper: float = 0.0,
                     cube_position: Sequence[float] | None = None, cube_quat: Sequence[float] | None = None,
                     target_xy: Sequence[float] | None = None) -> np.ndarray:
        """Camera image of the arm at ``joint_positions`` (7 angles) with the gripper at closure ``gripper``
        (0 open .. 1 closed), the cube at ``cube_position``/``cube_quat`` and the target at ``target_xy`` (each
        default: where it is now); the simulation state is not touched."""
        s = self._scratch
        s.qpos[:] = self.data.qpos
        s.mocap_pos[:] = self.data.mocap_pos
        s.mocap_quat[:] = self.data.mocap_quat
        s.qpos[self._qpos_adr] = self._check_joints(joint_positions, "joint_positions")
        gripper = float(gripper)
        if not math.isfinite(gripper) or not 0.0 <= gripper <= 1.0:
            raise ValueError(f"gripper must be in [0, 1], got {gripper}")
        s.qpos[self._finger_qpos] = FINGER_MAX * (1.0 - gripper)
        if cube_position is not None or cube_quat is not None:
            pos = self.cube_position() if cube_position is None else _as_vector(cube_position, 3, "cube_position")
            quat = self.cube_pose()[1] if cube_quat is None else _as_vector(cube_quat, 4, "cube_quat")
            self._set_cube_qpos(s, pos, quat)
        if target_xy is not None:
            txy = _as_vector(target_xy, 2, "target_xy")
            s.mocap_pos[self._target_mocap] = (txy[0], txy[1], 0.0)
        s.qvel[:] = 0.0
        mujoco.mj_forward(self.model, s)
        return self._render(s)

    def render_goal(self, ee_position: Sequence[float], ee_euler: Sequence[float] = DOWN_EULER,
                    gripper: float = 0.0, cube_position: Sequence[float] | None = None,
                    cube_quat: Sequence[float] | None = None) -> np.ndarray:
        """Camera image with the EE at ``ee_position``/``ee_euler`` (solved by ``ik``), the gripper at ``gripper``
        and the cube at ``cube_position``/``cube_quat`` (default: where it is now); the state is not touched."""
        q = self.ik(ee_position, ee_euler, seeds=[self._q_ref, self.home])
        if q is None:
            raise ValueError(f"EE pose {np.asarray(ee_position).tolist()} {np.asarray(ee_euler).tolist()} "
                             "is not reachable")
        return self.render_state(q, gripper, cube_position, cube_quat)

    def close(self) -> None:
        """Release the renderer (its GL context)."""
        if self._release_renderer is not None:
            self._release_renderer()
        self._renderer = None
        self._release_renderer = None

    def __enter__(self) -> FrankaSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- internals
    def _render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
            self._release_renderer = weakref.finalize(self, self._renderer.close)
        self._renderer.update_scene(data, camera=self._cam_id)
        return self._renderer.render()

    def _steps(self, duration: float) -> int:
        return int(round(_as_duration(duration) / self.timestep))

    def _check_joints(self, positions: Sequence[float], name: str) -> np.ndarray:
        q = _as_vector(positions, 7, name)
        bad = (q < self.joint_lower - 1e-9) | (q > self.joint_upper + 1e-9)
        if np.any(bad):
            j = int(np.argmax(bad))
            raise ValueError(f"{name}: {ARM_JOINT_NAMES[j]}={q[j]:.4f} rad is outside its limits "
                             f"[{self.joint_lower[j]:.4f}, {self.joint_upper[j]:.4f}]")
        return q

    def _set_cube_qpos(self, data: mujoco.MjData, position: np.ndarray, quat: np.ndarray) -> None:
        norm = float(np.linalg.norm(quat))
        if norm < 1e-9:
            raise ValueError("cube quaternion must be non-zero")
        data.qpos[self._cube_adr:self._cube_adr + 3] = position
        data.qpos[self._cube_adr + 3:self._cube_adr + 7] = np.asarray(quat) / norm

    def _fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """EE position, rotation and 6x7 Jacobian (linear; angular) at arm joint positions ``q`` (scratch data)."""
        s = self._scratch
        s.qpos[self._qpos_adr] = q
        mujoco.mj_kinematics(self.model, s)
        mujoco.mj_comPos(self.model, s)
        jacp = np.empty((3, self.model.nv))
        jacr = np.empty((3, self.model.nv))
        mujoco.mj_jacSite(self.model, s, jacp, jacr, self._site_id)
        jac = np.vstack([jacp[:, self._dof_adr], _ROT_WEIGHT * jacr[:, self._dof_adr]])
        return s.site_xpos[self._site_id].copy(), s.site_xmat[self._site_id].reshape(3, 3).copy(), jac

    def _dls(self, jac: np.ndarray, err: np.ndarray, damping: float, q: np.ndarray,
             pull_share: float | None = None) -> np.ndarray:
        """DLS step towards ``err`` plus a null-space pull of ``q`` towards home (``pull_share`` of the gap, default
        the servo's per physics step); joints a limit would be pushed through are locked and the rest re-solved."""
        low, high = self.joint_lower + _LIMIT_MARGIN, self.joint_upper - _LIMIT_MARGIN
        free = np.ones(7, dtype=bool)
        share = _NULLSPACE_GAIN * self.timestep if pull_share is None else pull_share
        pull = share * (self.home - q)
        for _ in range(7):
            j = jac[:, free]
            a = j @ j.T + damping**2 * np.eye(6)
            x = j.T @ np.linalg.solve(a, err)
            null = pull[free] - j.T @ np.linalg.solve(a, j @ pull[free])
            dq = np.zeros(7)
            dq[free] = x + null
            blocked = free & (((q <= low + 1e-6) & (dq < 0.0)) | ((q >= high - 1e-6) & (dq > 0.0)))
            if not blocked.any():
                break
            free &= ~blocked
            if not free.any():
                return np.zeros(7)
        return dq

    def _twist_reference(self, dt: float) -> None:
        """Advance the Cartesian set-point by the twist and move the joint reference towards it (DLS)."""
        p_des = self._p_des + self._v * dt
        p_des[2] = max(p_des[2], EE_MIN_HEIGHT)
        r_des = _rotation(self._w * dt) @ self._r_des
        pos, rot, jac = self._fk(self._q_ref)
        err = np.r_[p_des - pos, _ROT_WEIGHT * _rotvec(r_des @ rot.T)]
        lag = float(np.linalg.norm(err))
        if lag > _MAX_TRACKING_LAG:  # blocked (limits, reach): do not let the set-point run away
            err *= _MAX_TRACKING_LAG / lag
            p_des = pos + err[:3]
            r_des = _rotation(err[3:] / _ROT_WEIGHT) @ rot
        self._p_des, self._r_des = p_des, r_des
        q = self._q_ref
        dq = self._dls(jac, err, _DLS_DAMPING, q)
        peak = float(abs(dq).max())
        if peak > MAX_JOINT_SPEED * dt:
            dq *= MAX_JOINT_SPEED * dt / peak
        low, high = self.joint_lower + _LIMIT_MARGIN, self.joint_upper - _LIMIT_MARGIN
        q_new = np.minimum(np.maximum(q + dq, np.minimum(low, q)), np.maximum(high, q))
        self._qd_ref = (q_new - q) / dt
        self._q_ref = q_new

    def _write_ctrl(self) -> None:
        self.data.ctrl[self._pos_act] = self._q_ref
        self.data.ctrl[self._vel_act] = self._qd_ref
        self.data.ctrl[self._finger_act] = self._finger_ref

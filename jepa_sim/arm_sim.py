"""ROS-free MuJoCo wrapper around the built-in 3-joint arm (``arm.xml``).

State is the end-effector (EE) position [x, y, z] in metres in the base frame (`jepa_common.frames.BASE`, the model's
body of that name); an action is an EE displacement executed as a Cartesian velocity servo for one control period.
Two tasks share the arm: ``reach`` (``arm.xml``, oblique "scene" camera) and ``push`` (``arm_push.xml``: the same arm
plus a puck on a free joint that the EE sphere can push, and a "table" camera framed obliquely on the table). The
servo keeps a joint-space reference that it moves with damped-least-squares (DLS) inverse kinematics on the
reference's own kinematics; the simulated joints track that reference with PD position/velocity servos (see
``arm.xml``).

Rendering is headless. ``MUJOCO_GL`` is respected when set; otherwise ``egl`` is chosen on machines with an
NVIDIA GPU and EGL driver, and ``osmesa`` (software) everywhere else.
"""
from __future__ import annotations

import ctypes.util
import math
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from jepa_common import frames


def _default_gl_backend() -> str:
    """``egl`` when an NVIDIA device with its EGL driver is present, else ``osmesa``."""
    if os.path.exists("/dev/nvidia0") and ctypes.util.find_library("EGL_nvidia"):
        return "egl"
    return "osmesa"


os.environ.setdefault("MUJOCO_GL", _default_gl_backend())

import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)
import numpy as np  # noqa: E402

MODEL_PATH = Path(__file__).with_name("arm.xml")
PUSH_MODEL_PATH = Path(__file__).with_name("arm_push.xml")
JOINT_NAMES: tuple[str, ...] = ("base_yaw", "shoulder_pitch", "elbow_pitch")
CAMERA_NAME = "scene"
PUSH_CAMERA_NAME = "table"
OBJECT_NAME = "puck"
TASKS = ("reach", "push")
Task = Literal["reach", "push"]
# Home pose: EE at roughly the centre of the workspace, elbow up.
HOME_JOINT_POSITIONS: tuple[float, ...] = (0.0, 0.43, 2.04)
MAX_JOINT_SPEED = 2.0  # rad/s, reference speed limit of the servo
EE_MIN_HEIGHT = 0.035  # m above the table: the servo never drives the EE sphere into the table
_DLS_DAMPING = 0.01  # m, damping of the damped-least-squares solve
_MAX_TRACKING_LAG = 0.02  # m, how far the Cartesian set-point may run ahead of the reference (anti wind-up)
_IK_TOLERANCE = 1e-4  # m
EE_RADIUS = 0.03  # m, the EE sphere
PUCK_RADIUS = 0.03  # m
PUCK_HALF_HEIGHT = 0.025  # m
PUSH_HEIGHT = 0.04  # m, EE height while pushing: the sphere's equator is below the puck's top (0.05 m)


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box (base frame, metres) of EE targets that are reachable and visible in the camera."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def contains(self, xyz: Sequence[float], tol: float = 0.0) -> bool:
        """True when ``xyz`` lies inside the box grown by ``tol`` metres."""
        p = np.asarray(xyz, dtype=float)
        return bool(np.all(p >= np.asarray(self.low) - tol) and np.all(p <= np.asarray(self.high) + tol))

    @property
    def center(self) -> np.ndarray:
        """Centre of the box."""
        return (np.asarray(self.low) + np.asarray(self.high)) / 2.0

    @property
    def size(self) -> np.ndarray:
        """Edge lengths of the box."""
        return np.asarray(self.high) - np.asarray(self.low)


# 0.30 x 0.40 x 0.25 m in front of the arm, above the table, well inside the reach (0.58 m from the shoulder)
# and fully in the camera's view (checked by the tests).
WORKSPACE = Workspace(low=(0.15, -0.20, 0.05), high=(0.45, 0.20, 0.30))
# Push task: EE positions near the table around the puck area (the "table" camera sees all of it) ...
PUSH_WORKSPACE = Workspace(low=(0.12, -0.22, EE_MIN_HEIGHT), high=(0.50, 0.22, 0.10))
# ... and the area where puck centres start and targets lie (z is the puck centre's height on the table).
OBJECT_AREA = Workspace(low=(0.20, -0.14, PUCK_HALF_HEIGHT), high=(0.42, 0.14, PUCK_HALF_HEIGHT))

Mode = Literal["hold", "twist", "joint"]


def _as_vector(value: Sequence[float] | np.ndarray, length: int, name: str) -> np.ndarray:
    """Validate a finite float vector of the given length."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of {length} numbers, got {value!r}") from exc
    if arr.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def _as_duration(duration: float, name: str = "duration") -> float:
    duration = float(duration)
    if not math.isfinite(duration) or duration < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {duration}")
    return duration


def _dls_step(jac: np.ndarray, err: np.ndarray, damping: float) -> np.ndarray:
    """Damped least squares: argmin |J dq - err|^2 + damping^2 |dq|^2 (MuJoCo's Cholesky: cheap for 3x3)."""
    a = jac @ jac.T
    a.flat[:: a.shape[0] + 1] += damping**2
    mujoco.mju_cholFactor(a, 0.0)
    y = np.empty(a.shape[0])
    mujoco.mju_cholSolve(y, a, np.ascontiguousarray(err))
    return jac.T @ y


class ArmSim:
    """The simulated arm: physics, servo, inverse kinematics and camera.

    Args:
        image_size: side of the square camera image in pixels.
        seed: seed of the default random generator (``sample_target`` without ``rng``).
        control_period: duration of one control step (``move_ee_by``) in seconds.
        task: "reach" (the arm alone) or "push" (the arm, a puck and the table camera).
    """

    def __init__(self, image_size: int = 64, seed: int = 0, control_period: float = 0.1,
                 task: Task = "reach") -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
            raise TypeError(f"image_size must be an int, got {image_size!r}")
        if not 8 <= int(image_size) <= 2048:
            raise ValueError(f"image_size must be in [8, 2048], got {image_size}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        self.task: Task = task
        self.model = mujoco.MjModel.from_xml_path(str(PUSH_MODEL_PATH if task == "push" else MODEL_PATH))
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
        self.workspace = PUSH_WORKSPACE if task == "push" else WORKSPACE

        self._joint_ids = [self.model.joint(name).id for name in JOINT_NAMES]
        self._qpos_adr = np.array([self.model.jnt_qposadr[j] for j in self._joint_ids])
        self._dof_adr = np.array([self.model.jnt_dofadr[j] for j in self._joint_ids])
        self._pos_act = np.array([self.model.actuator(f"{n}_pos").id for n in JOINT_NAMES])
        self._vel_act = np.array([self.model.actuator(f"{n}_vel").id for n in JOINT_NAMES])
        self._site_id = self.model.site("ee").id
        self._base_id = self.model.body(frames.BASE).id
        self._cam_id = self.model.camera(PUSH_CAMERA_NAME if task == "push" else CAMERA_NAME).id
        self._object_adr: int | None = None  # qpos address of the puck's free joint (push task)
        if task == "push":
            joint = self.model.joint(OBJECT_NAME)
            self._object_adr = int(self.model.jnt_qposadr[joint.id])
            self._object_dof = int(self.model.jnt_dofadr[joint.id])
            self._object_body = self.model.body(OBJECT_NAME).id
        self.joint_lower = self.model.jnt_range[self._joint_ids, 0].copy()
        self.joint_upper = self.model.jnt_range[self._joint_ids, 1].copy()
        self.home = np.array(HOME_JOINT_POSITIONS, dtype=float)

        self._renderer: mujoco.Renderer | None = None
        self._release_renderer: weakref.finalize | None = None
        self._mode: Mode = "hold"
        self._q_ref = np.zeros(3)
        self._qd_ref = np.zeros(3)
        self._twist = np.zeros(3)  # world frame
        self._twist_deadline: float | None = None  # simulated time at which the twist times out
        self._p_des = np.zeros(3)  # world frame
        self._motion: tuple[np.ndarray, np.ndarray, float, float] | None = None  # q0, q1, t0, duration
        mujoco.mj_forward(self.model, self._scratch)
        self.reset()
        self._floor_z = float(self._to_world(np.array([0.0, 0.0, EE_MIN_HEIGHT]))[2])  # the base is fixed

    # ------------------------------------------------------------------ state
    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names of the actuated joints, in the order of all joint vectors."""
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
        """Active command: "hold", "twist" (Cartesian servo) or "joint" (joint-space motion)."""
        return self._mode

    def joint_positions(self) -> np.ndarray:
        """Measured joint angles (rad)."""
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        """Measured joint velocities (rad/s)."""
        return self.data.qvel[self._dof_adr].copy()

    def joint_efforts(self) -> np.ndarray:
        """Actuator torques applied to the joints (N m)."""
        return self.data.qfrc_actuator[self._dof_adr].copy()

    def ee_position(self) -> np.ndarray:
        """End-effector position (m) in the base frame."""
        return self._to_base(self.data.site_xpos[self._site_id])

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (m) and orientation quaternion (w, x, y, z), both in the base frame."""
        rot = self._base_rot().T @ self.data.site_xmat[self._site_id].reshape(3, 3)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, rot.ravel())
        return self.ee_position(), quat

    def reset(self, joint_positions: Sequence[float] | None = None,
              object_xy: Sequence[float] | None = None) -> None:
        """Put the arm at rest at ``joint_positions`` (default: home) and hold it there. Time is kept.

        Push task: the puck rests at ``object_xy`` (x, y in m, base frame) or, when None, at a random spot of
        ``OBJECT_AREA`` clear of the EE (drawn from the sim's generator).
        """
        q = self.home if joint_positions is None else self._check_joints(joint_positions, "joint_positions")
        xy = None if object_xy is None else _as_vector(object_xy, 2, "object_xy")
        now = self.data.time
        mujoco.mj_resetData(self.model, self.data)
        self.data.time = now
        self.data.qpos[self._qpos_adr] = q
        self._q_ref = q.copy()
        self._qd_ref = np.zeros(3)
        self._mode = "hold"
        self._motion = None
        self._write_ctrl()
        mujoco.mj_forward(self.model, self.data)
        if self.task == "push":
            self.place_object(self._random_object_xy() if xy is None else xy)

    # ----------------------------------------------------------------- object
    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Push task: the puck's centre (m) and orientation quaternion (w, x, y, z), both in the base frame."""
        self._need_object()
        rot = self._base_rot().T @ self.data.xmat[self._object_body].reshape(3, 3)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, rot.ravel())
        return self._to_base(self.data.xpos[self._object_body]), quat

    def object_position(self) -> np.ndarray:
        """Push task: the puck's centre (m, base frame)."""
        return self.object_pose()[0]

    def place_object(self, xy: Sequence[float], yaw: float = 0.0) -> None:
        """Push task: put the puck at rest on the table at ``xy`` (m, base frame) with ``yaw`` (rad)."""
        self._need_object()
        xy = _as_vector(xy, 2, "xy")
        self._set_object_qpos(self.data, xy, float(yaw))
        self.data.qvel[self._object_dof:self._object_dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def _set_object_qpos(self, data: mujoco.MjData, xy: np.ndarray, yaw: float = 0.0) -> None:
        world = self._to_world(np.array([xy[0], xy[1], PUCK_HALF_HEIGHT]))
        adr = self._object_adr
        data.qpos[adr:adr + 3] = world
        data.qpos[adr + 3:adr + 7] = (math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0))

    def _random_object_xy(self) -> np.ndarray:
        ee = self.ee_position()[:2]
        low, high = np.asarray(OBJECT_AREA.low[:2]), np.asarray(OBJECT_AREA.high[:2])
        for _ in range(1000):
            xy = self.rng.uniform(low, high)
            if np.linalg.norm(xy - ee) > PUCK_RADIUS + EE_RADIUS + 0.01:
                return xy
        raise RuntimeError("could not place the puck clear of the end effector in 1000 tries")

    def _need_object(self) -> None:
        if self._object_adr is None:
            raise RuntimeError(f"the {self.task!r} task has no object (use task='push')")

    # --------------------------------------------------------------- commands
    def start_twist(self, linear: Sequence[float], timeout: float | None = None) -> None:
        """Start servoing the EE at ``linear`` (m/s, base frame) until another command or ``stop``.

        With ``timeout`` the twist also ends (the arm stops) once ``timeout`` s of simulated time pass without a
        new twist, as MoveIt Servo does when its command stream stops.
        """
        v = _as_vector(linear, 3, "linear")
        deadline = None if timeout is None else self.time + _as_duration(timeout, "timeout")
        if self._mode != "twist":  # anchor the set-point at the measured EE so moves are relative to it
            self._p_des = self.data.site_xpos[self._site_id].copy()
        self._twist = self._base_rot() @ v
        self._twist_deadline = deadline
        self._mode = "twist"

    def start_joint_motion(self, positions: Sequence[float], duration: float) -> float:
        """Start a smooth (minimum-jerk) joint motion to ``positions`` (rad) taking ``duration`` seconds.

        The duration is stretched when needed so that no joint exceeds ``MAX_JOINT_SPEED``; returns the one used.
        """
        q1 = self._check_joints(positions, "positions")
        duration = _as_duration(duration)
        q0 = self._q_ref.copy()
        min_duration = 1.875 * float(np.max(np.abs(q1 - q0))) / MAX_JOINT_SPEED  # peak speed of min-jerk
        duration = max(duration, min_duration, self.timestep)
        self._motion = (q0, q1, self.time, duration)
        self._mode = "joint"
        return duration

    def stop(self) -> None:
        """Stop any motion and hold the current reference pose."""
        self._mode = "hold"
        self._motion = None
        self._twist_deadline = None
        self._qd_ref = np.zeros(3)

    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` timesteps, executing the active command."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        for _ in range(int(n)):
            if (self._mode == "twist" and self._twist_deadline is not None
                    and self.data.time >= self._twist_deadline - 1e-9):
                self.stop()  # the twist timed out
            self._update_reference()
            self._write_ctrl()
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)  # make positions/sites consistent with the new state

    def apply_twist(self, linear: Sequence[float], duration: float) -> None:
        """Servo the EE with linear velocity ``linear`` (m/s, base frame) for ``duration`` s, then hold."""
        self.start_twist(linear)
        self.step(self._steps(duration))
        self.stop()

    def move_ee_by(self, delta: Sequence[float]) -> None:
        """One control step: displace the EE by ``delta`` (m, base frame) within ``control_period`` s."""
        d = _as_vector(delta, 3, "delta")
        self.apply_twist(d / self.control_period, self.control_period)

    def set_joint_targets(self, positions: Sequence[float], duration: float) -> None:
        """Move the joints to ``positions`` (rad) in ``duration`` s (JointTrajectory style), then hold."""
        self.step(self._steps(self.start_joint_motion(positions, duration)))
        self.stop()

    # -------------------------------------------------------------- kinematics
    def ik(self, target_xyz: Sequence[float], tol: float = _IK_TOLERANCE) -> np.ndarray | None:
        """Joint positions placing the EE at ``target_xyz`` (base frame), or None if unreachable.

        Joint-limited DLS iterations from several deterministic seeds (current pose, home, a few fixed poses).
        Targets lower than ``EE_MIN_HEIGHT`` above the table count as unreachable.
        """
        target_base = _as_vector(target_xyz, 3, "target_xyz")
        if target_base[2] < EE_MIN_HEIGHT:
            return None
        target = self._to_world(target_base)
        yaw = math.atan2(target_base[1], target_base[0])
        seeds = [self._q_ref, self.home] + [
            np.array([yaw, s, e]) for s, e in ((0.2, 1.9), (0.8, 1.0), (-0.4, 2.4), (1.3, 0.5), (0.0, 0.8))
        ]
        for seed in seeds:
            q = np.clip(seed, self.joint_lower, self.joint_upper)
            for _ in range(100):
                pos, jac = self._fk(q, with_jacobian=True)
                err = target - pos
                if np.linalg.norm(err) < tol:
                    return q
                dq = _dls_step(jac, err, 1e-3)
                dq *= min(1.0, 0.5 / max(float(np.max(np.abs(dq))), 1e-12))
                q = np.clip(q + dq, self.joint_lower, self.joint_upper)
        return None

    def sample_target(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """EE target drawn uniformly from the workspace (base frame) and verified reachable by IK."""
        rng = self.rng if rng is None else rng
        for _ in range(100):
            xyz = rng.uniform(self.workspace.low, self.workspace.high)
            if self.ik(xyz) is not None:
                return xyz
        raise RuntimeError("could not sample a reachable workspace target in 100 tries")

    # ---------------------------------------------------------------- camera
    def render(self) -> np.ndarray:
        """Camera image of the current state, uint8 (H, W, 3) RGB."""
        return self._render(self.data)

    def render_at(self, joint_positions: Sequence[float], object_xy: Sequence[float] | None = None) -> np.ndarray:
        """Camera image of the arm at ``joint_positions`` (push task: the puck at ``object_xy``, default where it
        is now); the simulation state is not touched."""
        q = self._check_joints(joint_positions, "joint_positions")
        self._scratch.qpos[self._qpos_adr] = q
        if self._object_adr is not None:
            adr = self._object_adr
            if object_xy is None:
                self._scratch.qpos[adr:adr + 7] = self.data.qpos[adr:adr + 7]
            else:
                self._set_object_qpos(self._scratch, _as_vector(object_xy, 2, "object_xy"))
        elif object_xy is not None:
            raise RuntimeError(f"the {self.task!r} task has no object (use task='push')")
        self._scratch.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self._scratch)
        return self._render(self._scratch)

    def render_goal(self, target_xyz: Sequence[float], object_xy: Sequence[float] | None = None) -> np.ndarray:
        """Camera image of the arm with its EE at ``target_xyz`` (base frame) (push task: the puck at
        ``object_xy``, default where it is now); the state is not touched."""
        q = self.ik(target_xyz)
        if q is None:
            raise ValueError(f"target_xyz {np.asarray(target_xyz).tolist()} is not reachable")
        return self.render_at(q, object_xy)

    def camera_info(self) -> dict:
        """Pinhole intrinsics of the camera and its pose.

        Returns a dict with ``K`` (3x3, pixel coordinates with pixel centres at integers), ``width``, ``height``,
        ``frame`` (optical frame name: x right, y down, z forward), ``base_frame`` and ``T_base_camera`` (4x4 pose
        of the optical frame in the base frame).
        """
        size = self.image_size
        fovy = math.radians(float(self.model.cam_fovy[self._cam_id]))
        f = 0.5 * size / math.tan(0.5 * fovy)
        c = (size - 1) / 2.0
        k = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
        cam_rot = self.data.cam_xmat[self._cam_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # -> optical
        t = np.eye(4)
        t[:3, :3] = self._base_rot().T @ cam_rot
        t[:3, 3] = self._to_base(self.data.cam_xpos[self._cam_id])
        return {"K": k, "width": size, "height": size, "frame": frames.SIM_CAMERA_OPTICAL,
                "base_frame": frames.BASE, "T_base_camera": t}

    def project(self, xyz: Sequence[float]) -> np.ndarray:
        """Pixel coordinates (u, v) of a base-frame point in the camera image (NaN if behind the camera)."""
        info = self.camera_info()
        t = info["T_base_camera"]
        p_cam = t[:3, :3].T @ (_as_vector(xyz, 3, "xyz") - t[:3, 3])
        if p_cam[2] <= 0.0:
            return np.full(2, np.nan)
        uvw = info["K"] @ p_cam
        return uvw[:2] / uvw[2]

    def close(self) -> None:
        """Release the renderer (its GL context)."""
        if self._release_renderer is not None:
            self._release_renderer()
        self._renderer = None
        self._release_renderer = None

    def __enter__(self) -> ArmSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- internals
    def _render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            vis = self.model.vis.global_
            vis.offwidth = max(vis.offwidth, self.image_size)
            vis.offheight = max(vis.offheight, self.image_size)
            self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
            # Released when this object goes away or at exit, before the GL library is torn down.
            self._release_renderer = weakref.finalize(self, self._renderer.close)
        self._renderer.update_scene(data, camera=self._cam_id)
        return self._renderer.render()

    def _steps(self, duration: float) -> int:
        return int(round(_as_duration(duration) / self.timestep))

    def _check_joints(self, positions: Sequence[float], name: str) -> np.ndarray:
        q = _as_vector(positions, 3, name)
        bad = (q < self.joint_lower - 1e-9) | (q > self.joint_upper + 1e-9)
        if np.any(bad):
            j = int(np.argmax(bad))
            raise ValueError(
                f"{name}: {JOINT_NAMES[j]}={q[j]:.4f} rad is outside its limits "
                f"[{self.joint_lower[j]:.4f}, {self.joint_upper[j]:.4f}]"
            )
        return np.clip(q, self.joint_lower, self.joint_upper)

    def _base_rot(self) -> np.ndarray:
        return self.data.xmat[self._base_id].reshape(3, 3)

    def _to_base(self, p_world: np.ndarray) -> np.ndarray:
        return self._base_rot().T @ (np.asarray(p_world) - self.data.xpos[self._base_id])

    def _to_world(self, p_base: np.ndarray) -> np.ndarray:
        return self.data.xpos[self._base_id] + self._base_rot() @ p_base

    def _fk(self, q: np.ndarray, with_jacobian: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """EE world position (and 3x3 positional Jacobian) at joint positions ``q``, using the scratch data."""
        s = self._scratch
        s.qpos[self._qpos_adr] = q
        mujoco.mj_kinematics(self.model, s)
        if not with_jacobian:
            return s.site_xpos[self._site_id].copy(), None
        mujoco.mj_comPos(self.model, s)
        jacp = np.empty((3, self.model.nv))
        mujoco.mj_jacSite(self.model, s, jacp, None, self._site_id)
        return s.site_xpos[self._site_id].copy(), jacp[:, self._dof_adr]

    def _update_reference(self) -> None:
        dt = self.timestep
        if self._mode == "twist":
            self._twist_reference(dt)
        elif self._mode == "joint":
            self._joint_reference()
        else:
            self._qd_ref = np.zeros(3)

    def _twist_reference(self, dt: float) -> None:
        """Advance the Cartesian set-point by v*dt and move the joint reference towards it (DLS, limit-aware)."""
        p_des = self._p_des + self._twist * dt
        p_des[2] = max(p_des[2], self._floor_z)
        pos, jac = self._fk(self._q_ref, with_jacobian=True)
        err = p_des - pos
        lag = math.sqrt(float(err @ err))
        if lag > _MAX_TRACKING_LAG:  # blocked (limits, reach): do not let the set-point run away
            err *= _MAX_TRACKING_LAG / lag
            p_des = pos + err
        self._p_des = p_des
        dq = _dls_step(jac, err, _DLS_DAMPING)
        q = self._q_ref
        at_low, at_high = q <= self.joint_lower + 1e-6, q >= self.joint_upper - 1e-6
        free = np.ones(3, dtype=bool)
        while (at_low | at_high).any():  # lock joints a limit would be pushed through, re-solve with the rest
            blocked = free & ((at_low & (dq < 0.0)) | (at_high & (dq > 0.0)))
            if not blocked.any():
                break
            free &= ~blocked
            dq = np.zeros(3)
            if free.any():
                dq[free] = _dls_step(jac[:, free], err, _DLS_DAMPING)
        peak = float(abs(dq).max())
        if peak > MAX_JOINT_SPEED * dt:
            dq *= MAX_JOINT_SPEED * dt / peak
        q_new = np.minimum(np.maximum(q + dq, self.joint_lower), self.joint_upper)
        self._qd_ref = (q_new - q) / dt
        self._q_ref = q_new

    def _joint_reference(self) -> None:
        assert self._motion is not None
        q0, q1, t0, duration = self._motion
        s = min(max((self.time + self.timestep - t0) / duration, 0.0), 1.0)
        blend = s**3 * (10.0 - 15.0 * s + 6.0 * s**2)
        rate = 30.0 * s**2 * (1.0 - s) ** 2 / duration
        self._q_ref = q0 + blend * (q1 - q0)
        self._qd_ref = rate * (q1 - q0)
        if s >= 1.0:
            self.stop()

    def _write_ctrl(self) -> None:
        self.data.ctrl[self._pos_act] = self._q_ref
        self.data.ctrl[self._vel_act] = self._qd_ref

"""FrankaSim on real MuJoCo: scene and camera, twist servo, gripper, V-JEPA 2-AC actions and state, scripted
grasp and pick-and-place."""
import math

import numpy as np
import pytest
import transforms3d.euler as t3d_euler

from jepa_sim.franka_script import LIFT_SUCCESS, PLACE_SUCCESS, RANDOM_STEP, PickPlaceScript, run_episode
from jepa_sim.franka_sim import (CUBE_HALF, CUBE_REGION, EE_MIN_HEIGHT, FINGER_MAX, GRIPPER_SPEED, JOINT_NAMES,
                                 START_REGION, STATE_LABELS, TARGET_REGION, FrankaSim)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def sim():
    s = FrankaSim(image_size=64, seed=0)
    yield s
    s.close()


def _mask(image: np.ndarray, channel: int) -> np.ndarray:
    """Pixels where ``channel`` (0 red: the cube, 1 green: the target) clearly dominates."""
    c = image.astype(int)
    others = [i for i in range(3) if i != channel]
    return (c[..., channel] > 100) & (c[..., channel] - c[..., others].max(axis=-1) > 60)


def test_loads_and_renders(sim):
    sim.reset(seed=3)
    assert sim.joint_names == JOINT_NAMES and len(JOINT_NAMES) == 9
    assert sim.joint_positions_all().shape == (9,) and sim.joint_velocities_all().shape == (9,)
    image = sim.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 20
    assert _mask(image, 0).sum() >= 2, "the red cube is not visible"
    assert _mask(image, 1).sum() >= 2, "the green target is not visible"
    with FrankaSim(image_size=32) as small:
        assert small.render().shape == (32, 32, 3)


def test_reset_is_seeded_and_in_regions(sim):
    sim.reset(seed=5)
    first = (sim.state(), sim.cube_position(), sim.target_position())
    sim.reset(seed=5)
    assert np.allclose(sim.state(), first[0]) and np.allclose(sim.cube_position(), first[1])
    for seed in range(5):
        sim.reset(seed=seed)
        assert START_REGION.contains(sim.ee_position(), tol=1e-3)
        assert CUBE_REGION.contains(sim.cube_position()[:2])
        assert sim.cube_position()[2] == pytest.approx(CUBE_HALF)
        assert TARGET_REGION.contains(sim.target_position()[:2])
        assert abs(abs(sim.state()[3]) - math.pi) < 1e-3 and abs(sim.state()[4]) < 1e-3  # pointing down
        assert sim.gripper_state() == pytest.approx(0.0)


def test_linear_twist_moves_ee(sim):
    sim.reset(seed=1)
    p0, r0 = sim.ee_position(), sim.ee_rotation()
    sim.apply_twist([0.1, 0.0, 0.0], [0.0, 0.0, 0.0], 0.5)
    sim.step(100)  # settle
    d = sim.ee_position() - p0
    assert d[0] == pytest.approx(0.05, abs=0.004)
    assert abs(d[1]) < 0.003 and abs(d[2]) < 0.003
    assert np.allclose(sim.ee_rotation(), r0, atol=0.01)
    sim.apply_twist([0.0, -0.1, 0.05], [0.0, 0.0, 0.0], 0.4)
    sim.step(100)
    assert sim.ee_position() - p0 == pytest.approx([0.05, -0.04, 0.02], abs=0.005)


def test_angular_twist_rotates_ee(sim):
    sim.reset(seed=2)
    p0, e0 = sim.ee_position(), sim.ee_euler()
    sim.apply_twist([0.0, 0.0, 0.0], [0.0, 0.0, 0.5], 0.6)  # about the base z axis
    sim.step(100)
    assert sim.ee_euler()[2] - e0[2] == pytest.approx(0.3, abs=0.02)
    assert np.linalg.norm(sim.ee_position() - p0) < 0.004
    r0 = sim.ee_rotation()
    sim.apply_twist([0.0, 0.0, 0.0], [0.3, 0.0, 0.0], 0.5)  # tilt about base x
    sim.step(100)
    rel = sim.ee_rotation() @ r0.T
    assert math.acos((np.trace(rel) - 1) / 2) == pytest.approx(0.15, abs=0.015)
    assert rel[2, 1] > 0  # a positive rotation about x


def test_apply_action_follows_the_delta(sim):
    sim.reset(seed=4)
    s0 = sim.state()
    action = np.array([0.02, -0.01, 0.015, 0.0, 0.0, 0.1, 0.0])
    sim.apply_action(action)
    sim.step(100)
    s1 = sim.state()
    assert s1[:3] - s0[:3] == pytest.approx(action[:3], abs=0.004)
    assert s1[5] - s0[5] == pytest.approx(0.1, abs=0.015)
    assert s1[6] == pytest.approx(0.0, abs=0.01)


def test_gripper_closes_and_opens_within_limits(sim):
    sim.reset(seed=0, cube_xy=(0.6, 0.15))  # nothing between the fingers
    assert sim.gripper_opening() == pytest.approx(2 * FINGER_MAX, abs=1e-4)
    sim.set_gripper(1.0)
    sim.step(50)  # 0.1 s: the speed limit allows 2 * 8 mm
    assert 2 * FINGER_MAX - sim.gripper_opening() <= 2 * GRIPPER_SPEED * 0.1 + 0.003
    openings = []
    for _ in range(8):
        sim.step(50)
        openings.append(sim.gripper_opening())
    assert sim.gripper_opening() < 0.002 and sim.gripper_state() > 0.97
    sim.apply_action([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
    for _ in range(8):
        sim.step(50)
        openings.append(sim.gripper_opening())
    assert sim.gripper_opening() == pytest.approx(2 * FINGER_MAX, abs=0.002) and sim.gripper_state() < 0.03
    assert all(-1e-3 <= o <= 2 * FINGER_MAX + 1e-3 for o in openings)
    with pytest.raises(ValueError, match="gripper"):
        sim.set_gripper(1.5)


def test_bad_actions_raise(sim):
    sim.reset(seed=0)
    before = sim.state()
    for bad in ([0.0] * 6, [0.0] * 8, [0.0, 0.0, float("nan"), 0, 0, 0, 0], [0, 0, 0, float("inf"), 0, 0, 0]):
        with pytest.raises(ValueError, match="action"):
            sim.apply_action(bad)
    with pytest.raises(ValueError, match="linear"):
        sim.apply_twist([0.0, float("nan"), 0.0], [0.0, 0.0, 0.0], 0.1)
    with pytest.raises(ValueError, match="duration"):
        sim.apply_twist([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], -1.0)
    assert np.array_equal(sim.state(), before)


def test_state_vector_layout(sim):
    sim.reset(seed=6)
    sim.apply_action([0.01, 0.0, 0.0, 0.05, -0.05, 0.2, 0.4])
    state = sim.state()
    assert STATE_LABELS == ("x", "y", "z", "roll", "pitch", "yaw", "gripper") and state.shape == (7,)
    pos, quat = sim.ee_pose()
    assert np.allclose(state[:3], pos)
    assert np.allclose(t3d_euler.euler2quat(*state[3:6], "sxyz"), quat, atol=1e-6) or \
        np.allclose(t3d_euler.euler2quat(*state[3:6], "sxyz"), -quat, atol=1e-6)
    assert state[6] == pytest.approx(sim.gripper_state()) and 0.0 < state[6] < 1.0
    assert sim.gripper_opening() == pytest.approx((1 - state[6]) * 2 * FINGER_MAX)
    names = sim.joint_state()
    assert list(names) == list(JOINT_NAMES)


def test_long_twists_respect_joint_limits_and_the_table(sim):
    sim.reset(seed=0)
    sim.apply_twist([0.3, 0.0, 0.0], [0.0, 0.0, 0.0], 3.0)  # far out of reach
    q = sim.joint_positions()
    assert np.all(np.isfinite(q))
    assert np.all(q >= sim.joint_lower - 0.01) and np.all(q <= sim.joint_upper + 0.01)
    sim.reset(seed=0)
    sim.apply_twist([0.0, 0.0, 0.0], [0.0, 0.0, 3.0], 3.0)  # 9 rad about z: joint 7 runs into its limit
    q = sim.joint_positions()
    assert np.all(q >= sim.joint_lower - 0.01) and np.all(q <= sim.joint_upper + 0.01)
    sim.reset(seed=0, cube_xy=(0.6, 0.15))
    sim.apply_twist([0.0, 0.0, -0.3], [0.0, 0.0, 0.0], 2.0)  # into the table
    assert sim.ee_position()[2] >= EE_MIN_HEIGHT - 0.003


def test_render_state_leaves_the_live_state(sim):
    sim.reset(seed=0)
    live = sim.render()
    qpos, state = sim.data.qpos.copy(), sim.state()
    goal = sim.render_goal([0.5, 0.1, 0.1], gripper=1.0, cube_position=[0.45, -0.1, CUBE_HALF])
    assert goal.shape == live.shape and np.abs(goal.astype(int) - live.astype(int)).mean() > 1.0
    assert np.array_equal(sim.data.qpos, qpos) and np.array_equal(sim.state(), state)
    assert np.array_equal(sim.render(), live)
    assert np.array_equal(sim.render_state(sim.joint_positions()), live)
    with pytest.raises(ValueError, match="outside its limits"):
        sim.render_state([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # joint 4 must be <= -0.4


def test_goal_postures_are_the_ones_the_arm_rests_in():
    """A goal rendered at a pose shows the arm as it stands after driving there (the Franka is redundant: another
    elbow made the frame at the exact goal pose as far from the goal image as one 1 cm off, and the planner chased
    it). Its own sim: driving moves the shared one."""
    with FrankaSim(image_size=64, seed=0) as sim:
        for seed, goal in ((1, (0.45, -0.12, 0.03)), (2, (0.6, 0.15, 0.2))):
            sim.reset(seed=seed, cube_xy=(0.7, 0.3))
            for _ in range(60):  # deltas of at most 2 cm, as plans are
                delta = np.asarray(goal) - sim.ee_position()
                sim.apply_action(np.r_[delta * min(1.0, 0.02 / np.linalg.norm(delta)), 0.0, 0.0, 0.0, 0.0])
            sim.apply_action(np.zeros(7))
            sim.step(1000)   # held for 2 s: the servo's null-space pull settles the elbow
            assert np.linalg.norm(sim.ee_position() - goal) < 1e-3
            rested, euler = sim.joint_positions(), sim.ee_euler()
            assert np.abs(sim.ik(goal, euler) - rested).max() < 0.005
            assert np.abs(sim.render_goal(goal, euler).astype(int) - sim.render().astype(int)).mean() < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scripted_grasp_lifts_the_cube(sim, seed):
    result = run_episode(sim, "grasp", seed=seed)
    assert result.lifted and result.max_cube_lift >= LIFT_SUCCESS
    assert sim.cube_position()[2] >= CUBE_HALF + LIFT_SUCCESS  # still held at the end
    assert sim.gripper_state() > 0.3


@pytest.mark.parametrize("seed", [0, 3])
def test_scripted_pick_place_reaches_the_target(sim, seed):
    result = run_episode(sim, "pick_place", seed=seed, record=True)
    assert result.lifted
    assert result.final_distance <= PLACE_SUCCESS
    assert sim.cube_position()[2] == pytest.approx(CUBE_HALF, abs=0.003)  # released, resting on the table
    assert len(result.actions) == result.steps and all(a.shape == (7,) for a in result.actions)
    assert len(result.states) == result.steps


@pytest.mark.slow
def test_scripted_pick_place_success_rate(sim):
    results = [run_episode(sim, "pick_place", seed=seed) for seed in range(10, 20)]
    assert sum(r.placed for r in results) >= 8, [round(r.final_distance, 3) for r in results]


def test_script_is_noisy_but_closed_loop(sim):
    sim.reset(seed=0)
    a = PickPlaceScript("grasp", rng=np.random.default_rng(1))
    b = PickPlaceScript("grasp", rng=np.random.default_rng(2))
    a.reset(sim)
    b.reset(sim)
    assert not np.allclose(a.act(sim), b.act(sim))
    quiet = PickPlaceScript("grasp", noise=0.0)
    quiet.reset(sim)
    assert quiet.act(sim)[6] == -1.0
    with pytest.raises(ValueError):
        PickPlaceScript("stack")


def test_random_steps_move_and_close_at_random_but_never_open_on_a_held_cube(sim):
    sim.reset(seed=0)
    scripted = PickPlaceScript("grasp", noise=0.0)
    scripted.reset(sim)
    planned = scripted.act(sim)
    wild = PickPlaceScript("grasp", rng=np.random.default_rng(3), noise=0.0, random_prob=1.0)
    wild.reset(sim)
    steps = np.array([wild.act(sim) for _ in range(40)])  # the arm stays put: the same scene, 40 draws
    assert np.abs(steps[:, :3]).max() <= RANDOM_STEP and np.ptp(steps[:, :3], axis=0).min() > RANDOM_STEP
    assert not np.allclose(steps[0, :3], planned[:3])
    assert set(steps[:, 6]) == {-1.0, 1.0}  # closes or opens at random while the script holds the gripper open
    np.testing.assert_allclose(steps[:, 3:6], np.tile(planned[3:6], (40, 1)))  # keeps turning as scripted
    holding = PickPlaceScript("grasp", rng=np.random.default_rng(4), noise=0.0, random_prob=1.0)
    holding.reset(sim)
    holding._phase = holding.phases.index("lift")
    assert all(holding.act(sim)[6] == 1.0 for _ in range(20))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="random_prob"):
            PickPlaceScript("grasp", random_prob=bad)


def test_random_steps_span_the_given_random_step_and_hostile_sizes_are_refused(sim):
    sim.reset(seed=0)
    wide = PickPlaceScript("grasp", rng=np.random.default_rng(3), noise=0.0, random_prob=1.0, random_step=0.075)
    wide.reset(sim)
    steps = np.array([wide.act(sim)[:3] for _ in range(40)])  # the arm stays put: 40 draws in one scene
    assert np.abs(steps).max() <= 0.075 and np.abs(steps).max() > 0.06
    for bad in (0.0, -0.02, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="random_step"):
            PickPlaceScript("grasp", random_step=bad)

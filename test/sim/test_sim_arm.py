"""ArmSim on real MuJoCo: rendering, servo accuracy, IK, workspace, limits, determinism."""
import itertools

import numpy as np
import pytest

from jepa_sim.arm_sim import EE_MIN_HEIGHT, ArmSim


@pytest.fixture(scope="module")
def sim():
    s = ArmSim(image_size=64, seed=0)
    yield s
    s.close()


def _ee_mask(image: np.ndarray) -> np.ndarray:
    """Pixels of the bright orange end-effector sphere."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (r > 150) & (b < 100) & (r - g > 60)


def _workspace_points(sim: ArmSim) -> list:
    corners = [np.array(c) for c in itertools.product(*zip(sim.workspace.low, sim.workspace.high))]
    return [sim.workspace.center] + corners


def test_render_shape_dtype_and_determinism(sim):
    sim.reset()
    image = sim.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 20  # a real scene, not a blank frame
    assert np.array_equal(image, sim.render())
    with ArmSim(image_size=32, seed=0) as small:
        assert small.render().shape == (32, 32, 3)
    with ArmSim(seed=0) as twin:
        assert np.array_equal(twin.render(), image)


def test_ee_mask_matches_camera_projection(sim):
    sim.reset()
    image = sim.render()
    ys, xs = np.nonzero(_ee_mask(image))
    assert len(xs) >= 5
    u, v = sim.project(sim.ee_position())
    assert abs(xs.mean() - u) < 1.5 and abs(ys.mean() - v) < 1.5
    info = sim.camera_info()
    assert info["width"] == info["height"] == 64 and info["frame"]
    assert info["K"][0, 0] == pytest.approx(info["K"][1, 1]) and info["K"][0, 2] == pytest.approx(31.5)


def test_move_ee_by_reaches_commanded_delta(sim):
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(8):
        sim.reset(sim.ik(sim.sample_target(rng)))
        for _ in range(3):
            p0 = sim.ee_position()
            delta = rng.uniform(-0.03, 0.03, 3)
            if not sim.workspace.contains(p0 + delta):
                delta = (sim.workspace.center - p0) * 0.2
            sim.move_ee_by(delta)
            errors.append(np.linalg.norm(sim.ee_position() - p0 - delta))
    assert max(errors) < 0.003, f"tracking errors (m): {np.round(errors, 4)}"
    assert sim.mode == "hold"


def test_apply_twist_moves_along_velocity(sim):
    sim.reset()
    p0 = sim.ee_position()
    sim.apply_twist([0.0, 0.1, 0.0], 0.5)
    moved = sim.ee_position() - p0
    assert moved[1] == pytest.approx(0.05, abs=0.003)
    assert abs(moved[0]) < 0.003 and abs(moved[2]) < 0.003
    # Holding afterwards: the arm stays put.
    p1 = sim.ee_position()
    sim.step(100)
    assert np.linalg.norm(sim.ee_position() - p1) < 0.002


def test_ik_round_trip_and_unreachable(sim):
    rng = np.random.default_rng(2)
    for _ in range(10):
        target = sim.sample_target(rng)
        q = sim.ik(target)
        assert q is not None
        assert np.all(q >= sim.joint_lower) and np.all(q <= sim.joint_upper)
        sim.reset(q)
        assert np.linalg.norm(sim.ee_position() - target) < 1e-3
    assert sim.ik([2.0, 0.0, 0.2]) is None  # beyond the reach
    assert sim.ik([0.3, 0.0, -0.2]) is None  # below the table, outside the elbow-up range


def test_workspace_reachable_and_ee_visible(sim):
    images = []
    for point in _workspace_points(sim):
        assert sim.ik(point) is not None, f"workspace point {point} unreachable"
        u, v = sim.project(point)
        assert 2 <= u <= 61 and 2 <= v <= 61, f"workspace point {point} projects outside the image: {(u, v)}"
        image = sim.render_goal(point)
        ys, xs = np.nonzero(_ee_mask(image))
        assert len(xs) >= 3, f"end-effector not visible at {point}"
        assert abs(xs.mean() - u) < 2.0 and abs(ys.mean() - v) < 2.0
        images.append(image)
    for a, b in itertools.combinations(images, 2):
        assert np.abs(a.astype(int) - b.astype(int)).sum() > 0
    # Moving 2 cm along each axis changes the picture.
    sim.reset()
    base = sim.render()
    for axis in range(3):
        delta = np.zeros(3)
        delta[axis] = 0.02
        sim.reset()
        sim.move_ee_by(delta)
        assert np.abs(sim.render().astype(int) - base.astype(int)).sum() > 500, f"axis {axis}"


def test_sample_target_deterministic_and_inside():
    with ArmSim(seed=5) as a, ArmSim(seed=5) as b, ArmSim(seed=6) as c:
        targets = np.array([a.sample_target() for _ in range(5)])
        assert np.array_equal(targets, np.array([b.sample_target() for _ in range(5)]))
        assert not np.array_equal(targets, np.array([c.sample_target() for _ in range(5)]))
        assert all(a.workspace.contains(t) for t in targets)


def test_render_goal_and_render_at_do_not_disturb_state(sim):
    sim.reset()
    sim.start_twist([0.05, -0.05, 0.02])
    sim.step(50)
    before = (sim.joint_positions(), sim.joint_velocities(), sim.ee_position(), sim.time)
    image = sim.render()
    goal = sim.render_goal(sim.workspace.high)
    sim.render_at(sim.home)
    after = (sim.joint_positions(), sim.joint_velocities(), sim.ee_position(), sim.time)
    for x, y in zip(before, after):
        assert np.array_equal(x, y)
    assert np.array_equal(sim.render(), image)
    assert not np.array_equal(goal, image)
    # The twist continues exactly as it would have without the off-line renders.
    sim.step(50)
    with ArmSim(seed=0) as twin:
        twin.start_twist([0.05, -0.05, 0.02])
        twin.step(100)
        assert np.array_equal(twin.joint_positions(), sim.joint_positions())
    sim.stop()


def test_joint_limits_and_table_respected(sim):
    sim.reset()
    sim.apply_twist([0.5, 0.0, 0.0], 2.0)  # far beyond the reach
    q = sim.joint_positions()
    assert np.all(q >= sim.joint_lower - 0.01) and np.all(q <= sim.joint_upper + 0.01)
    assert np.linalg.norm(sim.ee_position()[:2]) > 0.5  # stretched out towards the target
    sim.reset()
    sim.apply_twist([0.0, 0.0, -0.5], 1.5)  # into the table
    assert sim.ee_position()[2] > EE_MIN_HEIGHT - 0.003
    yaw = -2.5  # near the yaw limit, push tangentially towards it
    sim.reset([yaw, 0.43, 2.04])
    sim.apply_twist(0.2 * np.array([np.sin(yaw), -np.cos(yaw), 0.0]), 1.0)
    q = sim.joint_positions()
    assert q[0] == pytest.approx(sim.joint_lower[0], abs=0.01)
    assert np.all(q >= sim.joint_lower - 0.01) and np.all(q <= sim.joint_upper + 0.01)
    with pytest.raises(ValueError, match="elbow_pitch"):
        sim.set_joint_targets([0.0, 0.5, -0.5], 1.0)


def test_set_joint_targets_and_ee_pose(sim):
    sim.reset()
    target = np.array([0.4, 0.6, 1.5])
    sim.set_joint_targets(target, 0.8)
    assert np.allclose(sim.joint_positions(), target, atol=2e-3)
    assert np.abs(sim.joint_velocities()).max() < 0.05
    pos, quat = sim.ee_pose()
    assert np.allclose(pos, sim.ee_position()) and np.linalg.norm(quat) == pytest.approx(1.0)
    assert sim.joint_names == ("base_yaw", "shoulder_pitch", "elbow_pitch")


def test_bad_inputs_raise_clear_errors(sim):
    with pytest.raises(ValueError, match="delta"):
        sim.move_ee_by([0.01, 0.0])
    with pytest.raises(ValueError, match="linear"):
        sim.apply_twist([np.nan, 0.0, 0.0], 0.1)
    with pytest.raises(ValueError, match="duration"):
        sim.apply_twist([0.0, 0.0, 0.0], -1.0)
    with pytest.raises(ValueError, match="not reachable"):
        sim.render_goal([3.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="image_size"):
        ArmSim(image_size=4)
    with pytest.raises(TypeError, match="image_size"):
        ArmSim(image_size=64.0)


def test_twist_times_out_like_moveit_servo(sim):
    # The rule behind sim_node's command_timeout: a twist not renewed within `timeout` s of simulated time ends,
    # and the arm then stops at once (the tracking lag adds well under a millimetre).
    sim.reset()
    home = sim.ee_position()
    sim.start_twist([0.4, 0.0, 0.0], timeout=0.1)
    sim.step(25)  # 0.05 s
    sim.start_twist([0.4, 0.0, 0.0], timeout=0.1)  # renewed: runs for 0.1 s from here
    sim.step(45)  # 0.09 s
    assert sim.mode == "twist"
    sim.step(10)
    assert sim.mode == "hold"
    at_timeout = sim.ee_position()
    sim.step(250)  # 0.5 s more
    assert np.linalg.norm(sim.ee_position() - at_timeout) < 1e-3
    travelled = sim.ee_position()[0] - home[0]
    assert 0.4 * 0.15 * 0.7 < travelled < 0.4 * 0.15 + 1e-3, travelled  # 0.15 s at (up to) 0.4 m/s
    # Without a timeout the twist runs until stopped; a joint motion is never cut short by an old twist timeout.
    sim.reset()
    sim.start_twist([0.0, 0.1, 0.0])
    sim.step(250)
    assert sim.mode == "twist"
    sim.start_twist([0.0, 0.1, 0.0], timeout=0.01)
    sim.start_joint_motion(sim.home, 0.5)
    sim.step(100)
    assert sim.mode == "joint"
    sim.stop()
    with pytest.raises(ValueError, match="timeout"):
        sim.start_twist([0.1, 0.0, 0.0], timeout=-1.0)

"""The push task of the built-in sim without DDS: the puck's physics, resets, goal scenes, episodes and scripted
pushes (the failure classes are tested with the task definition, test/episodes/test_tasks.py)."""
import numpy as np
import pytest

from jepa_common import topics
from jepa_common.outcomes import SUCCESS
from jepa_episodes.tasks.push import classify
from jepa_sim.arm_sim import OBJECT_AREA, PUCK_HALF_HEIGHT, PUSH_HEIGHT, ArmSim
from jepa_sim.push import (BEHIND, CONTACT, PushTask, ScriptedPusher, goal_images, goal_scene, sample_push_task,
                           start_episode)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim():
    with ArmSim(task="push", seed=3) as s:
        yield s


def push_straight(sim, object_xy, steps=8, delta=(0.015, 0.0, 0.0), ee_y=0.0):
    """Push along +x from BEHIND behind the puck's x, at y = ee_y."""
    start_episode(sim, PushTask(tuple(object_xy), (0.45, object_xy[1]), (object_xy[0] - BEHIND, ee_y, PUSH_HEIGHT)))
    for _ in range(steps):
        sim.move_ee_by(delta)
    return sim.object_pose()


def test_reset_places_the_puck_at_rest_at_the_given_pose(sim):
    sim.reset(object_xy=[0.31, -0.05])
    position, quat = sim.object_pose()
    np.testing.assert_allclose(position, [0.31, -0.05, PUCK_HALF_HEIGHT], atol=1e-9)
    np.testing.assert_allclose(quat, [1, 0, 0, 0], atol=1e-9)
    sim.step(250)  # 0.5 s: resting on the table, it stays put
    np.testing.assert_allclose(sim.object_position(), [0.31, -0.05, PUCK_HALF_HEIGHT], atol=2e-4)


def test_random_reset_is_seeded_inside_the_area_and_clear_of_the_arm():
    placed = []
    for _ in range(2):
        with ArmSim(task="push", seed=11, image_size=16) as s:
            positions = []
            for _ in range(5):
                s.reset()
                positions.append(s.object_position())
                assert OBJECT_AREA.contains(positions[-1], tol=1e-9)
                assert np.linalg.norm(positions[-1][:2] - s.ee_position()[:2]) > CONTACT
            placed.append(np.array(positions))
    np.testing.assert_array_equal(placed[0], placed[1])
    assert len({tuple(p) for p in placed[0].round(6)}) == 5


def test_a_straight_push_moves_the_puck_ahead_and_is_deterministic(sim):
    first, _ = push_straight(sim, [0.30, 0.0])
    second, _ = push_straight(sim, [0.30, 0.0])
    np.testing.assert_array_equal(first, second)
    ee = sim.ee_position()
    assert first[0] - 0.30 > 0.07  # pushed most of the 12 cm
    assert abs(first[1]) < 0.01
    assert np.linalg.norm(first[:2] - ee[:2]) == pytest.approx(CONTACT, abs=0.01)  # still against the EE
    assert first[2] == pytest.approx(PUCK_HALF_HEIGHT, abs=1e-3)  # slid, did not tip or jump


def test_without_contact_the_puck_does_not_move(sim):
    sim.reset(sim.ik([0.20, 0.15, PUSH_HEIGHT]), object_xy=[0.35, -0.10])
    for _ in range(5):
        sim.move_ee_by([0.0, -0.02, 0.0])
    np.testing.assert_allclose(sim.object_position()[:2], [0.35, -0.10], atol=1e-6)


def test_an_off_centre_push_turns_the_puck_aside(sim):
    centred, _ = push_straight(sim, [0.30, 0.0])
    off, _ = push_straight(sim, [0.30, 0.01])
    assert off[1] - 0.01 > 0.001 and off[0] < centred[0]  # quasi-static: aside, but only by millimetres


def test_goal_scenes_render_without_touching_the_state(sim):
    task = PushTask((0.30, 0.02), (0.38, 0.06), (0.20, -0.15, PUSH_HEIGHT))
    start_episode(sim, task)
    before = (sim.ee_position(), sim.object_position(), sim.render())
    behind, target = goal_images(sim, task, 2)
    np.testing.assert_array_equal(sim.ee_position(), before[0])
    np.testing.assert_array_equal(sim.object_position(), before[1])
    np.testing.assert_array_equal(sim.render(), before[2])
    assert not np.array_equal(behind, target) and not np.array_equal(behind, before[2])
    np.testing.assert_array_equal(goal_images(sim, task, 1)[0], target)
    ee, xy = goal_scene(task, "target")
    np.testing.assert_allclose(xy - ee[:2], CONTACT * task.direction)
    ee, xy = goal_scene(task, "behind")
    np.testing.assert_allclose(xy - ee[:2], BEHIND * task.direction)


def test_the_camera_sees_the_puck_move(sim):
    sim.reset(sim.ik([0.20, 0.15, PUSH_HEIGHT]), object_xy=[0.30, -0.05])
    a = sim.render()
    sim.place_object([0.32, -0.05])
    b = sim.render()
    changed = np.any(a != b, axis=2)
    rows, cols = np.nonzero(changed)
    assert changed.sum() >= 4 and np.ptp(rows) < 16 and np.ptp(cols) < 16  # only around the puck
    blue = (b[..., 2] > 150) & (b[..., 0] < 100)
    assert 25 <= blue.sum() <= 80  # 6 cm puck at about 7.8 mm per pixel


def test_sampled_tasks_follow_the_protocol(sim):
    rng = np.random.default_rng(0)
    for _ in range(20):
        task = sample_push_task(sim, rng)
        assert 0.05 <= task.distance <= 0.15
        for xy in (task.object_start, task.target):
            assert OBJECT_AREA.contains([*xy, PUCK_HALF_HEIGHT])
        assert np.linalg.norm(np.subtract(task.ee_start[:2], task.object_start)) >= BEHIND
    again = sample_push_task(sim, np.random.default_rng(0))
    assert again == sample_push_task(sim, np.random.default_rng(0))


def test_the_scripted_pusher_usually_gets_the_puck_there(sim):
    rng = np.random.default_rng(5)
    outcomes, remaining = [], []
    for _ in range(8):
        task = sample_push_task(sim, rng)
        start_episode(sim, task)
        pusher = ScriptedPusher(task, rng, random_prob=0.0, noise=0.001)
        path = [sim.object_position()]
        for _ in range(40):
            sim.move_ee_by(pusher.action(sim.ee_position(), sim.object_position()[:2]))
            path.append(sim.object_position())
        outcomes.append(classify(task, np.array(path)))
        remaining.append(np.linalg.norm(path[-1][:2] - task.target) / task.distance)
    assert max(remaining) < 0.6 and outcomes.count(SUCCESS) >= 3, (outcomes, remaining)


def test_push_api_needs_the_push_task_and_valid_input(sim):
    with ArmSim(image_size=16) as reach:
        with pytest.raises(RuntimeError, match="push"):
            reach.object_pose()
        with pytest.raises(RuntimeError, match="push"):
            reach.render_at(reach.home, object_xy=[0.3, 0.0])
    with pytest.raises(ValueError, match="task"):
        ArmSim(task="stack")
    with pytest.raises(ValueError, match="xy"):
        sim.place_object([0.3, float("nan")])
    with pytest.raises(ValueError, match="object_xy"):
        sim.reset(object_xy=[0.3])


def test_push_recordings_hold_the_puck_pose_and_train_on_the_end_effector_state(tmp_path):
    from mcap.reader import make_reader

    from jepa_world_model.data.dataset import read_episode
    from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes

    config = SimRecordingConfig(task="push", max_step=0.02)
    path = record_sim_episodes(tmp_path, episodes=1, steps=12, seed=4, config=config)[0]
    again = record_sim_episodes(tmp_path / "again", episodes=1, steps=12, seed=4, config=config)[0]
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    channel_topics = {c.id: c.topic for c in summary.channels.values()}
    counts = {channel_topics[k]: v for k, v in summary.statistics.channel_message_counts.items()}
    assert counts[topics.OBJECT_POSE] == counts[topics.CAMERA] == 13
    episode = read_episode(path)
    assert episode.state_topic == topics.EE_POSE and len(episode) == 13
    assert episode.frames.shape[1:] == (64, 64, 3)
    np.testing.assert_array_equal(episode.frames, read_episode(again).frames)  # deterministic for the seed
    assert np.all(np.abs(np.diff(episode.states[:, :2], axis=0)) <= 0.02 + 2e-3)

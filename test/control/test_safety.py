"""safety.py: each piece on its own, then composed."""
import math

import numpy as np
import pytest

from jepa_control.safety import (BoxLimit, EStop, RateLimiter, SafetyConfigError, SafetyFilter, Watchdog,
                                 braking_speed, limit_vector)


def test_limit_vector_per_axis_then_norm():
    np.testing.assert_allclose(limit_vector([0.3, -0.3, 0.05], per_axis=0.1), [0.1, -0.1, 0.05])
    v = limit_vector([3.0, 4.0, 0.0], norm=1.0)
    np.testing.assert_allclose(v, [0.6, 0.8, 0.0])
    v = limit_vector([0.3, 0.0, 0.4], per_axis=[0.2, 1.0, 1.0], norm=0.25)
    assert np.linalg.norm(v) == pytest.approx(0.25)
    assert v[0] / v[2] == pytest.approx(0.2 / 0.4)   # direction after the per-axis clip is kept
    np.testing.assert_array_equal(limit_vector([0.01, 0.02]), [0.01, 0.02])  # no limits: unchanged
    np.testing.assert_array_equal(limit_vector([math.nan, math.inf, 0.5], per_axis=1.0), [0.0, 0.0, 0.5])


def test_box_clips_motion_at_the_faces():
    box = BoxLimit([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    # 0.1 s at 2 m/s would reach x = 1.1: shortened to stop on the face; other axes untouched.
    v = box.filter([0.9, 0.5, 0.5], np.array([2.0, 1.0, -1.0]), dt=0.1)
    np.testing.assert_allclose(v, [1.0, 1.0, -1.0])
    np.testing.assert_allclose(box.filter([1.0, 0.5, 0.0], np.array([0.5, 0.0, -0.5]), 0.1), [0.0, 0.0, 0.0])
    assert box.contains([1.0, 0.0, 0.5]) and not box.contains([1.0001, 0.0, 0.5])


def test_box_from_outside_only_allows_motion_back():
    box = BoxLimit([0.0, 0.0], [1.0, 1.0])
    # x above the box: moving further out is cut, moving back is allowed; y below: same the other way.
    np.testing.assert_allclose(box.filter([1.2, -0.1], np.array([0.5, -0.5]), 0.1), [0.0, 0.0])
    np.testing.assert_allclose(box.filter([1.2, -0.1], np.array([-0.5, 0.5]), 0.1), [-0.5, 0.5])
    # Moving back may not overshoot the far face.
    np.testing.assert_allclose(box.filter([-0.5, 0.5], np.array([20.0, 0.0]), 0.1), [15.0, 0.0])


def test_box_rejects_bad_settings():
    with pytest.raises(SafetyConfigError, match=r"low > high on axes 1 \(2 > 1\)"):
        BoxLimit([0, 2], [1, 1])
    with pytest.raises(SafetyConfigError, match="box high must have 2 values"):
        BoxLimit([0, 0], [1, 1, 1])
    with pytest.raises(SafetyConfigError, match="dt"):
        BoxLimit([0], [1]).filter([0.5], np.array([1.0]), 0.0)


def test_braking_speed_stops_within_the_distance_at_the_deceleration_limit():
    def travel(v: float, accel: float, dt: float) -> float:
        total = 0.0
        while v > 0:
            total, v = total + v * dt, v - accel * dt
        return total

    rng = np.random.default_rng(0)
    for distance, accel, dt in zip(rng.uniform(0, 0.3, 300), rng.uniform(0.5, 20, 300),
                                   rng.choice([0.01, 0.05, 0.1], 300)):
        v = float(braking_speed(distance, accel, dt))
        assert travel(v, accel, dt) <= distance + 1e-12 < travel(v * 1.001 + 1e-9, accel, dt) + 1e-12
    np.testing.assert_allclose(braking_speed([0.0, -1.0, 0.01], 5.0, 0.05), [0.0, 0.0, 0.2])  # D/dt below a*dt
    np.testing.assert_allclose(braking_speed(0.0125, 5.0, 0.05), 0.25)     # 0.25 then 0: 0.0125 m
    np.testing.assert_allclose(braking_speed(0.05, 5.0, 0.05), 0.5 + 1 / 12)  # 0.583, 0.333, 0.083


def test_box_with_an_acceleration_limit_brakes_in_time():
    box = BoxLimit([0.0], [1.0])
    # 2.5 cm before the face at 5 m/s^2 and 20 Hz: 0.5 m/s is the most that still stops on it (0.5, 0.25, 0).
    np.testing.assert_allclose(box.filter([0.9625], np.array([2.0]), 0.05, max_accel=5.0), [0.5])
    np.testing.assert_allclose(box.filter([0.9625], np.array([-2.0]), 0.05, max_accel=5.0), [-2.0])
    safety = SafetyFilter(1, box=box, max_accel=5.0)   # plans its braking at BOX_BRAKING * 5 m/s^2
    position, speeds = np.array([0.8]), []
    for k in range(40):
        v = safety.apply([0.5], 0.05, position)
        speeds.append(float(v[0]))
        # the measured position jumps ahead by 4 mm every third period (state jitter): still within the limit
        position = position + v * 0.05 + (0.004 if k % 3 == 2 and v[0] > 0.1 else 0.0)
    assert position[0] <= 1.0 + 1e-12 and position[0] == pytest.approx(1.0, abs=1e-9)
    assert np.abs(np.diff([0.0] + speeds)).max() <= 0.25 + 1e-12        # slowing down obeys the limit too


def test_rate_limiter_ramps_and_resets():
    limiter = RateLimiter(max_accel=2.0, dim=2)  # 0.1 per 0.05 s period
    outputs = [limiter.step(np.array([0.25, -0.05]), 0.05) for _ in range(4)]
    np.testing.assert_allclose(outputs, [[0.1, -0.05], [0.2, -0.05], [0.25, -0.05], [0.25, -0.05]])
    np.testing.assert_allclose(limiter.step(np.zeros(2), 0.05), [0.15, 0.0])
    limiter.reset()
    np.testing.assert_allclose(limiter.step(np.array([1.0, 1.0]), 0.05), [0.1, 0.1])


def test_safety_filter_composes_limits_box_and_rate():
    safety = SafetyFilter(3, max_speed=0.5, max_norm=0.6, box=BoxLimit([0, 0, 0], [1, 1, 1]), max_accel=4.0)
    position = np.array([0.5, 0.5, 0.98])
    v = safety.apply([2.0, 0.0, 1.0], dt=0.05, position=position)
    # per-axis 0.5 -> [0.5, 0, 0.5]; norm fine; box: z may move 0.02 m in 0.05 s = 0.4 m/s; rate: 0.2 per period.
    np.testing.assert_allclose(v, [0.2, 0.0, 0.2])
    for _ in range(10):
        v = safety.apply([2.0, 0.0, 1.0], dt=0.05, position=position)
    # norm 0.6 scales [0.5, 0, 0.5] to 0.6/sqrt(2) per axis, then the box cuts z to what braking at half the
    # acceleration limit (2 m/s^2) still stops within 0.02 m (0.233, 0.133, 0.033 m/s).
    np.testing.assert_allclose(v, [0.6 / math.sqrt(2), 0.0, 0.7 / 3])
    # The box wins over the rate limiter's lag: at the face the z velocity is zero at once.
    v = safety.apply([2.0, 0.0, 1.0], dt=0.05, position=[0.5, 0.5, 1.0])
    assert v[2] == 0.0 and v[0] == pytest.approx(0.6 / math.sqrt(2))
    np.testing.assert_array_equal(safety.stop(), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(safety.apply([2.0, 0.0, 0.0], 0.05, position), [0.2, 0.0, 0.0])  # ramps again
    with pytest.raises(SafetyConfigError, match="needs the current position"):
        safety.apply([0, 0, 0], 0.05)
    with pytest.raises(SafetyConfigError, match="2 axes, expected 3"):
        safety.apply([0, 0], 0.05, position)
    with pytest.raises(SafetyConfigError, match="box has 3 axes"):
        SafetyFilter(2, box=BoxLimit([0, 0, 0], [1, 1, 1]))


def test_safety_filter_without_box_or_rate():
    safety = SafetyFilter(2, max_norm=1.0)
    np.testing.assert_allclose(safety.apply([3.0, 4.0], 0.1), [0.6, 0.8])


def test_watchdog_judges_stamps_and_no_single_message_holds_it_off():
    dog = Watchdog(0.5, max_future=0.1)
    assert dog.expired(100.0) and dog.age(100.0) == math.inf   # never fed
    assert dog.feed(10.0, 10.0)
    assert not dog.expired(10.5) and dog.expired(10.5001)
    assert not dog.feed(3610.0, 10.1) and not dog.feed(math.nan, 10.1)  # an hour ahead: refused
    assert dog.expired(10.5001)
    assert dog.feed(10.15, 10.1)                               # a little ahead: counts at its receipt
    assert dog.age(10.1) == 0.0
    assert dog.feed(9.0, 10.2)                                 # the latest input counts, even an older one
    assert dog.age(10.2) == pytest.approx(1.2) and dog.expired(10.2)
    dog.reset()
    assert dog.expired(10.0)
    with pytest.raises(SafetyConfigError, match="timeout"):
        Watchdog(0.0)
    with pytest.raises(SafetyConfigError, match="max_future"):
        Watchdog(1.0, max_future=-1.0)


def test_estop_latches_until_cleared():
    estop = EStop()
    assert not estop.engaged
    estop.engage("button")
    estop.engage("topic")
    assert estop.engaged and estop.reason == "button"
    estop.clear()
    assert not estop.engaged and estop.reason == ""

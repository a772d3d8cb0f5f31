"""CEM planner on analytic latent dynamics with known optima, bounds, determinism and failure handling."""
import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from jepa_planner.action_space import ActionSpaceError
from jepa_planner.cem import (CEMConfig, CEMConfigError, CEMPlanner, PlannerInputError, coloured_noise,
                              shift_warm_start)
from jepa_planner.energy import l1_energy, raw_l1_energy
from jepa_planner.reference import reference_cem

N, D = 4, 6


class LinearLatentModel:
    """z_{t+1} = z_t + B a_t in a flattened (N*D) feature space; the last context frame is z_0."""

    def __init__(self, action_dim: int = 3, max_horizon: int = 8, axis_aligned: bool = False, seed: int = 0):
        self.max_horizon = max_horizon
        if axis_aligned:  # each action dim moves its own block of features: energies separate per axis
            self.b = torch.zeros(action_dim, N * D)
            block = N * D // action_dim
            for i in range(action_dim):
                self.b[i, i * block:(i + 1) * block] = 1.0
        else:
            self.b = torch.randn(action_dim, N * D, generator=torch.Generator().manual_seed(seed))
        self.batch_sizes: list[int] = []

    def rollout(self, context, state, actions):
        self.batch_sizes.append(actions.shape[0])
        z0 = context[:, -1].reshape(1, 1, N * D)
        z = z0 + actions.cumsum(dim=1) @ self.b
        return z.reshape(actions.shape[0], actions.shape[1], N, D)


class NaNWhereModel(LinearLatentModel):
    """Returns NaN features for every sample whose first action dim is above `threshold`."""

    def __init__(self, threshold: float, **kw):
        super().__init__(**kw)
        self.threshold = threshold

    def rollout(self, context, state, actions):
        z = super().rollout(context, state, actions)
        bad = (actions[:, :, 0] > self.threshold).any(dim=1)
        return z.masked_fill(bad[:, None, None, None], float("nan"))


def quadratic_energy(pred, goal):
    return (pred - goal).square().mean(dim=(1, 2))


def _problem(model, actions):
    context = torch.randn(1, 2, N, D, generator=torch.Generator().manual_seed(5))
    state = torch.zeros(1, 2, 3)
    goal = model.rollout(context, state, torch.as_tensor(actions, dtype=torch.float32)[None])[0, -1]
    model.batch_sizes.clear()
    return context, state, goal


BOX = dict(low=[-0.05] * 3, high=[0.05] * 3)


@pytest.mark.parametrize("energy", [raw_l1_energy, quadratic_energy])
def test_reaches_known_optimum_horizon_one(energy):
    model = LinearLatentModel()
    a_star = [0.02, -0.03, 0.01]
    context, state, goal = _problem(model, [a_star])
    planner = CEMPlanner(model, energy, CEMConfig(**BOX, samples=200, iterations=15, elites=10, keep_elites=5,
                                                  early_stop_patience=0))
    r = planner.plan(context, state, goal)
    assert r.ok and r.reason == ""
    assert torch.allclose(r.actions[0], torch.tensor(a_star), atol=2e-3), r.actions
    assert r.energy < 0.01 and r.iterations_run == 15 and r.time_ms > 0
    assert r.actions.shape == (1, 3) and r.step_energies.shape == (1,) and r.predictions.shape == (1, N, D)
    assert math.isclose(float(r.step_energies[-1]), r.energy, rel_tol=1e-4, abs_tol=1e-7)
    # The returned predictions are the model's rollout of the returned actions.
    assert torch.allclose(r.predictions, model.rollout(context, state, r.actions[None])[0], atol=1e-5)


def test_all_steps_mode_reaches_goal_first_then_holds():
    model = LinearLatentModel(axis_aligned=True)
    a_star = [0.03, -0.02, 0.04]
    context, state, goal = _problem(model, [a_star])
    cfg = CEMConfig(**BOX, horizon=3, samples=300, iterations=20, elites=10, energy_mode="all", keep_elites=10,
                    noise_beta=1.0)
    r = CEMPlanner(model, quadratic_energy, cfg).plan(context, state, goal)
    assert torch.allclose(r.actions[0], torch.tensor(a_star), atol=4e-3), r.actions
    assert r.actions[1:].abs().max() < 5e-3
    assert math.isclose(r.energy, float(r.step_energies.mean()), rel_tol=1e-4, abs_tol=1e-8)


def test_box_and_l1_ball_hold_at_the_constrained_optimum():
    model = LinearLatentModel(axis_aligned=True)
    context, state, goal = _problem(model, [[0.1, 0.05, 0.0]])
    cfg = CEMConfig(low=[-0.1] * 3, high=[0.1] * 3, l1_radius=0.075, samples=300, iterations=20, elites=10,
                    keep_elites=5)
    r = CEMPlanner(model, quadratic_energy, cfg).plan(context, state, goal)
    # Quadratic energy in an axis-aligned feature space: optimum = Euclidean projection onto the ball.
    assert torch.allclose(r.actions[0], torch.tensor([0.0625, 0.0125, 0.0]), atol=3e-3), r.actions
    assert cfg.constraints.violation(r.actions) <= 1e-6

    # A goal outside the box: the plan sits on the box face and never leaves it.
    context, state, goal = _problem(model, [[0.2, -0.2, 0.01]])
    cfg = CEMConfig(**BOX, samples=200, iterations=15, early_stop_patience=0)
    r = CEMPlanner(model, quadratic_energy, cfg).plan(context, state, goal)
    assert torch.allclose(r.actions[0], torch.tensor([0.05, -0.05, 0.01]), atol=2e-3), r.actions
    assert r.actions.abs().max() <= 0.05


def test_fixed_dims_and_gripper_are_respected_in_every_rollout():
    model = LinearLatentModel(action_dim=4)
    seen = []
    inner = model.rollout

    def recording_rollout(context, state, actions):
        seen.append(actions.clone())
        return inner(context, state, actions)

    model.rollout = recording_rollout
    context, state, goal = _problem(model, [[0.02, 0.02, 0.01, 0.3]])
    cfg = CEMConfig(low=[-0.05, -0.05, -0.05, -1.0], high=[0.05, 0.05, 0.05, 1.0], fixed_dims={2: 0.01},
                    gripper_dim=3, gripper_threshold=0.1, samples=100, iterations=10)
    r = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    tried = torch.cat(seen)
    assert (tried[..., 2] == 0.01).all()
    grip = tried[..., 3]
    assert ((grip == 0) | (grip.abs() >= 0.1)).all() and (grip == 0).any()
    assert cfg.constraints.violation(tried) == 0.0
    assert torch.allclose(r.actions[0], torch.tensor([0.02, 0.02, 0.01, 0.3]), atol=5e-3), r.actions


def test_deterministic_for_a_seed_and_reset_restarts_the_stream():
    model = LinearLatentModel()
    context, state, goal = _problem(model, [[0.01, 0.01, -0.02], [0.0, 0.02, 0.0]])
    cfg = CEMConfig(**BOX, horizon=2, samples=64, iterations=4, noise_beta=2.0, keep_elites=2, seed=7)
    p1, p2 = CEMPlanner(model, l1_energy, cfg), CEMPlanner(model, l1_energy, cfg)
    r1, r2 = p1.plan(context, state, goal), p2.plan(context, state, goal)
    assert torch.equal(r1.actions, r2.actions) and r1.energy == r2.energy
    again = p1.plan(context, state, goal)
    assert not torch.equal(again.actions, r1.actions)  # the stream continues ...
    p1.reset()
    assert torch.equal(p1.plan(context, state, goal).actions, r1.actions)  # ... until reset
    other = CEMPlanner(model, l1_energy, CEMConfig(**BOX, horizon=2, samples=64, iterations=4, seed=8))
    assert not torch.equal(other.plan(context, state, goal).actions, r1.actions)


def test_elite_reuse_skips_reevaluation_and_early_exit_stops():
    model = LinearLatentModel()
    context, state, goal = _problem(model, [[0.02, -0.01, 0.0]])
    cfg = CEMConfig(**BOX, samples=100, iterations=60, elites=10, keep_elites=8, early_stop_patience=3,
                    early_stop_rtol=1e-2, final_mean=True)
    r = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    # First population, then 92 new samples + 8 kept elites per iteration, then the final mean alone.
    assert model.batch_sizes[0] == 100 and set(model.batch_sizes[1:-1]) == {92} and model.batch_sizes[-1] == 1
    assert r.iterations_run == len(model.batch_sizes) - 1 < 60
    assert r.evaluations == sum(model.batch_sizes)  # horizon 1: one predicted frame per evaluated sequence
    model.batch_sizes.clear()   # without the final mean: the last call is a full population
    CEMPlanner(model, raw_l1_energy, dataclasses.replace(cfg, final_mean=False)).plan(context, state, goal)
    assert model.batch_sizes[-1] == 92
    assert torch.allclose(r.actions[0], torch.tensor([0.02, -0.01, 0.0]), atol=3e-3)


def test_warm_start_and_shift():
    model = LinearLatentModel()
    a_star = torch.tensor([[0.02, -0.03, 0.01], [0.01, 0.0, 0.0]])
    context, state, goal = _problem(model, a_star)
    cfg = CEMConfig(**BOX, horizon=2, samples=32, iterations=1, init_std=0.005)
    cold = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    warm = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal, warm_start=a_star)
    assert warm.energy < 0.5 * cold.energy
    shifted = shift_warm_start(a_star)
    assert torch.equal(shifted, torch.tensor([[0.01, 0.0, 0.0], [0.01, 0.0, 0.0]]))
    assert torch.equal(shift_warm_start(a_star, fill="zero")[1], torch.zeros(3))
    with pytest.raises(PlannerInputError, match="fill"):
        shift_warm_start(a_star, fill="mean")
    warm.actions.add_(1.0)  # results are ordinary tensors, usable outside inference mode


class RecordingModel(LinearLatentModel):
    """Keeps every evaluated action sequence."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: list[torch.Tensor] = []

    def rollout(self, context, state, actions):
        self.seen.append(actions.clone())
        return super().rollout(context, state, actions)


def test_warm_std_narrows_only_a_warm_started_search():
    model = RecordingModel()
    context, state, goal = _problem(model, [[0.02, -0.01, 0.0]])
    cfg = CEMConfig(**BOX, samples=64, iterations=1, warm_std=0.1, include_mean=False)
    warm = torch.tensor([[0.01, 0.0, 0.0]])
    CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal, warm_start=warm)
    spread = (model.seen[-1][:, 0] - warm).abs().max()
    assert 0 < spread <= 4 * 0.1 * 0.05  # within 4 sigma of a std of a tenth of init_std (half the box width)
    CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)  # a cold start searches the whole box
    assert (model.seen[-1][:, 0] - warm).abs().max() > 0.02
    with pytest.raises(CEMConfigError, match="warm_std"):
        CEMConfig(**BOX, warm_std=0.0)


def test_include_neutral_lets_holding_still_win_over_a_warm_start_that_overshoots():
    model = RecordingModel()
    context, state, goal = _problem(model, [[0.0, 0.0, 0.0]])  # the goal is where the arm is: stay
    overshoot = torch.tensor([[0.04, -0.04, 0.03]])  # the previous plan's move, kept as the warm start
    cfg = CEMConfig(**BOX, samples=8, iterations=2, init_std=0.005)
    plain = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal, warm_start=overshoot)
    assert plain.actions.abs().max() > 0.02  # the narrow search stays around the old move
    held = CEMPlanner(model, raw_l1_energy, dataclasses.replace(cfg, include_neutral=True)).plan(
        context, state, goal, warm_start=overshoot)
    assert torch.equal(model.seen[-2][-1], torch.zeros(1, 3))  # the first iteration's last sample: do nothing
    assert torch.equal(held.actions, torch.zeros(1, 3)) and held.energy < plain.energy
    fixed = CEMConfig(low=[-0.05, -0.05, 0.01], high=[0.05, 0.05, 0.05], samples=2, elites=1,
                      iterations=1, include_neutral=True)
    CEMPlanner(model, raw_l1_energy, fixed).plan(context, state, goal)
    assert torch.equal(model.seen[-1][-1], torch.tensor([[0.0, 0.0, 0.01]]))  # the feasible action closest to zero


def test_action_cost_prices_motion_on_the_searched_dims_but_not_the_gripper():
    model = RecordingModel(action_dim=4, axis_aligned=True)
    context, state, goal = _problem(model, [[0.03, 0.0, 0.0, 0.5]])  # the goal lies 3 cm along x, gripper +0.5
    box = dict(low=[-0.05, -0.05, -0.05, -1.0], high=[0.05, 0.05, 0.05, 1.0])
    cfg = CEMConfig(**box, samples=64, iterations=6, gripper_dim=3, include_neutral=True)
    free = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    assert free.actions[0, 0] > 0.02
    # each metre of x lowers the energy by 0.25 (a block of 6 of the 24 features moves with it): a price of 1 per
    # metre outweighs it, so the plan holds x still, while the unpriced gripper still goes to the goal's +0.5
    priced = CEMPlanner(model, raw_l1_energy, dataclasses.replace(cfg, action_cost=1.0)).plan(context, state, goal)
    assert priced.actions[0, :3].abs().max() < 0.005 and abs(float(priced.actions[0, 3]) - 0.5) < 0.1
    unpriced = raw_l1_energy(model.rollout(context, state, priced.actions[None])[:, -1], goal)
    assert priced.energy == pytest.approx(float(unpriced) + float(priced.actions[0, :3].abs().sum()), rel=1e-4)


def test_quasi_random_samples_cover_the_box_evenly_and_find_the_optimum():
    model = RecordingModel(axis_aligned=True)
    a_star = [0.02, -0.03, 0.01]
    context, state, goal = _problem(model, [a_star])
    cfg = CEMConfig(**BOX, samples=16, iterations=8, elites=4, quasi_random=True, include_mean=False,
                    early_stop_patience=0)
    first = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    population = model.seen[1][:, 0]  # seen[0] is the goal's rollout
    # 16 scrambled Sobol points put samples on both sides of the mean on every axis, 8 and 8 on each
    assert ((population > 0).sum(dim=0) == 8).all()
    assert torch.allclose(first.actions[0], torch.tensor(a_star), atol=5e-3)
    again = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    assert torch.equal(first.actions, again.actions)  # deterministic for a seed


def test_nan_energies_rank_last_and_all_nan_gives_invalid_result():
    model = NaNWhereModel(threshold=0.0)
    context, state, goal = _problem(model, [[-0.02, 0.01, 0.0]])
    cfg = CEMConfig(**BOX, samples=100, iterations=10, keep_elites=3)
    r = CEMPlanner(model, raw_l1_energy, cfg).plan(context, state, goal)
    assert r.ok and math.isfinite(r.energy) and r.actions[0, 0] <= 0.0
    assert torch.allclose(r.actions[0], torch.tensor([-0.02, 0.01, 0.0]), atol=3e-3)

    all_nan = NaNWhereModel(threshold=-1.0)  # every action is above -1
    r = CEMPlanner(all_nan, raw_l1_energy, cfg).plan(context, state, goal)
    assert not r.ok and "non-finite" in r.reason and r.iterations_run == 1
    assert r.energy == math.inf and torch.equal(r.actions, torch.zeros(1, 3)) and r.predictions is None


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(samples=0), CEMConfigError, "samples must be an int >= 1, got 0"),
    (dict(samples=5, elites=10), CEMConfigError, r"elites \(10\) must not exceed samples \(5\)"),
    (dict(low=[0.1, 0, 0]), ActionSpaceError, "low > high on dims 0"),
    (dict(high=[0.05, float("nan"), 0.05]), ActionSpaceError, "high contains NaN"),
    (dict(keep_elites=11), CEMConfigError, "keep_elites"),
    (dict(momentum_mean=1.0), CEMConfigError, "momentum_mean"),
    (dict(action_cost=-0.1), CEMConfigError, "action_cost must be finite and >= 0"),
    (dict(action_cost=float("nan")), CEMConfigError, "action_cost must be finite and >= 0"),
    (dict(energy_mode="sum"), CEMConfigError, "energy_mode"),
    (dict(init_std=[0.1, 0.1]), CEMConfigError, "init_std has 2 values"),
    (dict(iterations=2.5), CEMConfigError, "iterations must be an int"),
])
def test_bad_config_raises_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        CEMConfig(**{**BOX, **kwargs})


def test_bad_model_and_inputs_raise_clear_errors():
    model = LinearLatentModel(max_horizon=4)
    with pytest.raises(CEMConfigError, match=r"horizon \(5\) is longer than model.max_horizon \(4\)"):
        CEMPlanner(model, l1_energy, CEMConfig(**BOX, horizon=5))
    with pytest.raises(TypeError, match="rollout"):
        CEMPlanner(object(), l1_energy, CEMConfig(**BOX))
    planner = CEMPlanner(model, l1_energy, CEMConfig(**BOX, horizon=2, samples=16, elites=4))
    context, state, goal = _problem(model, [[0.0] * 3])
    with pytest.raises(PlannerInputError, match="context must have 4 dims"):
        planner.plan(context[0], state, goal)
    with pytest.raises(PlannerInputError, match="goal must be"):
        planner.plan(context, state, goal[:2])
    with pytest.raises(PlannerInputError, match="warm_start must be a tensor of shape"):
        planner.plan(context, state, goal, warm_start=torch.zeros(3, 3))
    with pytest.raises(PlannerInputError, match="context contains NaN"):
        planner.plan(context.clone().fill_(float("nan")), state, goal)


def test_coloured_noise_is_unit_variance_and_correlated():
    g = torch.Generator().manual_seed(0)
    for horizon in (3, 8, 16):
        x = coloured_noise(20000, horizon, 2, beta=2.0, generator=g)
        assert x.shape == (20000, horizon, 2)
        assert torch.allclose(x.var(dim=0), torch.ones(horizon, 2), atol=0.06)
        lag1 = (x[:, 1:] * x[:, :-1]).mean()
        assert lag1 > 0.45 if horizon >= 8 else abs(lag1) < 0.03  # short horizons have no low band
    white = coloured_noise(20000, 16, 2, beta=0.0, generator=g)
    assert (white[:, 1:] * white[:, :-1]).mean().abs() < 0.03


def test_reference_cem_solves_the_same_problem():
    model = LinearLatentModel()
    context, state, goal = _problem(model, [[0.02, -0.03, 0.01]])
    a = reference_cem(model, context, state, goal, **BOX, samples=200, iterations=15, energy=raw_l1_energy,
                      generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, 3)
    assert torch.allclose(a[0], torch.tensor([0.02, -0.03, 0.01]), atol=3e-3)


def test_chunked_rollouts_give_the_same_plan():
    model = LinearLatentModel()
    context, state, goal = _problem(model, [[0.02, -0.03, 0.01]])
    kw = dict(**BOX, samples=100, iterations=3, keep_elites=4, early_stop_patience=0, seed=3,
              final_mean=True)
    whole = CEMPlanner(model, raw_l1_energy, CEMConfig(**kw, rollout_batch=100)).plan(context, state, goal)
    assert model.batch_sizes == [100, 96, 96, 1]
    model.batch_sizes.clear()
    chunked = CEMPlanner(model, raw_l1_energy, CEMConfig(**kw, rollout_batch=30)).plan(context, state, goal)
    assert model.batch_sizes == [30, 30, 30, 10, 30, 30, 30, 6, 30, 30, 30, 6, 1]
    assert torch.equal(whole.actions, chunked.actions) and whole.energy == chunked.energy


class PreparingModel(LinearLatentModel):
    """Offers `prepare_context` (as ACPredictor does): prepared rollouts give the same predictions."""

    def __init__(self, preferred_batch=None, **kw):
        super().__init__(**kw)
        self.preferred_batch = preferred_batch
        self.prepared = 0

    def prepare_context(self, context, state):
        self.prepared += 1
        return _Prepared(self, context, state)


class _Prepared:
    def __init__(self, model, context, state):
        self.model, self.context, self.state = model, context, state
        self.preferred_batch = model.preferred_batch

    def rollout(self, actions):
        return self.model.rollout(self.context, self.state, actions)


def test_prepared_context_is_used_once_per_plan_with_the_preferred_batch():
    plain, prepared = LinearLatentModel(), PreparingModel(preferred_batch=40)
    context, state, goal = _problem(plain, [[0.02, -0.03, 0.01]])
    cfg = CEMConfig(**BOX, samples=100, iterations=3, keep_elites=4, early_stop_patience=0, seed=3)
    expected = CEMPlanner(plain, raw_l1_energy, cfg).plan(context, state, goal)
    planner = CEMPlanner(prepared, raw_l1_energy, cfg)
    r = planner.plan(context, state, goal)
    assert prepared.prepared == 1
    assert prepared.batch_sizes == [40, 40, 20, 40, 40, 16, 40, 40, 16]
    assert torch.equal(r.actions, expected.actions) and r.energy == expected.energy
    planner.plan(context, state, goal)
    assert prepared.prepared == 2
    # an explicit rollout_batch wins over the model's preference
    prepared.batch_sizes.clear()
    CEMPlanner(prepared, raw_l1_energy, CEMConfig(**BOX, samples=100, iterations=1, rollout_batch=60)).plan(
        context, state, goal)
    assert prepared.batch_sizes == [60, 40]


def test_importing_the_package_does_not_import_torch():
    code = ("import sys, jepa_planner, jepa_control.safety; assert 'torch' not in sys.modules; "
            "from jepa_planner import CEMPlanner, l1_energy; assert 'torch' in sys.modules; "
            "assert set(jepa_planner.__all__) <= set(dir(jepa_planner))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_closest_ranks_a_held_action_by_the_frame_nearest_the_goal():
    from jepa_planner.held_actions import HeldActions

    model = LinearLatentModel(axis_aligned=True)
    context, state, goal = _problem(model, [[0.02, 0.0, 0.0]])   # one 2 cm step away; the box allows 5 cm
    held = HeldActions(model, 4)
    fast = dict(**BOX, samples=200, iterations=12, elites=10, early_stop_patience=0)
    final = CEMPlanner(held, raw_l1_energy, CEMConfig(**fast)).plan(context, state, goal)
    closest = CEMPlanner(held, raw_l1_energy, CEMConfig(**fast, energy_mode="closest")).plan(context, state, goal)
    # "final" must end the 4-step hold on the goal: a quarter of the step; "closest" may pass the goal on the way
    assert abs(float(final.actions[0, 0]) - 0.005) < 1e-3
    frames = held.rollout(context, state, closest.actions[None])[0]
    energies = raw_l1_energy(frames, goal)
    assert closest.energy == pytest.approx(float(energies.min()), rel=1e-4, abs=1e-6) and closest.energy < 2e-3
    assert float(closest.actions[0, 0]) > 0.006   # it reaches the goal before the hold ends
    assert closest.predictions.shape == (1, N, D)
    torch.testing.assert_close(closest.predictions[0], frames[-1])

"""Cross-entropy-method planner over a learned latent dynamics model (pure torch, batched over samples)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch

from jepa_planner.action_space import ActionConstraints
from jepa_planner.energy import EnergyFn

ENERGY_MODES = ("final", "all", "closest")


class CEMConfigError(ValueError):
    """Invalid planner configuration (the message names the offending field)."""


class PlannerInputError(ValueError):
    """Invalid tensors passed to `CEMPlanner.plan` or returned by the model."""


@runtime_checkable
class DynamicsModel(Protocol):
    """What the planner needs from a world model (ACPredictor satisfies it).

    Optionally a model also has ``prepare_context(context, state)`` returning an object with ``rollout(actions)``
    (same result as ``rollout(context, state, actions)``) and ``preferred_batch`` (int or None, the sequences
    per call it runs fastest with): the planner then calls it once per plan, so work that does not depend on
    the sampled actions is done once (`ACPredictor.prepare_context`).
    """

    max_horizon: int

    def rollout(self, context: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """context (1,C,N,D), state (1,C,S), actions (B,H,A) -> predicted features (B,H,N,D)."""
        ...


@dataclass(frozen=True)
class CEMConfig:
    """Planner settings. `low`/`high` are the per-axis action box and define the action dim A. The defaults are
    the shipped planner's (`jepa_planner.mpc.PlannerSettings` takes its CEM defaults from here): 16 samples x up
    to 3 iterations, 4 elites, horizon 1, momentum 0.1, no final-mean rollout, tuned on the shipped reach model
    offline (`jepa eval --offline`, seeds 0-3: 77/80 with 44 predicted frames per plan against 79/80 with 64
    samples, 6 elites and the final mean, 187 frames; docs/RESULTS.md, 'Planning at the control rate'). The
    published setting (800 x 10, top 10, momentum 0.15) is `PAPER` in
    `jepa_planner.reference`.

    Momentum blends new = (1-m)*elite_statistic + m*old for mean and std. `init_std` None means half the box
    width per axis. `keep_elites` best samples of one iteration join the next population without being
    re-evaluated (None: half the elites). `quasi_random` draws the white noise from a scrambled Sobol sequence
    (torch.quasirandom) mapped to Gaussians: a few samples cover the action box evenly instead of clumping, which
    is what lets a small population find what a large random one finds. `noise_beta` > 0 samples noise correlated over the horizon with power
    spectrum 1/f^beta (0 white, 1 pink, 2 brown; needs horizon >= 4 to matter). Early exit: stop when the best
    energy improved by no more than `early_stop_rtol` (relative) for `early_stop_patience` consecutive
    iterations (0 disables); one stalled iteration alone is not enough (small populations often stall once, then
    improve a lot). At the published setting an rtol of 0.5 % ran 4.05 iterations on average instead of 10 on 40
    `jepa bench planner` problems, median final energy within 0.01 % of running all 10.
    `energy_mode` "final" ranks by the last step's energy, "all" by the mean over steps, "closest" by the lowest
    energy of any predicted frame (where the sequence comes closest to the goal: a held action that passes its
    goal is scored there, not where it ends). `include_mean` makes
    the current sampling mean (the warm start in the first iteration) one of the evaluated samples and, with
    `final_mean`, evaluates the final mean after the last iteration (one more model call, the price of a plan never
    worse than the distribution's mean).
    `action_cost` adds a price on motion to the ranking energy: `action_cost` x the plan's L1 length on the free
    dims that are not the gripper (the dims `l1_radius` covers), summed over its steps; it keeps the search from
    large moves whose predicted outcome is only blurred towards the goal.
    `include_neutral` makes the neutral plan ("do nothing", the feasible action closest to zero at every step)
    one of the first iteration's samples (with at least two samples), so that holding still always competes: a
    warm start keeps the search around the previous plan's move, which near the goal overshoots it.
    `warm_std` scales the first iteration's std when the plan is warm-started (the previous plan shifted is
    already a good guess: a narrower search around it needs fewer samples); 1 searches as widely as a cold start.
    `rollout_batch` caps the sequences per model call to bound memory (None: the batch the model's prepared
    context prefers, if any, else the whole population in one call).
    """

    low: Sequence[float]
    high: Sequence[float]
    samples: int = 16
    iterations: int = 3
    elites: int = 4
    horizon: int = 1
    momentum_mean: float = 0.1
    momentum_std: float = 0.1
    init_std: float | Sequence[float] | None = None
    min_std: float = 1e-4
    l1_radius: float | None = None
    fixed_dims: Mapping[int, float] = field(default_factory=dict)
    gripper_dim: int | None = None
    gripper_threshold: float = 0.0
    seed: int = 0
    energy_mode: str = "final"
    early_stop_patience: int = 2
    early_stop_rtol: float = 1e-3
    keep_elites: int | None = None
    noise_beta: float = 0.0
    quasi_random: bool = False
    include_mean: bool = True
    include_neutral: bool = False
    action_cost: float = 0.0
    final_mean: bool = False
    warm_std: float = 1.0
    rollout_batch: int | None = None
    return_predictions: bool = True
    constraints: ActionConstraints = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int("samples", self.samples, 1)
        _check_int("iterations", self.iterations, 1)
        _check_int("elites", self.elites, 1)
        _check_int("horizon", self.horizon, 1)
        _check_int("seed", self.seed, 0)
        _check_int("early_stop_patience", self.early_stop_patience, 0)
        if self.keep_elites is None:
            object.__setattr__(self, "keep_elites", min(self.elites // 2, self.samples - 1))
        _check_int("keep_elites", self.keep_elites, 0)
        if self.rollout_batch is not None:
            _check_int("rollout_batch", self.rollout_batch, 1)
        if self.elites > self.samples:
            raise CEMConfigError(f"elites ({self.elites}) must not exceed samples ({self.samples})")
        if self.keep_elites > self.elites or self.keep_elites >= self.samples:
            raise CEMConfigError(f"keep_elites ({self.keep_elites}) must be <= elites ({self.elites}) "
                                 f"and < samples ({self.samples})")
        for name in ("momentum_mean", "momentum_std"):
            m = getattr(self, name)
            if not (isinstance(m, (int, float)) and 0.0 <= m < 1.0):
                raise CEMConfigError(f"{name} must be in [0, 1), got {m!r}")
        if not (isinstance(self.warm_std, (int, float)) and 0.0 < self.warm_std <= 1.0):
            raise CEMConfigError(f"warm_std must be in (0, 1], got {self.warm_std!r}")
        for name in ("min_std", "early_stop_rtol", "noise_beta", "action_cost"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise CEMConfigError(f"{name} must be finite and >= 0, got {v!r}")
        if self.energy_mode not in ENERGY_MODES:
            raise CEMConfigError(f"energy_mode must be one of {ENERGY_MODES}, got {self.energy_mode!r}")
        constraints = ActionConstraints.build(
            self.low, self.high, l1_radius=self.l1_radius, fixed_dims=self.fixed_dims,
            gripper_dim=self.gripper_dim, gripper_threshold=self.gripper_threshold)
        object.__setattr__(self, "constraints", constraints)
        self.initial_std()  # validates init_std

    @property
    def action_dim(self) -> int:
        """Number of action dimensions A."""
        return self.constraints.action_dim

    def initial_std(self) -> torch.Tensor:
        """Initial sampling std per axis, shape (A,) float32."""
        c = self.constraints
        if self.init_std is None:
            std = (c.high - c.low) / 2
        else:
            std = torch.as_tensor(self.init_std, dtype=torch.float32).reshape(-1)
            if std.numel() == 1:
                std = std.expand(c.action_dim).clone()
            if std.numel() != c.action_dim:
                raise CEMConfigError(f"init_std has {std.numel()} values, action dim is {c.action_dim}")
        if not torch.isfinite(std).all() or (std < 0).any():
            raise CEMConfigError(f"init_std must be finite and >= 0, got {std.tolist()}")
        return std.clamp(min=self.min_std)


@dataclass
class PlanResult:
    """Outcome of one `plan` call. When `ok` is False, `actions` is the neutral (hold) plan and `reason` says why."""

    actions: torch.Tensor                 # (H, A)
    energy: float                         # the ranking energy of `actions` (with `action_cost`: the price included)
    step_energies: torch.Tensor           # (H,) goal energies of the predicted frames alone
    predictions: torch.Tensor | None      # (H, N, D)
    iterations_run: int
    time_ms: float
    ok: bool = True
    reason: str = ""
    evaluations: int = 0                  # predicted frames rolled out for this plan (sequences x frames each)


def shift_warm_start(prev_actions: torch.Tensor, fill: str = "last") -> torch.Tensor:
    """Receding-horizon warm start: drop the executed first step and append the last step again ("last") or
    zeros ("zero"). (H, A) -> (H, A)."""
    if prev_actions.dim() != 2:
        raise PlannerInputError(f"prev_actions must be (H, A), got shape {tuple(prev_actions.shape)}")
    if fill not in ("last", "zero"):
        raise PlannerInputError(f"fill must be 'last' or 'zero', got {fill!r}")
    out = torch.empty_like(prev_actions)
    out[:-1] = prev_actions[1:]
    out[-1] = prev_actions[-1] if fill == "last" else 0.0
    return out


def coloured_noise(n: int, horizon: int, action_dim: int, beta: float, generator: torch.Generator,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Unit-variance Gaussian noise (n, horizon, action_dim), correlated over the horizon with power spectrum
    proportional to 1/f^beta (beta 0 is white noise)."""
    freqs = torch.fft.rfftfreq(horizon, device=device)
    freqs[0] = 1.0 / horizon  # no infinite power at DC
    scale = freqs.pow(-beta / 2.0)
    # irfft keeps only the real part of the DC (and, for an even horizon, the Nyquist) bin: give those bins
    # twice the variance so beta = 0 is exactly white. Other bins count twice (conjugate pair).
    weights = torch.full_like(scale, 4.0)
    real_only = [0, scale.numel() - 1] if horizon % 2 == 0 else [0]
    scale[real_only] *= math.sqrt(2.0)
    weights[real_only] = 1.0
    sigma = (weights * scale.square()).sum().sqrt() / horizon
    shape = (n, action_dim, scale.numel())
    re = torch.randn(shape, generator=generator, device=device)
    im = torch.randn(shape, generator=generator, device=device)
    spectrum = torch.complex(re * scale, im * scale)
    return torch.fft.irfft(spectrum, n=horizon, dim=-1).div_(sigma).transpose(1, 2)


@dataclass(frozen=True)
class _BoundRollout:
    """A rollout with its context bound: `fn(actions (B,H,A)) -> (B,H,N,D)`, and the batch it prefers."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    preferred_batch: int | None


@dataclass
class _Workspace:
    """Buffers reused across `plan` calls for one (device, N, D)."""

    key: tuple
    constraints: ActionConstraints
    generator: torch.Generator
    sobol: torch.quasirandom.SobolEngine | None
    samples: torch.Tensor      # (S, H, A)
    noise: torch.Tensor        # (S, H, A)
    energies: torch.Tensor     # (S,)
    elites: torch.Tensor       # (K, H, A)
    mean: torch.Tensor         # (H, A)
    std: torch.Tensor          # (H, A)
    init_std: torch.Tensor     # (H, A)
    neutral: torch.Tensor      # (H, A)
    best_actions: torch.Tensor  # (H, A)
    best_pred: torch.Tensor    # (H, N, D)


class CEMPlanner:
    """Cross-entropy method: sample action sequences around a Gaussian, roll them out through `model`,
    rank by `energy` against the goal features, refit the Gaussian to the elites, repeat.

    Returns the best evaluated sequence. Deterministic for `config.seed` (call `reset` to start the random
    stream again); successive `plan` calls continue the stream.
    """

    def __init__(self, model: DynamicsModel, energy: EnergyFn, config: CEMConfig) -> None:
        if not callable(getattr(model, "rollout", None)):
            raise TypeError(f"model must have a rollout(context, state, actions) method, got {type(model).__name__}")
        max_h = getattr(model, "max_horizon", None)
        if not isinstance(max_h, int) or max_h < 1:
            raise TypeError(f"model.max_horizon must be a positive int, got {max_h!r}")
        if config.horizon > max_h:
            raise CEMConfigError(f"horizon ({config.horizon}) is longer than model.max_horizon ({max_h})")
        if not callable(energy):
            raise TypeError(f"energy must be callable (pred (B,N,D), goal (N,D)) -> (B,), got {energy!r}")
        frames = getattr(model, "frames_per_action", 1)
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise TypeError(f"model.frames_per_action must be a positive int, got {frames!r}")
        self.frames_per_action = frames
        self.model = model
        self.energy = energy
        self.config = config
        self._ws: _Workspace | None = None
        self._frames_rolled = 0

    def reset(self) -> None:
        """Drop buffers and restart the random stream from `config.seed`."""
        self._ws = None

    def plan(self, context: torch.Tensor, state: torch.Tensor, goal: torch.Tensor,
             warm_start: torch.Tensor | None = None) -> PlanResult:
        """Plan `config.horizon` actions from context (1,C,N,D), state (1,C,S) towards goal features (N,D).

        `warm_start` (H, A) seeds the sampling mean (e.g. `shift_warm_start` of the previous plan). Non-finite
        model energies rank last; if no sample ever has a finite energy the result has `ok=False`.
        """
        t0 = time.perf_counter()
        self._check_inputs(context, state, goal, warm_start)
        self._frames_rolled = 0
        with torch.inference_mode():
            ws = self._workspace(context)
            outcome = self._run(ws, self._bind_rollout(context, state), goal, warm_start)
        return self._result(ws, goal, *outcome, t0)

    # -- internals ---------------------------------------------------------------------------------------

    def _check_inputs(self, context: torch.Tensor, state: torch.Tensor, goal: torch.Tensor,
                      warm_start: torch.Tensor | None) -> None:
        cfg = self.config
        for name, t, dims in (("context", context, 4), ("state", state, 3), ("goal", goal, 2)):
            if not isinstance(t, torch.Tensor):
                raise PlannerInputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() != dims:
                raise PlannerInputError(f"{name} must have {dims} dims, got shape {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise PlannerInputError(f"{name} contains NaN or Inf")
        if context.shape[0] != 1 or state.shape[0] != 1:
            raise PlannerInputError(f"context and state must have batch size 1, got {tuple(context.shape)} "
                                    f"and {tuple(state.shape)}")
        if state.shape[1] != context.shape[1]:
            raise PlannerInputError(f"state has {state.shape[1]} context steps, context has {context.shape[1]}")
        if goal.shape != context.shape[2:]:
            raise PlannerInputError(f"goal must be (N, D) = {tuple(context.shape[2:])}, got {tuple(goal.shape)}")
        if warm_start is not None:
            want = (cfg.horizon, cfg.action_dim)
            if not isinstance(warm_start, torch.Tensor) or tuple(warm_start.shape) != want:
                raise PlannerInputError(f"warm_start must be a tensor of shape {want}, got "
                                        f"{tuple(getattr(warm_start, 'shape', ()))}")
            if not torch.isfinite(warm_start).all():
                raise PlannerInputError("warm_start contains NaN or Inf")

    def _workspace(self, context: torch.Tensor) -> _Workspace:
        cfg = self.config
        dev = context.device
        key = (str(dev), tuple(context.shape[2:]))
        if self._ws is not None and self._ws.key == key:
            return self._ws
        s, k, h, a = cfg.samples, cfg.elites, cfg.horizon, cfg.action_dim
        f32 = dict(device=dev, dtype=torch.float32)
        cons = cfg.constraints.to(dev, torch.float32)
        gen = torch.Generator(device=dev)
        gen.manual_seed(cfg.seed)
        self._ws = _Workspace(
            key=key, constraints=cons, generator=gen,
            sobol=torch.quasirandom.SobolEngine(h * a, scramble=True, seed=cfg.seed) if cfg.quasi_random else None,
            samples=torch.empty(s, h, a, **f32), noise=torch.empty(s, h, a, **f32),
            energies=torch.empty(s, **f32), elites=torch.empty(k, h, a, **f32),
            mean=torch.empty(h, a, **f32), std=torch.empty(h, a, **f32),
            init_std=cfg.initial_std().to(dev).expand(h, a).clone(),
            neutral=cons.neutral().expand(h, a).clone(), best_actions=torch.empty(h, a, **f32),
            best_pred=torch.empty(h, *context.shape[2:], device=dev, dtype=context.dtype))
        return self._ws

    def _sample_noise(self, ws: _Workspace, out: torch.Tensor) -> None:
        cfg = self.config
        if ws.sobol is not None:
            # open interval: ndtri(0) would be -inf; the scrambled points are never exactly 0 or 1 in practice
            uniform = ws.sobol.draw(out.shape[0]).clamp_(1e-6, 1.0 - 1e-6)
            out.copy_(torch.special.ndtri(uniform).view(out.shape))
        elif cfg.noise_beta == 0.0 or cfg.horizon == 1:
            torch.randn(out.shape, generator=ws.generator, out=out)
        else:
            out.copy_(coloured_noise(out.shape[0], cfg.horizon, cfg.action_dim, cfg.noise_beta,
                                     ws.generator, out.device))

    def _rank_energies(self, pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B, H * frames_per_action, N, D) predictions -> (B,) ranking energies."""
        mode, step = self.config.energy_mode, self.frames_per_action
        if mode == "final":
            return self.energy(pred[:, -1], goal)
        frames = pred if mode == "closest" else pred[:, step - 1::step]
        b, t = frames.shape[:2]
        energies = self.energy(frames.reshape(b * t, *frames.shape[2:]), goal).view(b, t)
        return energies.amin(dim=1) if mode == "closest" else energies.mean(dim=1)

    def _bind_rollout(self, context: torch.Tensor, state: torch.Tensor) -> _BoundRollout:
        """The model's rollout from this context: prepared once when the model supports it."""
        prepare = getattr(self.model, "prepare_context", None)
        if callable(prepare):
            prepared = prepare(context, state)
            return _BoundRollout(prepared.rollout, getattr(prepared, "preferred_batch", None))
        return _BoundRollout(lambda actions: self.model.rollout(context, state, actions), None)

    def _run(self, ws: _Workspace, rollout: _BoundRollout, goal: torch.Tensor,
             warm_start: torch.Tensor | None) -> tuple[float, int, str]:
        """The CEM loop. Returns (best energy, iterations run, failure reason or "")."""
        cfg = self.config
        cons, mean, std = ws.constraints, ws.mean, ws.std
        mean.copy_(ws.neutral if warm_start is None else warm_start)
        cons.apply_(mean)
        std.copy_(ws.init_std)
        if warm_start is not None and cfg.warm_std != 1.0:
            std.mul_(cfg.warm_std).clamp_(min=cfg.min_std)
        best = math.inf
        n_kept = 0
        stall = 0
        it = 0
        for it in range(1, cfg.iterations + 1):
            n_new = cfg.samples - n_kept
            new = ws.samples[:n_new]
            noise = ws.noise[:n_new]
            self._sample_noise(ws, noise)
            torch.addcmul(mean, std, noise, out=new)
            if cfg.include_mean:
                new[0].copy_(mean)
            if cfg.include_neutral and it == 1 and n_new > 1:
                new[-1].copy_(ws.neutral)
            cons.apply_(new)
            previous = best
            best = self._evaluate(ws, rollout, goal, new, ws.energies[:n_new], best)
            values, index = torch.topk(ws.energies, cfg.elites, largest=False, sorted=True)
            n_finite = int(torch.isfinite(values).sum())
            if n_finite == 0:
                if math.isinf(best):
                    return math.inf, it, (f"all {n_new} sampled action sequences gave non-finite energy "
                                          f"at iteration {it}")
                stall += 1
            else:
                improved = best < previous - cfg.early_stop_rtol * abs(previous) if math.isfinite(previous) else True
                stall = 0 if improved else stall + 1
                self._refit(ws, index[:n_finite], values, n_finite)
                n_kept = min(cfg.keep_elites, n_finite)
            if cfg.early_stop_patience and stall >= cfg.early_stop_patience:
                break
        if cfg.include_mean and cfg.final_mean:  # the last refit mean has not been evaluated yet
            candidate = cons.apply_(mean.clone())[None]
            best = self._evaluate(ws, rollout, goal, candidate, torch.empty(1, device=mean.device), best)
        return best, it, ""

    def _evaluate(self, ws: _Workspace, rollout: _BoundRollout, goal: torch.Tensor, actions: torch.Tensor,
                  energies: torch.Tensor, best: float) -> float:
        """Roll out `actions` (n,H,A) in chunks (`rollout_batch`, else the model's preferred batch, else all),
        write ranking energies (non-finite -> +inf) into `energies` (n,), and record any sequence better than
        `best`. Returns the new best energy. Scoring each chunk right after its rollout keeps the predictions
        in cache."""
        n = actions.shape[0]
        chunk = self.config.rollout_batch or rollout.preferred_batch or n
        step = self.frames_per_action
        want = (self.config.horizon * step, *goal.shape)
        for start in range(0, n, chunk):
            part = actions[start:start + chunk]
            pred = rollout.fn(part)
            self._frames_rolled += part.shape[0] * want[0]
            if not isinstance(pred, torch.Tensor) or tuple(pred.shape) != (part.shape[0], *want):
                raise PlannerInputError(f"model.rollout returned shape {tuple(getattr(pred, 'shape', ()))}, "
                                        f"expected {(part.shape[0], *want)}")
            e = energies[start:start + chunk]
            e.copy_(self._rank_energies(pred, goal))
            if self.config.action_cost:
                moved = part.index_select(-1, ws.constraints.l1_index).abs().sum(dim=(1, 2))
                e.add_(moved, alpha=self.config.action_cost)
            e.masked_fill_(~torch.isfinite(e), math.inf)
            i = int(e.argmin())
            value = float(e[i])
            if value < best:
                best = value
                ws.best_actions.copy_(part[i])
                ws.best_pred.copy_(pred[i, step - 1::step])
        return best

    def _refit(self, ws: _Workspace, index: torch.Tensor, values: torch.Tensor, n: int) -> None:
        """Blend the elite statistics into mean/std and move the kept elites to the population's tail."""
        cfg = self.config
        elites = ws.elites[:n]
        torch.index_select(ws.samples, 0, index, out=elites)
        mm, ms = cfg.momentum_mean, cfg.momentum_std
        ws.mean.mul_(mm).add_(elites.mean(dim=0), alpha=1.0 - mm)
        ws.std.mul_(ms).add_(elites.std(dim=0, correction=0), alpha=1.0 - ms).clamp_(min=cfg.min_std)
        keep = min(cfg.keep_elites, n)
        if keep:
            tail = cfg.samples - keep
            ws.samples[tail:].copy_(elites[:keep])
            ws.energies[tail:].copy_(values[:keep])

    def _result(self, ws: _Workspace, goal: torch.Tensor, best: float, iterations: int, reason: str,
                t0: float) -> PlanResult:
        cfg = self.config
        if reason:
            return PlanResult(actions=ws.neutral.clone(), energy=math.inf,
                              step_energies=torch.full((cfg.horizon,), math.inf), predictions=None,
                              iterations_run=iterations, time_ms=(time.perf_counter() - t0) * 1e3,
                              ok=False, reason=reason, evaluations=self._frames_rolled)
        with torch.inference_mode():
            step_energies = self.energy(ws.best_pred, goal).float()
        return PlanResult(actions=ws.best_actions.clone(), energy=best, step_energies=step_energies.clone(),
                          predictions=ws.best_pred.clone() if cfg.return_predictions else None,
                          iterations_run=iterations, time_ms=(time.perf_counter() - t0) * 1e3,
                          evaluations=self._frames_rolled)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CEMConfigError(f"{name} must be an int >= {minimum}, got {value!r}")

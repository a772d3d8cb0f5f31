"""`MPCLoop`: the receding-horizon loop that turns the latest observation and the goal in force into a `Decision`.

One `MPCLoop` serves the planner node and the offline episodes (`jepa_episodes.offline`). The caller hands
every observation to ``loop.inputs.offer(observation, now_ns)`` on arrival, then calls ``loop.step(
loop.inputs.latest, now_ns, wall)`` whenever it may act: `now_ns` is the clock the stamps are judged against (ROS
time in the node), `wall` a monotonic wall clock in seconds (time budgets of a ReachGoal).

Rules:
- A loop whose own memory lies in the future (the clock jumped back) forgets it.
- One plan per usable frame: younger than `embedding_timeout`, newer than the last planned one and, in ``step``
  mode, stamped `settle_time` after the previous plan went out. Plans are warm-started from the previous one.
- Topic goals are tracked until replaced: while the observed energy is <= the tolerance (`default_tolerance`, 0:
  the predictor's calibrated `planning_tolerance`), hold plans (the neutral action with its predicted rollout)
  instead of a search; planning resumes when the energy rises.
- A ReachGoal replaces the topic goal. Each executed step is judged on the next usable observation. It ends
  "reached", "budget exhausted", "stale input" (no fresh frame for `stale_abort_after` s), "canceled",
  "deadline" (running longer than its summed budgets x `max_step_time`) or "planner error: ...".
- A result with a non-finite value anywhere is invalid: never published.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from jepa_common.outcomes import END_BUDGET, END_CANCELED, END_DEADLINE, END_REACHED, END_STALE
from jepa_planner.cem import CEMPlanner, PlanResult, shift_warm_start
from jepa_planner.energy import l1_energy
from jepa_planner.goals import GoalSequence
from jepa_planner.held_actions import HeldActions
from jepa_planner.mpc.decisions import FINISHED, HOLD, INVALID, PLAN, WAIT, Decision, result_problem, waiting_status
from jepa_planner.mpc.errors import InvalidGoalError, PlannerSetupError
from jepa_planner.mpc.inputs import NS, InputGate, Observation, context_inputs
from jepa_planner.mpc.models import PlannerModels
from jepa_planner.mpc.prediction import predict
from jepa_planner.mpc.reach import ReachState, goal_sequence, goal_tensor
from jepa_planner.mpc.settings import FALLBACK_TOLERANCE, PlannerSettings, cem_config


def make_planner(models: PlannerModels, settings: PlannerSettings) -> CEMPlanner:
    """The CEM planner over the models' predictor for `settings`; PlannerSetupError says what is wrong."""
    config = cem_config(settings, models.action_space)
    try:
        model = models.predictor if settings.lookahead_steps == 1 else \
            HeldActions(models.predictor, settings.lookahead_steps)
        return CEMPlanner(model, l1_energy, config)
    except ValueError as exc:  # CEMConfigError, or a hold longer than the predictor's horizon
        raise PlannerSetupError(f"invalid planner settings: {exc}") from exc


class MPCLoop:
    """Goals, input rules and the receding-horizon CEM planner; the caller publishes what `step` decides.

    Not thread-safe except `inputs` and `end`: one thread (or one lock) calls everything else.
    """

    def __init__(self, models: PlannerModels, settings: PlannerSettings) -> None:
        self.models = models
        self.settings = settings
        self.planner = make_planner(models, settings)
        self.inputs = InputGate(models, settings.max_future_stamp)
        self.invalid_goals = 0
        self.goal_problem = ""        # why the last goal was refused
        self._topic_goal: torch.Tensor | None = None
        self._reach: ReachState | None = None
        self._warm: tuple[torch.Tensor, torch.Tensor] | None = None   # (goal, actions of the last plan)
        self._last_planned_ns: int | None = None
        self._last_publish_ns: int | None = None
        self._last_plan_wall = -math.inf
        self.last_energy = math.nan
        self.last_plan_ms = math.nan

    # -------------------------------------------------------------------------------------------- settings
    @property
    def tolerance(self) -> float:
        """The goal tolerance in force: `default_tolerance`, else the predictor's calibrated one, else the
        fallback."""
        return self.settings.default_tolerance or self.models.planning_tolerance or FALLBACK_TOLERANCE

    def reconfigure(self, settings: PlannerSettings) -> None:
        """Switch to new settings (read-only ones must not change); a CEM change drops the warm start."""
        changed = [f.name for f in dataclasses.fields(settings) if getattr(settings, f.name) !=
                   getattr(self.settings, f.name)]
        frozen = [name for name in changed if PlannerSettings.__dataclass_fields__[name].metadata["read_only"]]
        if frozen:
            raise PlannerSetupError(f"read-only setting(s) {', '.join(frozen)} cannot change")
        if cem_config(settings, self.models.action_space) != self.planner.config or \
                settings.lookahead_steps != self.settings.lookahead_steps:
            self.planner, self._warm = make_planner(self.models, settings), None
        self.settings = settings
        self.inputs.max_future_ns = int(settings.max_future_stamp * NS)

    # ----------------------------------------------------------------------------------------------- goals
    @property
    def goal_kind(self) -> str:
        """"action" while a ReachGoal runs, "topic" while a topic goal is tracked, else "none"."""
        return "action" if self._reach is not None else "topic" if self._topic_goal is not None else "none"

    def goal_tensor(self, features: np.ndarray | torch.Tensor, model_id: str | None = None,
                    field: str = "goal") -> torch.Tensor:
        """Goal features (N, D) on the device; InvalidGoalError unless they come from the planner's encoder
        (`model_id`, when given), have the models' shape and are finite."""
        return goal_tensor(self.models, features, model_id, field)

    def refuse_goal(self, problem: str) -> None:
        """Count a goal that could not be used (reported with the next "no goal" status)."""
        self.invalid_goals += 1
        self.goal_problem = problem

    def set_topic_goal(self, features: np.ndarray | torch.Tensor) -> None:
        """Track `features` until replaced; InvalidGoalError when they are bad or a ReachGoal runs."""
        if self._reach is not None:
            raise InvalidGoalError("a ReachGoal action is running")
        self._topic_goal, self._warm, self.goal_problem = self.goal_tensor(features), None, ""

    def begin_reach(self, goals: Sequence[np.ndarray | torch.Tensor], wall: float,
                    budgets: Sequence[int] | None = None, tolerance: float | None = None) -> GoalSequence:
        """Start a ReachGoal (replacing the topic goal); None budgets/tolerance mean the defaults.

        InvalidGoalError says what is wrong with the request.
        """
        s = self.settings
        sequence = goal_sequence(self.models, goals, budgets, s.default_step_budget,
                                 self.tolerance if tolerance is None else tolerance)
        self._reach = ReachState.start(sequence, wall, s.max_step_time)
        self._topic_goal, self._warm, self.goal_problem = None, None, ""
        self.planner.reset()
        return sequence

    def end(self, reason: str = END_CANCELED) -> None:
        """Ask the running ReachGoal to end; the next `step` reports it with `reason`."""
        if self._reach is not None and not self._reach.end_reason:
            self._reach.end_reason = reason

    # ------------------------------------------------------------------------------------------------ step
    def step(self, observation: Observation | None, now_ns: int, wall: float) -> Decision:
        """Decide what to do now with `observation` (normally `inputs.latest`)."""
        self._forget_future(now_ns)
        if self._reach is not None:
            return self._step_reach(self._reach, observation, now_ns, wall)
        if self._topic_goal is None:
            refused = f" ({self.goal_problem})" if self.goal_problem else ""
            return Decision(WAIT, f"waiting: no goal{refused}")
        obs, problem = self._usable(observation, now_ns, wall)
        if obs is None:
            return Decision(WAIT, waiting_status(problem))
        goal, tolerance = self._topic_goal, self.tolerance
        energy = self.energy(obs, goal)
        holding = energy <= tolerance
        result, problem = self._hold(obs, goal) if holding else self._plan(obs, goal)
        if problem:
            self._last_planned_ns, self._warm = obs.stamp_ns, None   # the frame counts as used
            return Decision(INVALID, f"no valid {'hold ' if holding else ''}plan: {problem}", observation=obs)
        self._record(obs, goal, result, now_ns, wall)
        message = f"holding: goal reached (energy {energy:.4g} <= {tolerance:g})" if holding else "planning"
        return Decision(HOLD if holding else PLAN, message, result, obs, energy=energy)

    def _step_reach(self, reach: ReachState, observation: Observation | None, now_ns: int,
                    wall: float) -> Decision:
        """One step of the running ReachGoal: judge the last executed step, then plan the next or end."""
        if reach.end_reason:
            return self._finish(reach.end_reason)
        if wall > reach.deadline:
            return self._finish(END_DEADLINE, f"{reach.steps} steps in {wall - reach.started:.1f} s, more than "
                                            f"{reach.deadline - reach.started:.1f} s")
        reach.note_input(observation, now_ns, wall, self.settings.embedding_timeout, self.inputs.max_future_ns)
        obs, problem = self._usable(observation, now_ns, wall)
        if obs is None:
            if wall - reach.last_input > self.settings.stale_abort_after:
                return self._finish(END_STALE, problem)
            return Decision(WAIT, waiting_status(problem))
        sequence = reach.sequence
        energy = self.energy(obs, sequence.current)
        if reach.stepped:
            reach.stepped, reach.energy = False, energy
            status = sequence.update(energy)
            if status == "done":
                return self._finish(END_REACHED)
            if status == "failed":
                return self._finish(END_BUDGET, sequence.failure_reason)
            if status == "advanced":
                energy = self.energy(obs, sequence.current)
        reach.energy = energy
        result, problem = self._plan(obs, sequence.current)
        if problem:
            return self._finish(f"planner error: {problem}")
        self._record(obs, sequence.current, result, now_ns, wall)
        reach.stepped, reach.steps = True, reach.steps + 1
        return Decision(PLAN, "planning", result, obs, goal_index=sequence.index, energy=energy,
                        step=sequence.steps_used + 1)

    def _finish(self, reason: str, detail: str = "") -> Decision:
        """End the running ReachGoal with `reason`."""
        reach = self._reach
        outcome = reach.outcome(reason, detail)
        self._reach, self._warm = None, None
        return Decision(FINISHED, f"ReachGoal ended: {reason}", outcome=outcome, energy=reach.energy)

    def _forget_future(self, now_ns: int) -> None:
        """Drop remembered times that lie in the future (the clock jumped back, e.g. a restarted sim clock)."""
        if self._last_planned_ns is not None and self._last_planned_ns > now_ns + self.inputs.max_future_ns:
            self._last_planned_ns = self._last_publish_ns = None

    def _usable(self, obs: Observation | None, now_ns: int, wall: float) -> tuple[Observation | None, str]:
        """The observation to plan from now, or None and why ("" when simply waiting for the next frame)."""
        s = self.settings
        if obs is None:
            return None, self.inputs.problem or "no embedding received"
        if obs.stamp_ns - now_ns > self.inputs.max_future_ns:
            return None, f"future stamp: embedding stamped {(obs.stamp_ns - now_ns) / NS:.3f} s ahead"
        age = (now_ns - obs.stamp_ns) / NS
        if age > s.embedding_timeout:
            return None, self.inputs.problem or f"stale input: embedding is {age:.2f} s old " \
                                                f"(> {s.embedding_timeout:g} s)"
        if self._last_planned_ns is not None and obs.stamp_ns <= self._last_planned_ns:
            return None, ""
        if s.mode == "step" and self._last_publish_ns is not None and \
                obs.stamp_ns < self._last_publish_ns + int(s.settle_time * NS):
            return None, ""
        if s.min_plan_interval and wall - self._last_plan_wall < s.min_plan_interval:
            return None, ""
        return obs, ""

    # -------------------------------------------------------------------------------------------- planning
    def energy(self, obs: Observation, goal: torch.Tensor) -> float:
        """Observed energy of `obs` to goal features."""
        return float(l1_energy(self.models.tensor(obs.features)[None], goal)[0])

    def _plan(self, obs: Observation, goal: torch.Tensor) -> tuple[PlanResult | None, str]:
        """CEM from `obs` toward `goal`, warm-started from the last plan to the same goal; (result, problem)."""
        config = self.planner.config
        warm = None
        if self._warm is not None and self._warm[0] is goal and \
                tuple(self._warm[1].shape) == (config.horizon, config.action_dim):
            warm = shift_warm_start(self._warm[1])
        try:
            result = self.planner.plan(*context_inputs(self.models, obs), goal, warm)
        except (ValueError, RuntimeError) as exc:
            return None, str(exc)
        return result, result_problem(result)

    def _hold(self, obs: Observation, goal: torch.Tensor) -> tuple[PlanResult | None, str]:
        """The plan that keeps the arm where it is (the neutral action), with the predicted rollout of it."""
        started = time.perf_counter()
        config = self.planner.config
        actions = config.constraints.neutral().to(self.models.device).expand(config.horizon, -1).clone()
        try:
            with torch.inference_mode():
                predictions = self.models.predictor.rollout(*context_inputs(self.models, obs), actions[None])[0]
                energies = l1_energy(predictions, goal)
        except (ValueError, RuntimeError) as exc:
            return None, str(exc)
        result = PlanResult(actions=actions, energy=float(energies[-1]), step_energies=energies,
                            predictions=predictions, iterations_run=0,
                            time_ms=(time.perf_counter() - started) * 1e3, evaluations=int(predictions.shape[0]))
        return result, result_problem(result)

    def _record(self, obs: Observation, goal: torch.Tensor, result: PlanResult, now_ns: int, wall: float) -> None:
        """Remember a plan that goes out now (it leaves when planning ends: now + planning time)."""
        self._last_planned_ns = obs.stamp_ns
        self._last_publish_ns = now_ns + int(result.time_ms * 1e6)
        self._last_plan_wall = wall + result.time_ms * 1e-3
        self._warm = (goal, result.actions)
        self.last_energy, self.last_plan_ms = result.energy, result.time_ms

    # ------------------------------------------------------------------------------------------- predict
    def predict(self, context: Observation, actions: Sequence[float], horizon: int,
                goal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Roll the predictor out from `context` under `actions` (horizon x A, row-major): predictions (H, N, D)
        and energies (H,) to `goal` (None: no energies). PredictError says why a request is refused."""
        return predict(self.models, context, actions, horizon, goal)

    # -------------------------------------------------------------------------------------------- status
    def status_values(self, now_ns: int) -> dict[str, Any]:
        """Key values for the node's diagnostics."""
        latest = self.inputs.latest
        age = (now_ns - latest.stamp_ns) / NS if latest is not None else math.nan
        return dict(goal=self.goal_kind, last_energy=f"{self.last_energy:.4g}", plan_ms=f"{self.last_plan_ms:.1f}",
                    input_age_s=f"{age:.3f}", invalid_goals=self.invalid_goals, **self.inputs.counts)

"""What one `MPCLoop.step` decides (`Decision`, with kinds PLAN, HOLD, WAIT, INVALID and FINISHED), how a ReachGoal
ended (`ReachOutcome`), and the checks that say whether a result may be published.

Rules: a result with a non-finite value anywhere is invalid and never published; a waiting status reads
"waiting: <why>" ("" while the loop merely waits for the next frame).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from jepa_common.outcomes import END_REACHED
from jepa_planner.cem import PlanResult
from jepa_planner.mpc.inputs import Observation


@dataclass(frozen=True)
class ReachOutcome:
    """How a ReachGoal ended."""

    reason: str                # reached, budget exhausted, stale input, canceled, deadline, planner error: ...
    final_energy: float        # observed energy to the last targeted goal
    steps: int                 # plans issued
    goals_reached: int
    detail: str = ""           # e.g. which budget ran out

    @property
    def success(self) -> bool:
        """Every goal reached."""
        return self.reason == END_REACHED


PLAN, HOLD, WAIT, INVALID, FINISHED = "plan", "hold", "wait", "invalid", "finished"


@dataclass(frozen=True)
class Decision:
    """What `MPCLoop.step` decided. PLAN/HOLD: publish `result` (made from `observation`); WAIT: nothing to do
    (`message` says why, "" while just waiting for the next frame); INVALID: no valid result, publish nothing;
    FINISHED: the ReachGoal ended with `outcome`."""

    kind: str
    message: str = ""
    result: PlanResult | None = None
    observation: Observation | None = None
    goal_index: int = 0
    energy: float = math.nan   # observed energy to the targeted goal
    step: int = 0              # ReachGoal: the step this plan is, counted per goal
    outcome: ReachOutcome | None = None


def result_problem(result: PlanResult) -> str:
    """Why a planner result must not be used ("" when every value is finite)."""
    if not result.ok:
        return result.reason or "planner reported failure"
    if not math.isfinite(result.energy):
        return f"energy is {result.energy}"
    for name, tensor in (("actions", result.actions), ("step energies", result.step_energies),
                         ("predictions", result.predictions)):
        if tensor is None or not torch.isfinite(tensor).all():
            return f"{name} are missing or non-finite"
    return ""


def waiting_status(problem: str) -> str:
    """The status of a loop that waits because of `problem` ("" when it just waits for the next frame)."""
    if not problem or problem.startswith("waiting"):
        return problem
    return f"waiting: {problem}"

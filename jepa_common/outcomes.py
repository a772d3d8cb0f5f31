"""Outcome names of episodes and ReachGoals: the one place they are written.

Rules: every module that compares or reports an outcome imports its name from here; no outcome string literal
elsewhere. ``END_*`` are the reasons a ReachGoal ends with (the planner's words, `jepa_msgs/action/ReachGoal`,
plus the ones a client gives when the planner never answered); the episode outcomes are ``SUCCESS`` or one failure
class of the episode's task.
"""
from __future__ import annotations

# --- how a ReachGoal ended ---------------------------------------------------------------------------------
END_REACHED = "reached"
END_BUDGET = "budget exhausted"
END_STALE = "stale input"
END_CANCELED = "canceled"
END_DEADLINE = "deadline"
#: the client's reasons when the planner did not end the goal itself
END_REJECTED = "goal rejected by the planner"
END_NODE_DIED = "a node of the stack died"
END_NO_RESULT = "no result"
#: the normal ends of a ReachGoal; any other reason is a fault of the stack
NORMAL_ENDS = (END_REACHED, END_BUDGET)


def no_result(timeout_s: float) -> str:
    """The reason of a ReachGoal that had no result within ``timeout_s`` seconds."""
    return f"{END_NO_RESULT} within {timeout_s:.0f} s"


def is_fault(reason: str) -> bool:
    """Whether a ReachGoal ended other than normally (reached or budget exhausted)."""
    return reason not in NORMAL_ENDS


# --- how an episode ended ----------------------------------------------------------------------------------
SUCCESS = "success"
#: reach: the episode ended normally with the end effector outside the success radius
MISSED = "missed"
#: reach: the stack failed (a node died, the goal was rejected or not answered)
FAULT = "fault"
#: push failure classes
NEVER_TOUCHED = "never touched"
WRONG_WAY = "pushed the wrong way"
OVERSHOOT = "overshoot"
BUDGET_SPENT = "budget spent"
OTHER = "other"
#: grasp and pick-and-place failure classes (with BUDGET_SPENT and OTHER)
MISSED_GRASP = "missed grasp"
DROPPED = "dropped"
MISPLACED = "misplaced"

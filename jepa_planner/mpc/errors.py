"""The MPC loop's exceptions, one per kind of refusal.

Rules: no imports of the sibling modules (every one of them may raise these).
"""


class PlannerSetupError(ValueError):
    """Settings or models the planner cannot work with (the message names the setting or model)."""


class InvalidGoalError(ValueError):
    """A goal that cannot be pursued."""


class PredictError(ValueError):
    """A Predict request that is refused (the message says why)."""

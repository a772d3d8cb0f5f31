"""The error of a training run that cannot start or resume (bad data, options or checkpoint).

Rules: every recipe's own error derives from :class:`TrainingError`, so a command catches one class.
"""
from __future__ import annotations


class TrainingError(ValueError):
    """Training cannot start or resume with the given data and options."""

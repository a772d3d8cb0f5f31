"""``KEY=VALUE`` options of the training commands (``--encoder-override``, ``--predictor-override``) as a dict.

Rules: a value is read as JSON when it parses (numbers, booleans, lists), else kept as text; a malformed item is a
:class:`TrainingError` naming the option.
"""
from __future__ import annotations

import json
from typing import Any

from jepa_world_model.training.errors import TrainingError


def parse_overrides(items: list[str], option: str) -> dict[str, Any]:
    """["key=value", ...] -> {key: value}; values are read as JSON when they parse (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise TrainingError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out

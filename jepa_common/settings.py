"""Declared settings: dataclass fields that carry their own description, unit and range.

Every node's parameters, and every option of the training CLI, are such fields: the dataclass default is the one
place a default is written; the ROS layer declares parameters from the fields (with descriptors and ranges), the
CLI builds its options from them, and the YAML files under ``config/`` hold only what a deployment changes.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


class SettingsError(ValueError):
    """A settings value is unknown, of the wrong type or out of its range."""


def setting(default: Any, doc: str, *, unit: str = "", low: float | None = None, high: float | None = None,
            choices: Sequence[str] = (), read_only: bool = False, item_type: type = float) -> Any:
    """A dataclass field with its documentation.

    `low`/`high` bound numbers (inclusive), `choices` lists the allowed strings, `read_only` marks settings that
    cannot change after start, `item_type` is the element type of a sequence setting (needed when it is empty).
    Sequence defaults are stored as tuples so that settings objects stay immutable.
    """
    if isinstance(default, list):
        default = tuple(default)
    metadata = {"doc": doc, "unit": unit, "low": low, "high": high, "choices": tuple(choices),
                "read_only": read_only, "item_type": item_type}
    return dataclasses.field(default=default, metadata=metadata)


def describe(field: dataclasses.Field) -> str:
    """One line for help texts: the description, unit, range and allowed values of a setting."""
    meta = field.metadata
    parts = [meta.get("doc", "")]
    if meta.get("unit"):
        parts.append(f"[{meta['unit']}]")
    if meta.get("low") is not None and meta.get("high") is not None:
        parts.append(f"range {meta['low']:g}..{meta['high']:g}")
    if meta.get("choices"):
        parts.append("one of " + ", ".join(meta["choices"]))
    return " ".join(p for p in parts if p)


def settings_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """The documented fields of a settings dataclass (those made with :func:`setting`)."""
    return tuple(f for f in dataclasses.fields(cls) if "doc" in f.metadata)


def check_value(field: dataclasses.Field, value: Any) -> Any:
    """`value` converted to the field's type and checked against its range and choices; raises SettingsError."""
    default, meta = field.default, field.metadata
    name = field.name
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"{name}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{name}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{name}: expected a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"{name}: expected a string, got {value!r}")
        if meta.get("choices") and value not in meta["choices"]:
            raise SettingsError(f"{name}: {value!r} is not one of {', '.join(meta['choices'])}")
    elif isinstance(default, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise SettingsError(f"{name}: expected a list, got {value!r}")
        item_type = meta.get("item_type", float)
        try:
            value = tuple(item_type(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{name}: expected a list of {item_type.__name__}, got {value!r}") from exc
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None and isinstance(value, (int, float)) and not low <= value <= high:
        raise SettingsError(f"{name}: {value!r} is outside {low:g}..{high:g}")
    return value


def make_settings(cls: type, values: Mapping[str, Any] | None = None) -> Any:
    """An instance of settings class `cls` from a mapping of overrides, every value checked."""
    known = {f.name: f for f in settings_fields(cls)}
    unknown = sorted(set(values or {}) - set(known))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; "
                            f"known: {', '.join(sorted(known))}")
    checked = {name: check_value(known[name], value) for name, value in (values or {}).items()}
    return cls(**checked)


def non_defaults(settings: Any) -> dict[str, Any]:
    """The settings of an instance that differ from their class defaults."""
    return {f.name: getattr(settings, f.name) for f in settings_fields(type(settings))
            if getattr(settings, f.name) != f.default}

"""Command-line options made from settings fields, so that a CLI never types a default a second time.

Each documented field (see :mod:`jepa_common.settings`) becomes ``--field-name`` with the field's default,
its type (from the annotation; ``X | None`` gives X), its choices and its description plus the default as help.
A bool that defaults to true becomes ``--no-field-name``, one that defaults to false ``--field-name``.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from jepa_common.settings import check_value, describe, settings_fields


def option_name(field: dataclasses.Field) -> str:
    """The option of a field: ``--batch-size`` for batch_size (``--no-...`` for a bool that defaults to true)."""
    dashed = field.name.replace("_", "-")
    return f"--no-{dashed}" if field.default is True else f"--{dashed}"


def value_type(cls: type, field: dataclasses.Field) -> type:
    """The type a field's option parses to: its annotation, without None."""
    hint = typing.get_type_hints(cls)[field.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def add_settings_options(parser: argparse.ArgumentParser, cls: type,
                         exclusive: Sequence[Sequence[str]] = ()) -> None:
    """Add one option per documented field of `cls`; the fields named together in `exclusive` are mutually
    exclusive options."""
    groups: dict[str, Any] = {}
    for names in exclusive:
        group = parser.add_mutually_exclusive_group()
        groups.update({name: group for name in names})
    for field in settings_fields(cls):
        target = groups.get(field.name, parser)
        text, default = describe(field), field.default
        if isinstance(default, bool):
            target.add_argument(option_name(field), dest=field.name, default=default,
                                action="store_false" if default else "store_true",
                                help=f"turn off: {text}" if default else f"{text} (off by default)")
            continue
        shown = "none" if default is None else default
        kwargs: dict[str, Any] = {"default": default, "help": f"{text} (default: {shown})"}
        if isinstance(default, tuple):
            kwargs.update(nargs="*", type=field.metadata["item_type"])
        else:
            kwargs["type"] = value_type(cls, field)
        if field.metadata["choices"]:
            kwargs["choices"] = field.metadata["choices"]
        target.add_argument(option_name(field), dest=field.name, **kwargs)


def settings_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The documented fields' values from parsed options, each checked (type, range, choices; SettingsError)."""
    return {field.name: check_value(field, getattr(args, field.name)) if getattr(args, field.name) is not None
            else None for field in settings_fields(cls)}

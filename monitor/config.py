"""The monitor's TOML file: a `[policy]` table and `[[sinks]]` tables, checked key by key.

Every problem raises `contract.errors.BadInput` with one line "<file>: <key>: <problem>", the
same form as scenario files.
"""

from __future__ import annotations

import math
import tomllib
import typing
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Mapping

from contract.errors import BadInput, read_text_file


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read the TOML file at `path` into a dict."""
    text = read_text_file(path, "TOML file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: invalid TOML: {exc}") from None


def apply_values(base: Any, values: Mapping[str, Any], origin: str, prefix: str,
                 skip: tuple[str, ...] = ()) -> Any:
    """Return the frozen dataclass `base` with `values` applied, each checked against its field type.

    Keys in `skip` are accepted and ignored (the caller reads them); a None value means
    "not given" (an unset command-line option) and keeps the base value.
    """
    hints = typing.get_type_hints(type(base))
    known = [f.name for f in fields(base) if f.init]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key in skip or value is None:
            continue
        if key not in known:
            raise BadInput(f"{origin}: {prefix}{key}: unknown key; expected one of "
                           f"{', '.join(sorted(known + list(skip)))}")
        changes[key] = coerce(value, hints[key], origin, f"{prefix}{key}")
    return replace(base, **changes)


def coerce(value: Any, hint: Any, origin: str, key: str) -> Any:
    """Check `value` against a simple type hint (bool, int, float, str, tuple[str, ...], X | None)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)
    options = tuple(o for o in options if o is not type(None))
    last: str = ""
    for option in options:
        try:
            return _coerce_one(value, option)
        except TypeError as exc:
            last = str(exc)
    raise BadInput(f"{origin}: {key}: {last}")


def _coerce_one(value: Any, hint: Any) -> Any:
    name = type(value).__name__
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {name} {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"expected a whole number, got {name} {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise TypeError(f"expected a number, got {name} {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {name} {value!r}")
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise TypeError(f"expected a list of strings, got {name} {value!r}")
    if typing.get_origin(hint) is dict:
        if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        raise TypeError(f"expected a table of strings, got {name} {value!r}")
    raise TypeError(f"unsupported type {hint!r}")


_UnionType = type(int | None)

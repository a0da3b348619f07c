"""Building a frozen config dataclass from a plain dict, rejecting unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any] | None, section: str) -> T:
    """`cls(**values)`, with a clear error naming unknown keys and the known ones.

    List values of fields whose default is a tuple are turned into tuples, so
    YAML/JSON lists round-trip into the frozen dataclass.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    for name, value in values.items():
        if isinstance(fields[name].default, tuple) and isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)

"""Typed configuration sections: frozen dataclasses checked as values enter.

Every section of the pipeline configuration (and every branch of the model's
configuration tree) is a frozen dataclass deriving from `Config`. A field
declares its type by annotation and, where it matters, its allowed range or
choices through `setting(...)`:

    @dataclasses.dataclass(frozen=True)
    class TowersConfig(Config):
        KEY = "model.towers"
        embedding_dim: int = setting(64, min=1)
        similarity: str = setting("dot", choices=("dot", "cosine"))

Construction checks every field (a bool must be a bool, an int an int, a
number finite and in range, a string one of its choices), converts YAML lists
to tuples and mappings to sorted ``(name, value)`` pairs, builds nested
sections from dicts, and raises `ConfigError` with one line naming the full
key, the value and what is allowed:

    model.towers.embedding_dim=0: expected an integer >= 1

`parse(cls, values)` builds a section from a plain dict (YAML, ``--set``, JSON
in a component's execution property) and rejects unknown keys; `to_dict`
turns a section back into plain JSON-able values. Checks that involve several
fields go in the section's `check()`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="Config")
_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message is one line."""

    def __init__(self, key: str, value: object, expected: str):
        super().__init__(f"{key}={value!r}: expected {expected}")
        self.key = key
        self.value = value
        self.expected = expected


def setting(default: Any = _MISSING, *, min: float | None = None, max: float | None = None,
            gt: float | None = None, lt: float | None = None,
            choices: tuple | Callable[[], tuple] | None = None, mapping: bool = False,
            convert: Callable[[Any], Any] | None = None, expected: str | None = None,
            default_factory: Callable[[], Any] | None = None, path: bool = False) -> Any:
    """A dataclass field with constraints checked by `Config`.

    Args:
      default: the default value (immutable; nested sections use
        `default_factory`).
      min, max: inclusive bounds of a number (of each element of a tuple).
      gt, lt: exclusive bounds of a number (of each element of a tuple).
      choices: allowed values of a string (of each element of a tuple, of
        each value of a mapping), or a function returning them (a registry
        read when the value is checked).
      mapping: the field is ``tuple[tuple[str, V], ...]`` given as a mapping
        ``{name: value}`` (or pairs); stored sorted by name.
      convert: applied to the raw value before the checks (for fields that
        accept several spellings); raises ValueError with `expected` text.
      expected: what the error message says is allowed, instead of the
        phrase built from the type and constraints.
      path: the value is a file or directory path: a relative one is read
        from the directory of the config file that sets it (`resolve_paths`).
    """
    metadata = {"min": min, "max": max, "gt": gt, "lt": lt, "choices": choices,
                "mapping": mapping, "convert": convert, "expected": expected, "path": path}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type[T]) -> T:
    """A nested section field defaulting to `cls()`."""
    return dataclasses.field(default_factory=cls)


def _choices(meta: Mapping) -> tuple | None:
    choices = meta.get("choices")
    return tuple(choices()) if callable(choices) else choices


def _number_phrase(kind: str, meta: Mapping) -> str:
    low = (f">= {meta['min']:g}" if meta.get("min") is not None
           else f"> {meta['gt']:g}" if meta.get("gt") is not None else None)
    high = (f"<= {meta['max']:g}" if meta.get("max") is not None
            else f"< {meta['lt']:g}" if meta.get("lt") is not None else None)
    if low and high:
        left = "[" if meta.get("min") is not None else "("
        right = "]" if meta.get("max") is not None else ")"
        lo = meta["min"] if meta.get("min") is not None else meta["gt"]
        hi = meta["max"] if meta.get("max") is not None else meta["lt"]
        return f"{kind} in {left}{lo:g}, {hi:g}{right}"
    bound = low or high
    return f"{kind} {bound}" if bound else kind


def _phrase(hint: Any, meta: Mapping, plural: bool = False) -> str:
    """What a value of type `hint` with constraints `meta` must be, in words."""
    choices = _choices(meta)
    if choices is not None and hint is str:
        return f"one of {list(choices)}" if not plural else f"values from {list(choices)}"
    if hint is bool:
        return "true or false"
    if hint is int:
        return _number_phrase("integers" if plural else "an integer", meta)
    if hint is float:
        return _number_phrase("numbers" if plural else "a number", meta)
    if hint is str:
        return "strings" if plural else "a string"
    optional = _optional(hint)
    if optional is not None:
        return f"{_phrase(optional, meta)} or null"
    element = _tuple_element(hint)
    if element is not None:
        if meta.get("mapping"):
            value = _tuple_element_pair(element)
            return f"a mapping of name to {_phrase(value, meta, plural=True)}"
        return f"a list of {_phrase(element, meta, plural=True)}"
    if isinstance(hint, type) and issubclass(hint, Config):
        return f"a mapping of {hint.KEY} settings"
    return getattr(hint, "__name__", str(hint))


def _optional(hint: Any) -> Any:
    """X for `X | None`, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def _tuple_element(hint: Any) -> Any:
    """T for `tuple[T, ...]`, else None."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _tuple_element_pair(element: Any) -> Any:
    """V for a mapping element `tuple[str, V]`."""
    args = typing.get_args(element)
    if typing.get_origin(element) is not tuple or len(args) != 2 or args[0] is not str:
        raise RuntimeError(f"mapping setting element {element!r}: expected tuple[str, V]")
    return args[1]


class _Rejected(Exception):
    """Internal: the value does not fit; the caller builds the message."""


def _check_bounds(value: float, meta: Mapping) -> None:
    if meta.get("min") is not None and value < meta["min"]:
        raise _Rejected
    if meta.get("max") is not None and value > meta["max"]:
        raise _Rejected
    if meta.get("gt") is not None and value <= meta["gt"]:
        raise _Rejected
    if meta.get("lt") is not None and value >= meta["lt"]:
        raise _Rejected


def _scalar(value: Any, hint: Any, meta: Mapping) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise _Rejected
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Rejected
        _check_bounds(value, meta)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Rejected
        if not math.isfinite(value):
            raise _Rejected
        _check_bounds(value, meta)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Rejected
        choices = _choices(meta)
        if choices is not None and value not in choices:
            raise _Rejected
        return value
    raise RuntimeError(f"unsupported setting type {hint!r}")


def _value(value: Any, hint: Any, meta: Mapping, key: str) -> Any:
    """`value` checked and converted to `hint`; raises _Rejected or ConfigError."""
    optional = _optional(hint)
    if optional is not None:
        return None if value is None else _value(value, optional, meta, key)
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return parse(hint, value)
        raise _Rejected
    element = _tuple_element(hint)
    if element is not None:
        if meta.get("mapping"):
            item_hint = _tuple_element_pair(element)
            if isinstance(value, Mapping):
                pairs = list(value.items())
            elif isinstance(value, (list, tuple)) and all(
                    isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
                pairs = [tuple(p) for p in value]
            else:
                raise _Rejected
            names = [name for name, _ in pairs]
            if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
                raise _Rejected
            return tuple(sorted((name, _scalar(v, item_hint, meta)) for name, v in pairs))
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Rejected
        return tuple(_scalar(v, element, meta) for v in value)
    return _scalar(value, hint, meta)


class Config:
    """Base of every configuration section (see the module docstring).

    Subclasses are frozen dataclasses with a `KEY` (their place in the
    configuration, e.g. ``"model.towers"``) and may define `check()` for
    rules that involve several fields.
    """

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):
            key = f"{self.KEY}.{field.name}" if self.KEY else field.name
            raw = getattr(self, field.name)
            meta = field.metadata
            value = raw
            expected = meta.get("expected") or _phrase(hints[field.name], meta)
            try:
                if meta.get("convert") is not None:
                    value = meta["convert"](value)
                value = _value(value, hints[field.name], meta, key)
            except ConfigError:
                raise
            except (_Rejected, ValueError, TypeError):
                raise ConfigError(key, raw, expected) from None
            object.__setattr__(self, field.name, value)
        self.check()

    def check(self) -> None:
        """Rules between fields; raise `ConfigError` (or `self.error`)."""

    def error(self, name: str, expected: str) -> ConfigError:
        """A ConfigError for field `name` of this section."""
        return ConfigError(f"{self.KEY}.{name}" if self.KEY else name, getattr(self, name),
                           expected)

    def replace(self: T, **changes: Any) -> T:
        """A copy with `changes` (checked like any construction)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return to_dict(self)


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def parse(cls: type[T], values: Mapping | None) -> T:
    """`cls` from a plain mapping; unknown keys fail naming the known ones."""
    if values is None:
        values = {}
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(cls.KEY or cls.__name__, values, f"a mapping of {cls.KEY} settings")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = f"{cls.KEY}." if cls.KEY else ""
        raise ConfigError(f"{where}{unknown[0]}", values[unknown[0]],
                          f"a known key of {cls.KEY or cls.__name__}: {sorted(names)}")
    return cls(**dict(values))


def to_dict(config: Config) -> dict:
    """Plain JSON-able values: nested sections as dicts, tuples as lists,
    mapping settings as dicts."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Config):
            value = to_dict(value)
        elif field.metadata.get("mapping"):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out


def _join(base: str, value: Any) -> Any:
    """`value` read from `base` when it is a relative local path."""
    if not isinstance(value, str) or not value or "://" in value or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _section_class(hint: Any) -> type | None:
    hint = _optional(hint) or hint
    return hint if isinstance(hint, type) and issubclass(hint, Config) else None


def resolve_raw_paths(cls: type[Config], values: Mapping, base: str) -> dict:
    """A copy of the plain `values` of section `cls` (as read from a config
    file in directory `base`) whose relative path settings are joined to
    `base`; unknown keys are left for `parse` to reject."""
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = dict(values)
    for name, value in values.items():
        if name not in fields:
            continue
        nested = _section_class(hints[name])
        if nested is not None and isinstance(value, Mapping):
            out[name] = resolve_raw_paths(nested, value, base)
        elif fields[name].metadata.get("path"):
            out[name] = _join(base, value)
    return out


def map_paths(config: T, change: Callable[[str], str]) -> T:
    """`config` with `change` applied to every path setting that is set."""
    changes = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Config):
            mapped = map_paths(value, change)
        elif field.metadata.get("path") and value:
            mapped = change(value)
        else:
            continue
        if mapped is not value and mapped != value:
            changes[field.name] = mapped
    return config.replace(**changes) if changes else config


def resolve_paths(config: T, base: str) -> T:
    """`config` with every relative path setting joined to `base`."""
    return map_paths(config, lambda value: _join(base, value))

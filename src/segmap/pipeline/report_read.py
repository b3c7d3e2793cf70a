"""Reading JSON back into the report's dataclasses, strictly.

A report is read back (by the command line, the batch and the web service) only to be
shown or checked, so a report that is not what this segmap writes must say so rather
than show half of itself: every field must be present -- also those with a default,
which only help the code that builds a report -- no unknown field may appear, and each
value must have its declared type. A problem names its place in the JSON
(``regions[2].contours.used``).

Written here rather than with pydantic (installed with FastAPI) because pydantic fills
absent fields from their defaults, and this is the only place that reads JSON into
dataclasses; it covers exactly the types the report uses: ``str``, ``int``, ``float``,
``bool``, ``None`` unions, ``list[...]``, ``dict[str, ...]``, ``Any`` and nested
dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from segmap.errors import SegmapError

T = TypeVar("T")


class ReportError(SegmapError):
    """A report file that this segmap cannot read: the message names the field."""


def read_dataclass(cls: type[T], data: object, *, source: str, where: str = "") -> T:
    """``data`` (parsed JSON) as an instance of the dataclass ``cls``.

    Raises:
        ReportError: a field is missing, unknown, or of the wrong type; the message
            starts with ``source`` and names the field's path.
    """
    return typing.cast(T, _read(cls, data, source, where))


def _read(tp: Any, value: object, source: str, where: str) -> object:
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _read_object(tp, value, source, where)
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        real = [t for t in options if t is not type(None)]
        if len(real) != 1:
            raise TypeError(f"unsupported union {tp!r} in a report dataclass")
        return _read(real[0], value, source, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise _wrong(source, where, "a list", value)
        return [_read(item, v, source, f"{where}[{n}]") for n, v in enumerate(value)]
    if origin is dict:
        key_type, item = typing.get_args(tp)
        if key_type is not str:
            raise TypeError(f"unsupported dict key type {key_type!r} in a report dataclass")
        if not isinstance(value, dict):
            raise _wrong(source, where, "an object", value)
        return {k: _read(item, v, source, _join(where, str(k))) for k, v in value.items()}
    return _read_plain(tp, value, source, where)


def _read_object(cls: type, value: object, source: str, where: str) -> object:
    if not isinstance(value, dict):
        raise _wrong(source, where, "an object", value)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in value if k not in names)
    if unknown:
        raise ReportError(
            f"{source}: {_join(where, unknown[0])} is not a field this segmap knows "
            f"(in {where or 'the report'}); the report was written by another version"
        )
    kwargs = {}
    for name in names:
        path = _join(where, name)
        if name not in value:
            raise ReportError(f"{source}: {path} is missing; the report is incomplete")
        kwargs[name] = _read(hints[name], value[name], source, path)
    return cls(**kwargs)


def _read_plain(tp: Any, value: object, source: str, where: str) -> object:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(source, where, "true or false", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _wrong(source, where, "a whole number", value)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _wrong(source, where, "a number", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _wrong(source, where, "text", value)
    raise TypeError(f"unsupported type {tp!r} in a report dataclass")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _wrong(source: str, where: str, expected: str, value: object) -> ReportError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ReportError(f"{source}: {where or 'the report'} must be {expected}, got {shown}")

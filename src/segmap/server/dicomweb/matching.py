"""A parsed QIDO :class:`~.query.Query` as SQLAlchemy conditions over the caller's columns.

Generic: the caller maps each matchable keyword to a column (or to a
:class:`MultiValued` column holding ``\\``-joined values, or to a function building its
own clause, e.g. an ``EXISTS`` over the series of a study) and gets back conditions to
put in a ``WHERE``. Columns hold DICOM text as stored: dates ``YYYYMMDD``, times
normalised by :func:`.query.normalise_time`, numbers as integers.

Wildcards: ``*`` and ``?`` become ``LIKE`` patterns (``%``, ``_``, with ``\\`` escaping
literal ``%``/``_``). Case: person names compare lower-cased on both sides (SQLite's
``lower()`` folds ASCII only; PostgreSQL's folds all of Unicode). Other text is
case-sensitive as PS3.4 requires; since SQLite's ``LIKE`` ignores ASCII case, wildcard
text uses ``GLOB`` there and ``LIKE`` elsewhere (:class:`_CaseSensitiveMatch`).

Values are always named bound parameters (see :func:`condition_clause`), so a clause's
SQLAlchemy cache key says what SQL it makes regardless of the values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, and_, bindparam, false, func, or_
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

from segmap.server.dicomweb.query import (
    AnyOf,
    Condition,
    Equals,
    Query,
    Range,
    UidList,
)

_SEPARATOR = "\\"


@dataclass(frozen=True)
class MultiValued:
    """A text column holding several values joined by ``separator`` (``CT\\SEG``)."""

    column: ColumnElement[Any]
    separator: str = _SEPARATOR


Target = ColumnElement[Any] | MultiValued | Callable[[Condition, str], ColumnElement[bool]]


def conditions(
    query: Query, targets: Mapping[str, Any], *, prefix: str = "match"
) -> list[ColumnElement[bool]]:
    """One condition per matching key of ``query``; ``targets`` maps keyword → target.

    A target is a column (or ORM attribute), a :class:`MultiValued` or a callable taking
    the :data:`~.query.Condition` and a parameter name. A matching key with no target is
    a programming error (the index misses a column) and raises ``LookupError`` naming
    the keyword. The values of the i-th key are bound parameters named after
    ``{prefix}{i}`` (see :func:`condition_clause`).
    """
    clauses = []
    for i, match in enumerate(query.matches):
        keyword = match.attribute.keyword
        if keyword not in targets:
            raise LookupError(f"no column is mapped for the matching key {keyword}")
        clauses.append(
            condition_clause(
                targets[keyword],
                match.condition,
                empty=query.empty_value_matching,
                name=f"{prefix}{i}",
            )
        )
    return clauses


def condition_clause(
    target: Any, condition: Condition, *, empty: bool = False, name: str = "value"
) -> ColumnElement[bool]:
    """The clause for one condition on one target.

    ``empty`` (``emptyvaluematching=true``) also matches rows whose value is NULL or ''.
    Every value is a bound parameter named ``name`` or ``name_<suffix>``, never an
    anonymous one: two queries that differ only in their values then make clauses with
    equal SQLAlchemy cache keys and parameters of the same names, so a statement built
    for one can be run with the other's parameters (as ``.search`` does).
    """
    if callable(target) and not isinstance(target, ColumnElement | MultiValued):
        return target(condition, name)
    if isinstance(target, MultiValued):
        clause = _multi(target, condition, name)
        column: ColumnElement[Any] = target.column
    else:
        column = target.expression if hasattr(target, "expression") else target
        clause = _single(column, condition, name)
    if empty:
        clause = or_(clause, column.is_(None), column == bindparam(f"{name}_empty", ""))
    return clause


def _single(column: ColumnElement[Any], c: Condition, name: str) -> ColumnElement[bool]:
    if isinstance(c, UidList | AnyOf):
        if len(c.values) == 1:
            return column == bindparam(name, c.values[0])
        return column.in_(bindparam(name, list(c.values), expanding=True))
    if isinstance(c, Equals):
        return column == bindparam(name, c.value)
    if isinstance(c, Range):
        parts = []
        if c.low is not None:
            parts.append(column >= bindparam(f"{name}_low", c.low))
        if c.high is not None:
            parts.append(column <= bindparam(f"{name}_high", c.high))
        return and_(*parts)
    if c.case_insensitive:
        folded = func.lower(column)
        if not c.wildcard:
            return folded == bindparam(name, c.value.lower())
        return folded.like(bindparam(name, _like_pattern(c.value.lower())), escape="\\")
    if not c.wildcard:
        return column == bindparam(name, c.value)
    return _CaseSensitiveMatch(column, bindparam(name, c.value, type_=_WildcardPattern()))


def _multi(target: MultiValued, c: Condition, name: str) -> ColumnElement[bool]:
    if not isinstance(c, UidList | AnyOf | Equals):
        raise ValueError(f"only exact values are matched on a multi-valued column, not {c}")
    sep = target.separator
    values = c.values if isinstance(c, UidList | AnyOf) else (str(c.value),)
    separator = bindparam(f"{name}_separator", sep, type_=String())
    wrapped = separator + target.column + separator
    clauses = [
        wrapped.like(bindparam(f"{name}_{i}", _contains_pattern(f"{sep}{v}{sep}")), escape="/")
        for i, v in enumerate(values)
    ]
    return or_(false(), *clauses)


def _contains_pattern(value: str) -> str:
    """A LIKE pattern (escape ``/``) matching text that contains ``value`` literally."""
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _glob_pattern(value: str) -> str:
    return value.replace("[", "[[]")  # * and ? mean in GLOB what they mean in DICOM


class _WildcardPattern(TypeDecorator[str]):
    """A DICOM wildcard pattern (``*``, ``?``) sent as the pattern of the backend's
    case-sensitive match: GLOB's on SQLite, LIKE's (escape ``\\``) elsewhere, as
    :class:`_CaseSensitiveMatch` compiles."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _glob_pattern(value) if dialect.name == "sqlite" else _like_pattern(value)


class _CaseSensitiveMatch(ColumnElement[bool]):
    """``column`` matches a DICOM wildcard pattern, case-sensitively, on any backend.

    ``pattern`` is a bound parameter of type :class:`_WildcardPattern`. Its cache key
    is the column's and the parameter's, so statements holding it are cached like any.
    """

    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], pattern: BindParameter[str]) -> None:
        self.column = column
        self.pattern = pattern


@compiles(_CaseSensitiveMatch)
def _compile_like(element: _CaseSensitiveMatch, compiler: SQLCompiler, **kw: Any) -> str:
    clause = element.column.like(element.pattern, escape="\\")
    return compiler.process(clause, **kw)


@compiles(_CaseSensitiveMatch, "sqlite")
def _compile_glob(element: _CaseSensitiveMatch, compiler: SQLCompiler, **kw: Any) -> str:
    clause = element.column.op("GLOB")(element.pattern)
    return compiler.process(clause, **kw)

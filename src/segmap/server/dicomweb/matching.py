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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, false, func, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

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


Target = ColumnElement[Any] | MultiValued | Callable[[Condition], ColumnElement[bool]]


def conditions(query: Query, targets: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """One condition per matching key of ``query``; ``targets`` maps keyword → target.

    A target is a column (or ORM attribute), a :class:`MultiValued` or a callable taking
    the :data:`~.query.Condition`. A matching key with no target is a programming error
    (the index misses a column) and raises ``LookupError`` naming the keyword.
    """
    clauses = []
    for match in query.matches:
        keyword = match.attribute.keyword
        if keyword not in targets:
            raise LookupError(f"no column is mapped for the matching key {keyword}")
        clauses.append(
            condition_clause(targets[keyword], match.condition, empty=query.empty_value_matching)
        )
    return clauses


def condition_clause(
    target: Any, condition: Condition, *, empty: bool = False
) -> ColumnElement[bool]:
    """The clause for one condition on one target.

    ``empty`` (``emptyvaluematching=true``) also matches rows whose value is NULL or ''.
    """
    if callable(target) and not isinstance(target, ColumnElement | MultiValued):
        return target(condition)
    if isinstance(target, MultiValued):
        clause = _multi(target, condition)
        column: ColumnElement[Any] = target.column
    else:
        column = target.expression if hasattr(target, "expression") else target
        clause = _single(column, condition)
    if empty:
        clause = or_(clause, column.is_(None), column == "")
    return clause


def _single(column: ColumnElement[Any], c: Condition) -> ColumnElement[bool]:
    if isinstance(c, UidList | AnyOf):
        return column == c.values[0] if len(c.values) == 1 else column.in_(c.values)
    if isinstance(c, Equals):
        return column == c.value
    if isinstance(c, Range):
        parts = []
        if c.low is not None:
            parts.append(column >= c.low)
        if c.high is not None:
            parts.append(column <= c.high)
        return and_(*parts)
    if c.case_insensitive:
        folded = func.lower(column)
        if not c.wildcard:
            return folded == c.value.lower()
        return folded.like(_like_pattern(c.value.lower()), escape="\\")
    if not c.wildcard:
        return column == c.value
    return _CaseSensitiveMatch(column, c.value)


def _multi(target: MultiValued, c: Condition) -> ColumnElement[bool]:
    if not isinstance(c, UidList | AnyOf | Equals):
        raise ValueError(f"only exact values are matched on a multi-valued column, not {c}")
    sep = target.separator
    values = c.values if isinstance(c, UidList | AnyOf) else (str(c.value),)
    wrapped = literal(sep) + target.column + literal(sep)
    clauses = [wrapped.contains(f"{sep}{v}{sep}", autoescape=True) for v in values]
    return or_(false(), *clauses)


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _glob_pattern(value: str) -> str:
    return value.replace("[", "[[]")  # * and ? mean in GLOB what they mean in DICOM


class _CaseSensitiveMatch(ColumnElement[bool]):
    """``column`` matches a DICOM wildcard pattern, case-sensitively, on any backend."""

    inherit_cache = False  # holds plain attributes SQLAlchemy cannot make a cache key of
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], pattern: str) -> None:
        self.column = column
        self.pattern = pattern


@compiles(_CaseSensitiveMatch)
def _compile_like(element: _CaseSensitiveMatch, compiler: SQLCompiler, **kw: Any) -> str:
    clause = element.column.like(_like_pattern(element.pattern), escape="\\")
    return compiler.process(clause, **kw)


@compiles(_CaseSensitiveMatch, "sqlite")
def _compile_glob(element: _CaseSensitiveMatch, compiler: SQLCompiler, **kw: Any) -> str:
    clause = element.column.op("GLOB")(_glob_pattern(element.pattern))
    return compiler.process(clause, **kw)

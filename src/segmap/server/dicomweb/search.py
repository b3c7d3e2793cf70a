"""QIDO-RS searches answered from the index (``segmap.server.db.dicomweb``), never the files.

A :class:`~.query.Query` at a level, within a :class:`Scope` (the UIDs named in the
path), becomes one SELECT over the index rows of one project, joined up to the study;
:mod:`.matching` turns the matching keys into conditions on the columns of
:mod:`.columns`. ModalitiesInStudy matches when any series of the study (with
instances) has one of the modalities. Counts and ModalitiesInStudy of the results come
from one grouped query over their studies' series. Only series with instances count
(an ROI collection series whose file was replaced is gone from the index already).

Order: studies as stored; series by study, SeriesNumber (unnumbered last), then as
stored; instances by series, InstanceNumber, then as stored. ``offset``/``limit`` apply
to that order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    bindparam,
    exists,
    func,
    select,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.dicomweb.columns import COLUMNS
from segmap.server.dicomweb.dicomjson import JsonObject, qido_result
from segmap.server.dicomweb.levels import (
    NUMBER_OF_SERIES_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_SERIES,
    Level,
)
from segmap.server.dicomweb.matching import condition_clause, conditions
from segmap.server.dicomweb.query import Condition, Query, parse_query

_IN_BATCH = 500  # ids per IN (...) list
# The series of a study, as a correlated subquery sees them (an alias is an immutable
# description of the table, made once like the statements below).
_OTHER_SERIES = aliased(DicomwebSeries, name="other_series")


@dataclass(frozen=True)
class Scope:
    """The UIDs a search path names: ``/studies/{study}/series/{series}/instances``."""

    study_uid: str | None = None
    series_uid: str | None = None

    @property
    def level(self) -> Level | None:
        """The deepest level named (as :func:`.levels.returned` takes it)."""
        if self.series_uid is not None:
            return Level.SERIES
        return Level.STUDY if self.study_uid is not None else None


@dataclass
class _Facts:
    """Counts of one study and its series, and the study's modalities."""

    series: int = 0
    instances: int = 0
    modalities: set[str] = field(default_factory=set)
    per_series: dict[int, int] = field(default_factory=dict)


def search(
    connection: Connection, project_id: str, query: Query, scope: Scope, root: str
) -> list[JsonObject]:
    """The QIDO results (DICOM JSON objects) of ``query`` in project ``project_id``,
    read through ``connection`` (in the caller's transaction).

    ``root`` is the project's DICOMweb root URL, for the RetrieveURLs.
    """
    stmt, params = _statement(connection, query, scope)
    params["project_id"] = project_id
    # Plain rows of the few columns a result needs: the ORM's objects are not needed.
    rows = connection.execute(stmt, params).all()
    facts = _facts(connection, {row.session_id for row in rows})
    tags = query.return_tags(scope.level)
    return [_result(row, query.level, facts, tags, root) for row in rows]


def prepare(connection: Connection) -> None:
    """Run the searches viewers ask most once, in a project that does not exist, so
    SQLAlchemy has compiled them (a few milliseconds each) before the first request:
    a study by UID, the series of a study, the instances of a series, and the counts."""
    by_uid = parse_query([("StudyInstanceUID", "0")], Level.STUDY)
    search(connection, "", by_uid, Scope(), "")
    search(connection, "", Query(Level.SERIES), Scope("0"), "")
    search(connection, "", Query(Level.INSTANCE), Scope("0", "0"), "")
    _facts(connection, [0])
    _facts(connection, [0, 1])


def _statement(
    connection: Connection, query: Query, scope: Scope
) -> tuple[Select[Any], dict[str, Any]]:
    """The SELECT of a search (bar ``project_id``) and its parameters.

    Building a statement and its cache key costs more than running it, so the one built
    for a query is kept (per pooled connection, in ``Connection.info``) and run again for
    a later query of the same shape: the same level and path scope, and conditions with
    equal SQLAlchemy cache keys — which equal SQL and parameter names (every value is a
    named parameter, see :mod:`.matching`), so only the parameters differ. A condition
    without a cache key, or with an unnamed parameter, is built afresh each time.
    """
    base = (query.level, scope.study_uid is not None, scope.series_uid is not None)
    where = conditions(query, _TARGETS[query.level])
    params: dict[str, Any] = {}
    if scope.study_uid is not None:
        params["scope_study"] = scope.study_uid
    if scope.series_uid is not None:
        params["scope_series"] = scope.series_uid
    if query.offset:
        params["offset"] = query.offset
    if query.limit is not None:
        params["limit"] = query.limit
    shape = _shape(where)
    if shape is None:
        return _build(base, where, params), params
    key = (base, "offset" in params, "limit" in params, shape[0])
    kept: OrderedDict[Any, Select[Any]]
    kept = connection.info.setdefault(KEPT_STATEMENTS, OrderedDict())
    stmt = kept.get(key)
    if stmt is None:
        stmt = kept[key] = _build(base, where, params)
        if len(kept) > _MAX_KEPT:
            kept.popitem(last=False)
    else:
        kept.move_to_end(key)
    params.update(shape[1])
    return stmt, params


KEPT_STATEMENTS = "segmap.dicomweb.search statements"
"""The key in ``Connection.info`` of the statements kept by shape (see :func:`_statement`)."""
_MAX_KEPT = 64  # shapes kept per connection; clients use a handful


def _shape(where: list[ColumnElement[bool]]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """The cache keys of ``where`` and the values of their parameters by name; None
    when a statement holding them cannot be run again with other values."""
    keys = []
    values: dict[str, Any] = {}
    for clause in where:
        cache_key = clause._generate_cache_key()
        if cache_key is None:
            return None
        for bind in cache_key.bindparams:
            if bind.unique:  # an anonymous name: its value could not be passed again
                return None
            values[bind.key] = bind.effective_value
        keys.append(cache_key.key)
    return tuple(keys), values


def _build(
    base: tuple[Level, bool, bool], where: list[ColumnElement[bool]], params: dict[str, Any]
) -> Select[Any]:
    stmt = _BASES[base]
    if where:
        stmt = stmt.where(*where)
    if "offset" in params:
        stmt = stmt.offset(bindparam("offset", type_=Integer))
    if "limit" in params:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


# What a result is made of, per level, named as _result reads them.
_STUDY_COLUMNS = (
    DicomwebStudy.session_id.label("session_id"),
    DicomwebStudy.study_instance_uid.label("study_uid"),
    DicomwebStudy.record.label("study_record"),
)
_SERIES_COLUMNS = (
    DicomwebSeries.id.label("series_id"),
    DicomwebSeries.series_instance_uid.label("series_uid"),
    DicomwebSeries.record.label("series_record"),
)
_INSTANCE_COLUMNS = (
    DicomwebInstance.sop_instance_uid.label("sop_uid"),
    DicomwebInstance.record.label("instance_record"),
)


def _base(level: Level, study_scoped: bool, series_scoped: bool) -> Select[Any]:
    """The search at ``level`` in one project (parameter ``project_id``) within the path's
    UIDs (``scope_study``, ``scope_series``), before the query's own conditions."""
    if level is Level.STUDY:
        series = _OTHER_SERIES
        stmt = (
            select(*_STUDY_COLUMNS)
            .where(
                DicomwebStudy.project_id == bindparam("project_id"),
                exists().where(series.session_id == DicomwebStudy.session_id, _has(series)),
            )
            .order_by(DicomwebStudy.session_id)
        )
    elif level is Level.SERIES:
        stmt = (
            select(*_SERIES_COLUMNS, *_STUDY_COLUMNS)
            .join(DicomwebStudy, DicomwebStudy.session_id == DicomwebSeries.session_id)
            .where(DicomwebSeries.project_id == bindparam("project_id"), _has(DicomwebSeries))
            .order_by(*_series_order())
        )
    else:
        stmt = (
            select(*_INSTANCE_COLUMNS, *_SERIES_COLUMNS, *_STUDY_COLUMNS)
            .join(DicomwebSeries, DicomwebSeries.id == DicomwebInstance.series_id)
            .join(DicomwebStudy, DicomwebStudy.session_id == DicomwebSeries.session_id)
            .where(DicomwebInstance.project_id == bindparam("project_id"))
            .order_by(
                *_series_order(),
                DicomwebInstance.instance_number.is_(None),
                DicomwebInstance.instance_number,
                DicomwebInstance.id,
            )
        )
    if study_scoped:
        stmt = stmt.where(DicomwebStudy.study_instance_uid == bindparam("scope_study"))
    if series_scoped:
        stmt = stmt.where(DicomwebSeries.series_instance_uid == bindparam("scope_series"))
    return stmt


def _series_order() -> tuple[Any, ...]:
    return (
        DicomwebSeries.session_id,
        DicomwebSeries.series_number.is_(None),
        DicomwebSeries.series_number,
        DicomwebSeries.id,
    )


def _has(series: Any) -> ColumnElement[bool]:
    """The series has at least one indexed instance."""
    return exists().where(DicomwebInstance.series_id == series.id)


def _modalities_in_study(condition: Condition, name: str) -> ColumnElement[bool]:
    series = _OTHER_SERIES
    return exists().where(
        series.session_id == DicomwebStudy.session_id,
        condition_clause(series.modality, condition, name=name),
        _has(series),
    )


def _targets(level: Level) -> dict[str, Any]:
    """What each matching key of a search at ``level`` is matched on (:mod:`.matching`)."""
    targets: dict[str, Any] = {"ModalitiesInStudy": _modalities_in_study}
    for each in level.above:
        targets.update(COLUMNS[each])
    return targets


# Built once: statements are immutable, and building one costs more than running it
# here. Every value is a bound parameter, so SQLAlchemy also compiles each shape once.
# A path names a series only within a study (/studies/{study}/series/{series}/...).
_BASES: dict[tuple[Level, bool, bool], Select[Any]] = {
    (level, study, series): _base(level, study, series)
    for level in Level
    for study, series in ((False, False), (True, False), (True, True))
}
_TARGETS: dict[Level, dict[str, Any]] = {level: _targets(level) for level in Level}


_FACTS = (
    select(
        DicomwebSeries.session_id,
        DicomwebSeries.id,
        DicomwebSeries.modality,
        func.count(DicomwebInstance.id),
    )
    .join(DicomwebInstance, DicomwebInstance.series_id == DicomwebSeries.id)
    .group_by(DicomwebSeries.id)
)
# Built once (statements are immutable; building one costs more than running it here).
_FACTS_OF_ONE = _FACTS.where(DicomwebSeries.session_id == bindparam("session_id"))
_FACTS_OF_MANY = _FACTS.where(
    DicomwebSeries.session_id.in_(bindparam("session_ids", expanding=True))
)


def _facts(connection: Connection, session_ids: Iterable[int]) -> dict[int, _Facts]:
    ids = sorted(session_ids)
    out: dict[int, _Facts] = {i: _Facts() for i in ids}
    for start in range(0, len(ids), _IN_BATCH):
        batch = ids[start : start + _IN_BATCH]
        if len(batch) == 1:  # the common case (a study by UID): no list to expand
            rows = connection.execute(_FACTS_OF_ONE, {"session_id": batch[0]})
        else:
            rows = connection.execute(_FACTS_OF_MANY, {"session_ids": batch})
        for session_id, series_id, modality, count in rows:
            facts = out[session_id]
            facts.series += 1
            facts.instances += int(count)
            facts.per_series[series_id] = int(count)
            if modality:
                facts.modalities.add(modality)
    return out


def _result(
    row: Row[Any], level: Level, facts: dict[int, _Facts], tags: Sequence[int], root: str
) -> JsonObject:
    study_facts = facts[row.session_id]
    counts = {
        NUMBER_OF_STUDY_RELATED_SERIES: study_facts.series,
        NUMBER_OF_STUDY_RELATED_INSTANCES: study_facts.instances,
    }
    url = f"{root}/studies/{quote(row.study_uid)}"
    records: list[dict[str, Any]] = [row.study_record]
    if level is not Level.STUDY:
        counts[NUMBER_OF_SERIES_RELATED_INSTANCES] = study_facts.per_series.get(row.series_id, 0)
        url += f"/series/{quote(row.series_uid)}"
        records.append(row.series_record)
    if level is Level.INSTANCE:
        url += f"/instances/{quote(row.sop_uid)}"
        records.append(row.instance_record)
    return qido_result(
        records,
        tags,
        retrieve_url=url,
        counts=counts,
        modalities=sorted(study_facts.modalities),
    )

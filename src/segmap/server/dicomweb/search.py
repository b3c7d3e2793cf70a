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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import ColumnElement, bindparam, exists, func, select
from sqlalchemy.orm import Session, aliased
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
from segmap.server.dicomweb.query import Condition, Query

_IN_BATCH = 500  # ids per IN (...) list
# The series of a study, as a correlated subquery sees them; made once (an alias is an
# immutable description of the table, and a fresh one per query costs more than the query).
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


def search(db: Session, project_id: str, query: Query, scope: Scope, root: str) -> list[JsonObject]:
    """The QIDO results (DICOM JSON objects) of ``query`` in project ``project_id``.

    ``root`` is the project's DICOMweb root URL, for the RetrieveURLs.
    """
    stmt = _statement(project_id, query, scope)
    if query.offset:
        stmt = stmt.offset(query.offset)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    rows = db.execute(stmt).all()
    facts = _facts(db, {_study_of(row).session_id for row in rows})
    tags = query.return_tags(scope.level)
    return [_result(row, query.level, facts, tags, root) for row in rows]


def _statement(project_id: str, query: Query, scope: Scope) -> Select[*tuple[Any, ...]]:
    targets: dict[str, Any] = {"ModalitiesInStudy": _modalities_in_study}
    for level in query.level.above:
        targets.update(COLUMNS[level])
    where = conditions(query, targets)
    if scope.study_uid is not None:
        where.append(DicomwebStudy.study_instance_uid == scope.study_uid)
    if scope.series_uid is not None:
        where.append(DicomwebSeries.series_instance_uid == scope.series_uid)
    if query.level is Level.STUDY:
        series = _OTHER_SERIES
        return (
            select(DicomwebStudy)
            .where(
                DicomwebStudy.project_id == project_id,
                exists().where(series.session_id == DicomwebStudy.session_id, _has(series)),
                *where,
            )
            .order_by(DicomwebStudy.session_id)
        )
    if query.level is Level.SERIES:
        return (
            select(DicomwebSeries, DicomwebStudy)
            .join(DicomwebStudy, DicomwebStudy.session_id == DicomwebSeries.session_id)
            .where(DicomwebSeries.project_id == project_id, _has(DicomwebSeries), *where)
            .order_by(*_series_order())
        )
    return (
        select(DicomwebInstance, DicomwebSeries, DicomwebStudy)
        .join(DicomwebSeries, DicomwebSeries.id == DicomwebInstance.series_id)
        .join(DicomwebStudy, DicomwebStudy.session_id == DicomwebSeries.session_id)
        .where(DicomwebInstance.project_id == project_id, *where)
        .order_by(
            *_series_order(),
            DicomwebInstance.instance_number.is_(None),
            DicomwebInstance.instance_number,
            DicomwebInstance.id,
        )
    )


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


def _modalities_in_study(condition: Condition) -> ColumnElement[bool]:
    series = _OTHER_SERIES
    return exists().where(
        series.session_id == DicomwebStudy.session_id,
        condition_clause(series.modality, condition),
        _has(series),
    )


def _study_of(row: Any) -> DicomwebStudy:
    study: DicomwebStudy = row[-1]
    return study


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


def _facts(db: Session, session_ids: Iterable[int]) -> dict[int, _Facts]:
    ids = sorted(session_ids)
    out: dict[int, _Facts] = {i: _Facts() for i in ids}
    connection = db.connection()  # plain rows: the ORM's per-statement work is not needed
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
    row: Any, level: Level, facts: dict[int, _Facts], tags: Sequence[int], root: str
) -> JsonObject:
    study: DicomwebStudy = row[-1]
    study_facts = facts[study.session_id]
    counts = {
        NUMBER_OF_STUDY_RELATED_SERIES: study_facts.series,
        NUMBER_OF_STUDY_RELATED_INSTANCES: study_facts.instances,
    }
    url = f"{root}/studies/{quote(study.study_instance_uid)}"
    records: list[dict[str, Any]] = [study.record]
    if level is not Level.STUDY:
        series: DicomwebSeries = row[1] if level is Level.INSTANCE else row[0]
        counts[NUMBER_OF_SERIES_RELATED_INSTANCES] = study_facts.per_series.get(series.id, 0)
        url += f"/series/{quote(series.series_instance_uid)}"
        records.append(series.record)
    if level is Level.INSTANCE:
        instance: DicomwebInstance = row[0]
        url += f"/instances/{quote(instance.sop_instance_uid)}"
        records.append(instance.record)
    return qido_result(
        records,
        tags,
        retrieve_url=url,
        counts=counts,
        modalities=sorted(study_facts.modalities),
    )

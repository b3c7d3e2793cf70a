"""QIDO queries as SQL, run on a table of this test's own, on SQLite and PostgreSQL.

The expected rows of each query are written out by hand from the rows below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    exists,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from segmap.server.dicomweb.levels import Level
from segmap.server.dicomweb.matching import MultiValued, condition_clause, conditions
from segmap.server.dicomweb.query import Condition, normalise_time, parse_query

metadata = MetaData()
studies = Table(
    "studies", metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(64)),
    Column("patient_name", String(320)),
    Column("patient_id", String(64)),
    Column("accession", String(16)),
    Column("study_date", String(8)),
    Column("study_time", String(13)),
    Column("description", String(64)),
    Column("modalities", String(200)),
)  # fmt: skip
series = Table(
    "series", metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer),
    Column("modality", String(16)),
    Column("number", Integer),
)  # fmt: skip

ROWS = [
    # id, uid, name, patient id, accession, date, time, description, modalities
    (1, "1.2.1", "Doe^John", "P-100", "A1", "20240105", "083000", "CT Chest", "CT\\SEG"),
    (2, "1.2.2", "DOE^JANE", "P-101", "A2", "20240301", "101502.25", "ct chest low dose", "CT"),
    (3, "1.2.3", "Smith^Anna", "P_10%", "B1", "20231231", "235959", "MR [brain]", "MR\\SR"),
    (4, "1.2.4", "O'Brien^Seán", "Q-1", "", None, None, "", "SEG"),
    (5, "1.2.5", None, "p-100", "A10", "20240229", "1015", "PET", "PT\\CT"),
]  # fmt: skip
SERIES = [(1, 1, "CT", 2), (2, 1, "SEG", 3101), (3, 2, "CT", 2), (4, 3, "MR", 5),
          (5, 3, "SR", 6), (6, 4, "SEG", 3102), (7, 5, "PT", 1), (8, 5, "CT", 2)]  # fmt: skip


def _modality_exists(condition: Condition, name: str) -> ColumnElement[bool]:
    """ModalitiesInStudy answered from the series table, as the real index may do."""
    match = condition_clause(series.c.modality, condition, name=name)
    return exists().where(series.c.study_id == studies.c.id, match)


TARGETS: dict[str, Any] = {
    "StudyInstanceUID": studies.c.uid,
    "PatientName": studies.c.patient_name,
    "PatientID": studies.c.patient_id,
    "AccessionNumber": studies.c.accession,
    "StudyDate": studies.c.study_date,
    "StudyTime": studies.c.study_time,
    "StudyDescription": studies.c.description,
    "ModalitiesInStudy": MultiValued(studies.c.modalities),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = "sqlite://"
    else:
        url = request.getfixturevalue("pg_server").fresh_database()
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(studies.insert(), [
            dict(zip(("id", "uid", "patient_name", "patient_id", "accession", "study_date",
                      "study_time", "description", "modalities"), row, strict=True))
            for row in ROWS
        ])  # fmt: skip
        for row in ROWS:  # times are stored normalised, as the index writer must
            if row[6] is not None:
                conn.execute(
                    studies.update().where(studies.c.id == row[0]),
                    {"study_time": normalise_time(row[6])},
                )
        conn.execute(series.insert(), [
            {"id": i, "study_id": s, "modality": m, "number": n} for i, s, m, n in SERIES
        ])  # fmt: skip
    yield engine
    engine.dispose()


def _ids(
    engine: Engine, params: list[tuple[str, str]], targets: dict[str, Any] = TARGETS
) -> set[int]:
    query = parse_query(params, Level.STUDY)
    statement = select(studies.c.id).where(*conditions(query, targets))
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(statement)}


CASES = [
    ([], {1, 2, 3, 4, 5}),
    ([("StudyInstanceUID", "1.2.1,1.2.3")], {1, 3}),
    ([("StudyInstanceUID", "1.2.9")], set()),
    ([("PatientName", "doe^john")], {1}),  # PN ignores case
    ([("PatientName", "*doe*")], {1, 2}),
    ([("PatientName", "D?E^J*")], {1, 2}),
    ([("PatientName", "o'brien*")], {4}),
    ([("fuzzymatching", "true"), ("PatientName", "ann")], {3}),
    ([("PatientID", "P-100")], {1}),  # other text keeps case: not p-100
    ([("00100020", "p-*")], {5}),
    ([("PatientID", "P_1*")], {3}),  # _ and % are literal, not SQL wildcards
    ([("PatientID", "P?10%")], {3}),
    ([("PatientID", "P?1*")], {1, 2, 3}),
    ([("AccessionNumber", "A1")], {1}),
    ([("AccessionNumber", "A1*")], {1, 5}),
    ([("StudyDescription", "*chest*")], {2}),  # case-sensitive: not "CT Chest"
    ([("StudyDescription", "MR [brain]")], {3}),
    ([("StudyDescription", "*[b*")], {3}),  # [ is literal (GLOB on SQLite)
    ([("StudyDate", "20240101-20240301")], {1, 2, 5}),
    ([("StudyDate", "-20231231")], {3}),
    ([("StudyDate", "20240229")], {5}),
    ([("StudyTime", "10")], {2, 5}),  # 10:00:00 to 10:59:59.999999
    ([("StudyTime", "101502")], {2}),
    ([("StudyTime", "2359-")], {3}),
    ([("ModalitiesInStudy", "SEG")], {1, 4}),
    ([("ModalitiesInStudy", "CT,MR")], {1, 2, 3, 5}),
    ([("ModalitiesInStudy", "S")], set()),  # a code is matched whole, not as a prefix
    ([("ModalitiesInStudy", "PT"), ("PatientID", "p-100")], {5}),
    ([("AccessionNumber", "B1"), ("emptyvaluematching", "true")], {3, 4}),
]


@pytest.mark.parametrize(("params", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_matching(engine: Engine, params: list[tuple[str, str]], expected: set[int]) -> None:
    assert _ids(engine, params) == expected


def test_a_callable_target_builds_its_own_clause(engine: Engine) -> None:
    targets = {**TARGETS, "ModalitiesInStudy": _modality_exists}
    assert _ids(engine, [("ModalitiesInStudy", "SEG")], targets) == {1, 4}
    assert _ids(engine, [("ModalitiesInStudy", "SR,PT")], targets) == {3, 5}


def test_a_key_without_a_column_is_a_programming_error(engine: Engine) -> None:
    with pytest.raises(LookupError, match="StudyID"):
        _ids(engine, [("StudyID", "7")])


def test_series_numbers(engine: Engine) -> None:
    query = parse_query([("SeriesNumber", "3101"), ("Modality", "SEG,PT")], Level.SERIES)
    targets = {"SeriesNumber": series.c.number, "Modality": series.c.modality}
    with engine.connect() as conn:
        rows = conn.execute(select(series.c.id).where(*conditions(query, targets))).all()
    assert {r[0] for r in rows} == {2}


class _Base(DeclarativeBase):
    metadata = MetaData()


class _OrmStudy(_Base):
    __tablename__ = "orm_studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    modalities: Mapped[str] = mapped_column(String(200))


def test_orm_attributes_as_targets(engine: Engine) -> None:
    """The real index will map ORM classes; their attributes work as targets too."""
    _Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([_OrmStudy(id=1, patient_id="A1", modalities="CT\\SEG"),
                         _OrmStudy(id=2, patient_id="A2", modalities="MR")])  # fmt: skip
        session.commit()
        query = parse_query([("PatientID", "A*"), ("ModalitiesInStudy", "SEG")], Level.STUDY)
        targets = {
            "PatientID": _OrmStudy.patient_id,
            "ModalitiesInStudy": MultiValued(_OrmStudy.modalities),
        }
        found = session.scalars(select(_OrmStudy.id).where(*conditions(query, targets))).all()
        assert found == [1]

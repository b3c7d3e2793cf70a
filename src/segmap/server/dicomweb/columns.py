"""Which index column holds each matchable attribute, and how a DICOM value is put in it.

One mapping per level from the keywords of :data:`.levels.MATCHABLE` to the columns of
``segmap.server.db.dicomweb``; the indexer fills the columns through :func:`column_value`
and the QIDO search matches on the same columns (:mod:`.matching`), so what is stored
and what is compared always agree. ModalitiesInStudy has no column: it is computed from
the study's series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute

from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.dicomweb.levels import MATCHABLE, STORED, Level
from segmap.server.dicomweb.query import normalise_time

STUDY_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "StudyInstanceUID": DicomwebStudy.study_instance_uid,
    "PatientName": DicomwebStudy.patient_name,
    "PatientID": DicomwebStudy.patient_id,
    "AccessionNumber": DicomwebStudy.accession_number,
    "StudyDate": DicomwebStudy.study_date,
    "StudyTime": DicomwebStudy.study_time,
    "ReferringPhysicianName": DicomwebStudy.referring_physician_name,
    "StudyID": DicomwebStudy.study_id,
    "StudyDescription": DicomwebStudy.study_description,
    "PatientBirthDate": DicomwebStudy.patient_birth_date,
    "PatientSex": DicomwebStudy.patient_sex,
}
SERIES_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "SeriesInstanceUID": DicomwebSeries.series_instance_uid,
    "Modality": DicomwebSeries.modality,
    "SeriesNumber": DicomwebSeries.series_number,
    "SeriesDescription": DicomwebSeries.series_description,
    "SeriesDate": DicomwebSeries.series_date,
    "SeriesTime": DicomwebSeries.series_time,
    "PerformedProcedureStepStartDate": DicomwebSeries.pps_start_date,
    "PerformedProcedureStepStartTime": DicomwebSeries.pps_start_time,
}
INSTANCE_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "SOPInstanceUID": DicomwebInstance.sop_instance_uid,
    "SOPClassUID": DicomwebInstance.sop_class_uid,
    "InstanceNumber": DicomwebInstance.instance_number,
}
COLUMNS: dict[Level, dict[str, InstrumentedAttribute[Any]]] = {
    Level.STUDY: STUDY_COLUMNS,
    Level.SERIES: SERIES_COLUMNS,
    Level.INSTANCE: INSTANCE_COLUMNS,
}
COMPUTED = frozenset({"ModalitiesInStudy"})

_DATE = re.compile(r"[0-9]{8}")
_KEYS = {keyword: f"{attribute.tag:08X}" for keyword, attribute in MATCHABLE.items()}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def column_value(element: Mapping[str, Any] | None, keyword: str) -> str | int | None:
    """The value of ``keyword`` as its index column holds it (None: absent or empty),
    from its DICOM JSON ``element`` (as in a level record, :mod:`.dicomjson`).

    The text is the element's values joined by ``\\`` (a person name's groups by
    ``=``), as DICOM writes them. Dates that are not ``YYYYMMDD``, times that are not TM,
    numbers that are not whole are kept out (None) rather than stored in a form no query
    compares correctly.
    """
    values = element.get("Value") if element else None
    if not values:
        return None
    vr = MATCHABLE[keyword].vr
    text = "\\".join(_value_text(v) for v in values).strip()
    if not text:
        return None
    if vr == "DA":
        return text if _DATE.fullmatch(text) else None
    if vr == "TM":
        try:
            return normalise_time(text)
        except ValueError:
            return None
    if vr in ("IS", "US"):
        try:
            return int(float(text))
        except ValueError:
            return None
    return text


def level_values(record: Mapping[str, Any], level: Level) -> dict[str, Any]:
    """Column name → value for every matchable column of ``level``, from the level's
    record of one instance (:func:`.dicomjson.level_record`, which keeps every
    matchable attribute of its level)."""
    return {
        column.key: column_value(record.get(_KEYS[kw]), kw) for kw, column in COLUMNS[level].items()
    }


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # PN: its groups, the empty ones between kept
        return "=".join(value.get(g, "") for g in _PN_GROUPS[: _pn_groups(value)])
    return str(value)


def _pn_groups(value: Mapping[str, Any]) -> int:
    return max((i + 1 for i, g in enumerate(_PN_GROUPS) if g in value), default=0)


def _check_complete() -> None:
    """Every matchable attribute has a column or is computed (checked at import)."""
    mapped = {kw for columns in COLUMNS.values() for kw in columns} | COMPUTED
    missing = set(MATCHABLE) - mapped
    if missing:
        raise RuntimeError(f"matchable attributes without an index column: {sorted(missing)}")
    unrecorded = [kw for level, cols in COLUMNS.items() for kw in cols
                  if MATCHABLE[kw].tag not in STORED[level]]  # fmt: skip
    if unrecorded:  # level_values reads the columns from the level's record
        raise RuntimeError(f"index columns missing from their level's record: {unrecorded}")


_check_complete()

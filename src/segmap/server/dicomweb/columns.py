"""Which index column holds each matchable attribute, and how a DICOM value is put in it.

One mapping per level from the keywords of :data:`.levels.MATCHABLE` to the columns of
``segmap.server.db.dicomweb``; the indexer fills the columns through :func:`column_value`
and the QIDO search matches on the same columns (:mod:`.matching`), so what is stored
and what is compared always agree. ModalitiesInStudy has no column: it is computed from
the study's series.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy.orm import InstrumentedAttribute

from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.dicomweb.levels import MATCHABLE, Level
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


def column_value(ds: Dataset, keyword: str) -> str | int | None:
    """The value of ``keyword`` in ``ds`` as its index column holds it (None: absent/empty).

    Dates that are not ``YYYYMMDD``, times that are not TM, numbers that are not whole
    are kept out (None) rather than stored in a form no query compares correctly.
    """
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    vr = MATCHABLE[keyword].vr
    if isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.strip()
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


def level_values(ds: Dataset, level: Level) -> dict[str, Any]:
    """Column name → value for every matchable column of ``level``, from one instance."""
    return {column.key: column_value(ds, kw) for kw, column in COLUMNS[level].items()}


def _check_complete() -> None:
    """Every matchable attribute has a column or is computed (checked at import)."""
    mapped = {kw for columns in COLUMNS.values() for kw in columns} | COMPUTED
    missing = set(MATCHABLE) - mapped
    if missing:
        raise RuntimeError(f"matchable attributes without an index column: {sorted(missing)}")


_check_complete()

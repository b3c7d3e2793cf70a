"""Which annotations of the archive a project imports: the connection's ``filter``.

A filter maps DICOM keywords of the annotation's header to a pattern or a list of
patterns (``{"StudyDescription": "LIVER*", "Modality": ["SEG"]}``); an annotation is
imported when every keyword matches one of its patterns. Patterns match the whole value,
case-sensitively as DICOM matching does, with ``*`` (any run) and ``?`` (one character).
An empty filter imports every RTSTRUCT and SEG. Image series prefetched before any
annotation (``prefetch_images``) are judged by the study-level keys only
(:data:`STUDY_KEYWORDS`): ``Modality`` and the other series keys name annotations.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydicom.dataset import Dataset

FILTER_KEYWORDS = (
    "Modality",
    "StudyDescription",
    "SeriesDescription",
    "PatientID",
    "InstitutionName",
    "ReferringPhysicianName",
    "Manufacturer",
    "AccessionNumber",
)

STUDY_KEYWORDS = (
    "StudyDescription",
    "PatientID",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
)


def filter_problems(value: Any) -> list[str]:
    """What is wrong with a filter as given (empty when it is valid)."""
    if not isinstance(value, dict):
        return ["filter must be an object of DICOM keyword -> pattern or list of patterns"]
    problems = []
    for key, patterns in value.items():
        if key not in FILTER_KEYWORDS:
            problems.append(f"filter key {key!r} is not one of {', '.join(FILTER_KEYWORDS)}")
            continue
        items = patterns if isinstance(patterns, list) else [patterns]
        if not items or not all(isinstance(p, str) and p and len(p) <= 256 for p in items):
            problems.append(f"filter {key!r} must be a non-empty text pattern or list of them")
    return problems


def normalised(value: dict[str, Any]) -> dict[str, list[str]]:
    """A valid filter with every value a list."""
    return {k: (v if isinstance(v, list) else [v]) for k, v in value.items()}


def matches(
    value: dict[str, list[str]], ds: Dataset, keys: tuple[str, ...] = FILTER_KEYWORDS
) -> str | None:
    """None when ``ds`` passes the filter (its ``keys``), else a sentence naming the keyword
    that failed."""
    for key, patterns in value.items():
        if key not in keys:
            continue
        found = str(ds.get(key, "") or "")
        if not any(fnmatch.fnmatchcase(found, p) for p in patterns):
            return f"its {key} {found!r} matches none of {patterns} (the connection's filter)"
    return None

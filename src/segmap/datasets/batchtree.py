"""The conversions in a ``segmap batch`` output tree.

A batch writes each case into ``OUT/<case name>/`` (``mask.nii.gz``, ``report.json`` and
the image files) and every outcome into ``OUT/batch_report.json``. A case folder exists
only when its conversion succeeded (its folder receives all files or none), but a folder
from an earlier run survives a later failure of the same case: the batch report is
then what says the case failed, and such a case is skipped with that reason.

The annotator is read from the annotation file named in the report when it is still
there (SEG ``ContentCreatorName``, else ``OperatorsName``); the collection is the case
name; the session is the scan's StudyInstanceUID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segmap.datasets.errors import DatasetError
from segmap.datasets.sources import Conversion, conversion_from_report
from segmap.pipeline.batch import REPORT_NAME as BATCH_REPORT_NAME
from segmap.pipeline.convert import REPORT_NAME


@dataclass(frozen=True)
class SkippedCase:
    """A case folder of the tree that is not offered to the dataset, and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class TreeScan:
    """What a batch output tree holds: its conversions and the cases skipped."""

    root: Path
    conversions: tuple[Conversion, ...]
    skipped: tuple[SkippedCase, ...]


def scan_batch_tree(root: str | Path) -> TreeScan:
    """Every successful conversion under ``root``, in case-name order.

    Raises:
        DatasetError: ``root`` is not a folder, holds no ``report.json``, or a report is
            not readable JSON (the message names the file).
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise DatasetError(
            f"{root}: not a folder; give the output tree of 'segmap batch' (its --out) with --from"
        )
    failed = _failed_cases(root / BATCH_REPORT_NAME)
    conversions: list[Conversion] = []
    skipped: list[SkippedCase] = []
    for report in sorted(root.rglob(REPORT_NAME)):
        rel = report.parent.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # a conversion's staging folder, or a hidden copy
        key = rel.as_posix() if rel.parts else root.name
        if key in failed:
            skipped.append(
                SkippedCase(
                    key,
                    f"failed in the last batch run ({failed[key]}); "
                    "its folder is from an earlier run",
                )
            )
            continue
        data = _read_json(report)
        conversions.append(
            conversion_from_report(data, report, key=key, annotator=_annotator(data))
        )
    if not conversions and not skipped:
        raise DatasetError(
            f"{root}: no {REPORT_NAME} found; give the output tree of "
            "'segmap batch' (its --out) with --from"
        )
    return TreeScan(root, tuple(conversions), tuple(skipped))


def _failed_cases(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    data = _read_json(path)
    outcomes = data.get("outcomes") if isinstance(data, dict) else None
    if not isinstance(outcomes, list):
        raise DatasetError(
            f"{path}: no 'outcomes' list; this is not a batch report that segmap wrote"
        )
    return {
        str(o.get("name")): str(o.get("error") or "no reason given")
        for o in outcomes
        if isinstance(o, dict) and not o.get("ok")
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); convert the case again"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None


def _annotator(report: Any) -> str:
    """Who made the annotation, from its DICOM header when the file is still there."""
    try:
        path = Path(report["inputs"]["annotation"]["path"])
    except (KeyError, TypeError):
        return ""
    if not path.is_file():
        return ""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.multival import MultiValue

    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["ContentCreatorName", "OperatorsName"]
        )
    except (InvalidDicomError, OSError, ValueError):
        return ""
    for keyword in ("ContentCreatorName", "OperatorsName"):
        value = ds.get(keyword)
        if value:
            return str(value[0] if isinstance(value, MultiValue) else value).strip()
    return ""

"""Reading the header fields segmap needs from DICOM files, without their pixel data.

A folder of a few hundred slices is scanned in well under a second because only the
header is parsed (``stop_before_pixels``) and only the tags listed here are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag
from pydicom.uid import UID

from segmap.imaging.dicomvalues import SLOW, plain_value
from segmap.imaging.sop_classes import NON_SCAN_SOP_CLASSES

_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "PatientID",
    "StudyDate",
    "InstanceNumber",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SliceThickness",
    "SpacingBetweenSlices",
    "NumberOfFrames",
]


@dataclass(frozen=True)
class SliceHeader:
    """The header fields of one DICOM instance that series loading uses.

    Geometry fields are None when the tag is absent or malformed. Units: mm; positions
    and cosines are patient LPS as written in the file.
    """

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    series_description: str = ""
    series_number: int | None = None
    patient_id: str = ""
    study_date: str = ""
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    pixel_spacing: tuple[float, float] | None = None  # (row spacing dj, column spacing di)
    orientation: tuple[float, float, float, float, float, float] | None = None
    position: tuple[float, float, float] | None = None
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    number_of_frames: int = 1

    @property
    def is_scan_image(self) -> bool:
        """True for an image instance a scan is made of (not SEG, RTSTRUCT, SR, ...)."""
        return (
            self.rows is not None
            and self.columns is not None
            and self.sop_class_uid not in NON_SCAN_SOP_CLASSES
        )

    @property
    def sop_class_name(self) -> str:
        """Human name of the SOP class, e.g. ``RT Structure Set Storage``."""
        name = UID(self.sop_class_uid).name
        return name or self.sop_class_uid or "unknown SOP class"


@dataclass
class HeaderScan:
    """Headers found under some paths, and what was skipped."""

    images: list[SliceHeader] = field(default_factory=list)
    non_dicom_files: int = 0
    non_image_instances: dict[str, int] = field(default_factory=dict)

    def skip_non_image(self, header: SliceHeader) -> None:
        """Count an instance that is not a scan image under its SOP class name."""
        key = header.sop_class_name
        if header.modality:
            key = f"{header.modality} ({key})"
        self.non_image_instances[key] = self.non_image_instances.get(key, 0) + 1


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        is_multi = isinstance(value, Iterable) and not isinstance(value, str)
        items = list(value) if is_multi else [value]
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(abs(v) < 1e12 for v in out):
        return None
    return out


def _int(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


# --- values -----------------------------------------------------------------------------
# Plain values are decoded from the raw bytes (see segmap.imaging.dicomvalues: a third
# of a header scan's time otherwise); the rest go through pydicom's conversion as before.

_TAG: dict[str, tuple[int, str]] = {
    keyword: (tag, dictionary_VR(tag))
    for keyword in _TAGS
    if (tag := tag_for_keyword(keyword)) is not None
}
"""keyword -> (tag, dictionary VR) of every attribute in ``_TAGS``."""


def _text(ds: Dataset, keyword: str) -> str:
    value = plain_value(ds, *_TAG[keyword])
    if value is SLOW:
        return _str(ds, keyword)
    return value or ""


def _number(ds: Dataset, keyword: str) -> int | None:
    value = plain_value(ds, *_TAG[keyword])
    return _int(ds.get(keyword)) if value is SLOW else value


def _decimals(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    value = plain_value(ds, *_TAG[keyword])
    return _floats(ds.get(keyword) if value is SLOW else value, n)


def header_from_dataset(ds: Dataset, path: Path) -> SliceHeader:
    """Extract a :class:`SliceHeader` from an already read dataset."""
    spacing = _decimals(ds, "PixelSpacing", 2)
    orientation = _decimals(ds, "ImageOrientationPatient", 6)
    position = _decimals(ds, "ImagePositionPatient", 3)
    frames = _number(ds, "NumberOfFrames")
    thickness = _decimals(ds, "SliceThickness", 1)
    between = _decimals(ds, "SpacingBetweenSlices", 1)
    sop_class: Any = plain_value(ds, *_TAG["SOPClassUID"])
    if sop_class is SLOW:
        sop_class = ds.get("SOPClassUID")
    if sop_class is None and hasattr(ds, "file_meta"):
        sop_class = ds.file_meta.get("MediaStorageSOPClassUID")
    return SliceHeader(
        path=path,
        sop_class_uid=str(sop_class or ""),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID") or None,
        modality=_text(ds, "Modality"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_number(ds, "SeriesNumber"),
        patient_id=_text(ds, "PatientID"),
        study_date=_text(ds, "StudyDate"),
        instance_number=_number(ds, "InstanceNumber"),
        rows=_number(ds, "Rows"),
        columns=_number(ds, "Columns"),
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        orientation=(
            (
                orientation[0],
                orientation[1],
                orientation[2],
                orientation[3],
                orientation[4],
                orientation[5],
            )
            if orientation
            else None
        ),
        position=(position[0], position[1], position[2]) if position else None,
        slice_thickness=thickness[0] if thickness is not None and thickness[0] > 0 else None,
        spacing_between_slices=between[0] if between is not None and between[0] > 0 else None,
        number_of_frames=frames if frames and frames > 0 else 1,
    )


_TAG_NUMBERS: list[BaseTag | int] = [tag for tag, _ in _TAG.values()]
_LAST_TAG = max(tag for tag, _ in _TAG.values())


def _past_needed_tags(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag > _LAST_TAG


def read_header(path: Path) -> SliceHeader | None:
    """Header of the DICOM file at ``path``, or None when it is not a DICOM file."""
    try:
        # Stop after the last tag we need (DICOM orders elements by tag) rather than at
        # the pixel data: the rest of the header is a fifth of the parsing time.
        with open(path, "rb") as f:
            ds = read_partial(f, stop_when=_past_needed_tags, specific_tags=_TAG_NUMBERS)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError):
        return None
    if "SOPInstanceUID" not in ds and "SeriesInstanceUID" not in ds:
        return None
    return header_from_dataset(ds, path)


def walk_files(folder: Path) -> Iterator[Path]:
    """Every regular file under ``folder`` in a stable (sorted) order."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def scan_headers(paths: Iterable[Path]) -> HeaderScan:
    """Read the headers of ``paths``, keeping scan images and counting everything else."""
    scan = HeaderScan()
    for path in paths:
        header = read_header(path)
        if header is None:
            scan.non_dicom_files += 1
        elif header.is_scan_image:
            scan.images.append(header)
        else:
            scan.skip_non_image(header)
    return scan

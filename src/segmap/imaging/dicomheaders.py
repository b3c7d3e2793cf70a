"""Reading the header fields segmap needs from DICOM files, without their pixel data.

A folder of a few hundred slices is scanned in well under a second because only the
header is parsed (``stop_before_pixels``) and only the tags listed here are kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.hooks import hooks
from pydicom.hooks import raw_element_value as _default_raw_element_value
from pydicom.hooks import raw_element_vr as _default_raw_element_vr
from pydicom.uid import UID

# Instances that carry Rows/Columns but are not a scan an annotation can be drawn on.
NON_SCAN_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose Storage
        "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map Storage
    }
)

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


def _positive_float(value: object) -> float | None:
    f = _floats(value, 1)
    return f[0] if f is not None and f[0] > 0 else None


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


# --- reading values without pydicom's conversion -----------------------------------------
#
# pydicom turns each raw value into a DataElement holding a str subclass, a DSfloat or an
# IS, validating it on the way; for the ~20 tags of 300 slices that is about 0.2 ms per
# file, a third of a header scan. The values segmap needs are nearly always short, plain
# ASCII, so they are decoded here straight from the bytes pydicom read. A value is only
# taken this way when it is well formed for its VR -- exactly the values for which
# pydicom's conversion gives the same result and has nothing to warn about -- anything
# else (multiple values, odd characters, a VR other than the dictionary's, an element
# already converted) goes through ``ds.get`` as before, so the results are the same.

_SLOW = object()
"""Marker: this element is not plain enough; ask pydicom (``ds.get``)."""

_UI = re.compile(rb"[0-9.]{1,64}")
_CS = re.compile(rb"[A-Z0-9 _]{1,16}")
_DA = re.compile(rb"[0-9]{8}")
_LO = re.compile(rb"[\x20-\x5b\x5d-\x7e]{1,64}")  # printable ASCII, no backslash
_SH = re.compile(rb"[\x20-\x5b\x5d-\x7e]{1,16}")
_IS = re.compile(rb" *[+-]?[0-9]{1,9} *")  # 9 digits: always a valid 32-bit IS
_DS = re.compile(rb" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *")
_TEXT = {"UI": _UI, "CS": _CS, "DA": _DA, "LO": _LO, "SH": _SH}

_TAG = {
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyDate": (0x00080020, "DA"),
    "Modality": (0x00080060, "CS"),
    "SeriesDescription": (0x0008103E, "LO"),
    "PatientID": (0x00100020, "LO"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "SeriesNumber": (0x00200011, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
}
"""keyword -> (tag, dictionary VR) of every attribute read here."""


def _raw_value(ds: Dataset, keyword: str) -> Any:
    """The element's value decoded from its raw bytes; None when absent (or empty);
    ``_SLOW`` when pydicom must convert it.

    Text comes back stripped (as ``_str`` would give it), US as an int, IS as an int,
    DS as a tuple of floats.
    """
    tag, vr = _TAG[keyword]
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return None
    if not isinstance(elem, RawDataElement) or elem.VR not in (None, vr) or elem.value is None:
        return _SLOW
    raw = elem.value
    if not raw:
        return _SLOW  # empty: pydicom's empty value depends on its configuration
    if vr == "US":
        if len(raw) != 2:
            return _SLOW
        return int.from_bytes(raw, "little" if elem.is_little_endian else "big")
    raw = raw.rstrip(b" \x00") if vr in ("UI", "DS", "IS") else raw.rstrip(b"\x00")
    if vr == "DS":
        parts = raw.split(b"\\")
        if not all(len(p) <= 16 and _DS.fullmatch(p) for p in parts):
            return _SLOW
        return tuple(float(p) for p in parts)
    if vr == "IS":
        if len(raw) > 12 or not _IS.fullmatch(raw):
            return _SLOW
        return int(raw)
    if not _TEXT[vr].fullmatch(raw):
        return _SLOW
    return raw.decode("ascii").strip()


def _text(ds: Dataset, keyword: str) -> str:
    value = _raw_value(ds, keyword)
    if value is _SLOW:
        return _str(ds, keyword)
    return value or ""


def _number(ds: Dataset, keyword: str) -> int | None:
    value = _raw_value(ds, keyword)
    return _int(ds.get(keyword)) if value is _SLOW else value


def _decimals(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    value = _raw_value(ds, keyword)
    if value is _SLOW:
        return _floats(ds.get(keyword), n)
    return _floats(value, n)


def _plain_pydicom() -> bool:
    """True unless someone changed how pydicom converts raw values (then let it)."""
    return (config.data_element_callback is None
            and hooks.raw_element_value is _default_raw_element_value
            and hooks.raw_element_vr is _default_raw_element_vr)


def header_from_dataset(ds: Dataset, path: Path) -> SliceHeader:
    """Extract a :class:`SliceHeader` from an already read dataset."""
    if not _plain_pydicom():
        return _header_via_pydicom(ds, path)
    spacing = _decimals(ds, "PixelSpacing", 2)
    orientation = _decimals(ds, "ImageOrientationPatient", 6)
    position = _decimals(ds, "ImagePositionPatient", 3)
    frames = _number(ds, "NumberOfFrames")
    thickness = _decimals(ds, "SliceThickness", 1)
    between = _decimals(ds, "SpacingBetweenSlices", 1)
    sop_class: Any = _raw_value(ds, "SOPClassUID")
    if sop_class is _SLOW:
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
            (orientation[0], orientation[1], orientation[2],
             orientation[3], orientation[4], orientation[5])
            if orientation
            else None
        ),
        position=(position[0], position[1], position[2]) if position else None,
        slice_thickness=thickness[0] if thickness is not None and thickness[0] > 0 else None,
        spacing_between_slices=between[0] if between is not None and between[0] > 0 else None,
        number_of_frames=frames if frames and frames > 0 else 1,
    )


def _header_via_pydicom(ds: Dataset, path: Path) -> SliceHeader:
    """:func:`header_from_dataset` with every value converted by pydicom (the reference
    the fast path must agree with; used when pydicom's conversion was customised)."""
    spacing = _floats(ds.get("PixelSpacing"), 2)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    frames = _int(ds.get("NumberOfFrames"))
    sop_class = ds.get("SOPClassUID")
    if sop_class is None and hasattr(ds, "file_meta"):
        sop_class = ds.file_meta.get("MediaStorageSOPClassUID")
    return SliceHeader(
        path=path,
        sop_class_uid=str(sop_class or ""),
        sop_instance_uid=_str(ds, "SOPInstanceUID"),
        series_instance_uid=_str(ds, "SeriesInstanceUID"),
        study_instance_uid=_str(ds, "StudyInstanceUID"),
        frame_of_reference_uid=_str(ds, "FrameOfReferenceUID") or None,
        modality=_str(ds, "Modality"),
        series_description=_str(ds, "SeriesDescription"),
        series_number=_int(ds.get("SeriesNumber")),
        patient_id=_str(ds, "PatientID"),
        study_date=_str(ds, "StudyDate"),
        instance_number=_int(ds.get("InstanceNumber")),
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        orientation=(
            (orientation[0], orientation[1], orientation[2],
             orientation[3], orientation[4], orientation[5])
            if orientation
            else None
        ),
        position=(position[0], position[1], position[2]) if position else None,
        slice_thickness=_positive_float(ds.get("SliceThickness")),
        spacing_between_slices=_positive_float(ds.get("SpacingBetweenSlices")),
        number_of_frames=frames if frames and frames > 0 else 1,
    )


def read_header(path: Path) -> SliceHeader | None:
    """Header of the DICOM file at ``path``, or None when it is not a DICOM file."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
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

"""Whether a DICOM file is a whole, usable image instance, and the identity it carries.

For a store that receives files one by one (the web service's upload) and must refuse
what a later conversion could not read, before keeping it. Written here rather than
left to pydicom because pydicom reads a file cut short without complaint. Only headers
are decoded. Pixel data is never loaded: its element is located and its
length checked against the file size and, for uncompressed data, against
Rows x Columns x samples x frames x bits, so a file cut short is refused instead of
stored and failing later in a conversion.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.datadict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID

from segmap.errors import SegmapError
from segmap.imaging.sop_classes import CollectionKind, collection_kind
from segmap.imaging.uids import MAX_UID_LENGTH, describe_uid, uid_problem

# Values larger than this are left on disk while headers are read (bytes).
_DEFER_BYTES = 16 * 1024
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = (Tag(0x7FE0, 0x0010), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))
# The value range of the IS (Integer String) VR, PS3.5 table 6.2-1; also what a 32-bit
# database column holds (PostgreSQL's INTEGER), so a header number never overflows one.
NOT_DICOM = (
    "not a DICOM file (no 'DICM' marker after the 128-byte preamble); upload DICOM "
    "files (Part 10) or a zip of them"
)
IS_MIN = -(2**31)
IS_MAX = 2**31 - 1


class RejectedFile(SegmapError):
    """A file that is not a usable image instance; ``str()`` is the reason, for the user.

    ``collection_kind`` is set when the file is an ROI collection (RTSTRUCT or SEG), with
    ``study_instance_uid`` its study, so the caller can say where such files go.
    """

    def __init__(
        self,
        reason: str,
        collection_kind: CollectionKind | None = None,
        study_instance_uid: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.collection_kind = collection_kind
        self.study_instance_uid = study_instance_uid


@dataclass(frozen=True)
class ImageHeader:
    """The identity of one image instance and the session/scan facts it carries.

    ``frames`` is NumberOfFrames (1 for single-frame images); ``study_date`` is None when
    StudyDate is absent or not a date.
    """

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    patient_id: str
    study_date: _dt.date | None
    study_description: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    frame_of_reference_uid: str | None
    frames: int


def read_image_header(path: Path) -> ImageHeader:
    """The header of an image instance; raises :class:`RejectedFile` with the reason otherwise.

    Refused: files that are not DICOM Part 10, damaged files (unreadable headers, pixel
    data cut short), RTSTRUCT and SEG files (``collection_kind`` set), DICOM objects with
    no pixel data (reports, presentation states, DICOMDIR), missing UIDs and UIDs that
    break the UID grammar (:mod:`segmap.imaging.uids`: Study, Series, SOP Instance, SOP
    Class, Frame of Reference), and a NumberOfFrames that is no frame count. Numbers that
    only label (SeriesNumber, InstanceNumber) outside the IS range or not whole are None.
    """
    return image_header_of(_open(path), path)


def image_header_of(ds: Dataset, path: Path) -> ImageHeader:
    """:func:`read_image_header` for a dataset the caller has read from ``path`` already
    (``pydicom.dcmread`` with ``defer_size``, no value accessed yet), so a store that
    needs the header for more than this check parses each file once. Same checks,
    same refusals (a file pydicom cannot read at all is the caller's to refuse).
    """
    try:
        return _header_of(ds, path)
    except RejectedFile:
        raise
    except Exception as exc:  # pydicom converts values lazily; a bad one fails here
        raise RejectedFile(
            f"the file is damaged: its header cannot be read ({type(exc).__name__}: {exc})"
        ) from None


def _open(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, defer_size=_DEFER_BYTES)
    except InvalidDicomError:
        raise RejectedFile(NOT_DICOM) from None
    except Exception as exc:  # pydicom raises many kinds of errors for damaged files
        raise RejectedFile(
            f"the file is damaged and cannot be read ({type(exc).__name__}: {exc}); copy or "
            "export it again"
        ) from None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    """An IS attribute as an int; None when absent, not a whole number, or out of range.

    Such numbers (SeriesNumber, InstanceNumber) only order and label things, so a bad one
    is ignored rather than the file refused.
    """
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        number = float(value)  # pydicom gives IS, ISfloat ("1.0", "1e+30") or str
    except (TypeError, ValueError, OverflowError):
        return None
    if not number.is_integer() or not IS_MIN <= number <= IS_MAX:
        return None
    return int(number)


def _frames(ds: Dataset) -> int:
    """NumberOfFrames (1 when absent); refuses a value that is not a usable frame count."""
    raw = ds.get("NumberOfFrames")
    if raw is None or raw == "":
        return 1
    frames = _int(ds, "NumberOfFrames")
    if frames is None or frames < 1:
        shown = describe_uid(str(raw))
        raise RejectedFile(
            f"NumberOfFrames (0028,0008) is {shown}, not a frame count from 1 to {IS_MAX}; "
            "the file is damaged or was written wrongly: export it again"
        )
    return frames


def _check_complete(ds: Dataset, path: Path) -> None:
    """Refuse a file that ends inside one of its elements (pydicom reads it silently).

    Must run before attributes are accessed: only unconverted elements know where their
    value starts in the file.
    """
    if getattr(ds.file_meta, "TransferSyntaxUID", UID("")).is_deflated:
        return  # offsets are in the inflated stream, not the file; inflating would fail
    size = os.path.getsize(path)
    for tag in ds.keys():  # noqa: SIM118 - iterating the Dataset would convert values
        raw = ds.get_item(tag, keep_deferred=True)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != _UNDEFINED_LENGTH
            and raw.value_tell is not None
            and raw.value_tell + raw.length > size
        ):
            name = pydicom.datadict.keyword_for_tag(raw.tag) or "an element"
            raise RejectedFile(
                f"the file is damaged: it ends inside {name} ({raw.tag.group:04X},"
                f"{raw.tag.element:04X}), {raw.value_tell + raw.length - size} bytes short "
                "(truncated); copy or export it again"
            )


def _header_of(ds: Dataset, path: Path) -> ImageHeader:
    _check_complete(ds, path)
    _refuse_collections(ds)
    uids = {k: _required_uid(ds, k) for k in _UID_KEYWORDS}
    frame_of_reference = _optional_uid(ds, "FrameOfReferenceUID")
    sop_class = _optional_uid(ds, "SOPClassUID")
    frames = _frames(ds)
    _check_pixel_data(ds, path)
    return ImageHeader(
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=sop_class or "",
        modality=_text(ds, "Modality")[:16],
        patient_id=_text(ds, "PatientID")[:64],
        study_date=parse_dicom_date(_text(ds, "StudyDate")),
        study_description=_text(ds, "StudyDescription")[:255],
        series_description=_text(ds, "SeriesDescription")[:255],
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        frame_of_reference_uid=frame_of_reference,
        frames=frames,
    )


_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _where(keyword: str) -> str:
    tag = Tag(keyword)
    return f"{keyword} ({tag.group:04X},{tag.element:04X})"


def _required_uid(ds: Dataset, keyword: str) -> str:
    value = _text(ds, keyword)
    if not value:
        raise RejectedFile(f"the file is incomplete: {_where(keyword)} is missing; export it again")
    return _checked_uid(keyword, value)


def _optional_uid(ds: Dataset, keyword: str) -> str | None:
    value = _text(ds, keyword)
    return _checked_uid(keyword, value) if value else None


def _checked_uid(keyword: str, value: str) -> str:
    problem = uid_problem(value)
    if problem is not None:
        raise RejectedFile(
            f"{_where(keyword)} {describe_uid(value)} is not a DICOM UID: it {problem} "
            "(PS3.5 9.1: digits in components separated by dots, at most "
            f"{MAX_UID_LENGTH} characters); fix the file's UIDs or export it again"
        )
    return value


def _refuse_collections(ds: Dataset) -> None:
    kind = collection_kind(_text(ds, "Modality"), _text(ds, "SOPClassUID"))
    if kind is not None:
        raise RejectedFile(
            f"this is {kind.article} {kind} ROI collection, not an image",
            collection_kind=kind,
            study_instance_uid=_text(ds, "StudyInstanceUID"),
        )


def _check_pixel_data(ds: Dataset, path: Path) -> None:
    raw = next(
        (e for e in (ds.get_item(t, keep_deferred=True) for t in _PIXEL_TAGS) if e is not None),
        None,
    )
    if raw is None:
        if "Rows" in ds and "Columns" in ds:
            raise RejectedFile(
                "the file is damaged: it ends before its pixel data is complete (truncated); "
                "copy or export it again"
            )
        raise RejectedFile(f"not an image: this {_sop_class_name(ds)} holds no pixel data")
    if not isinstance(raw, RawDataElement) or raw.length == _UNDEFINED_LENGTH:
        return  # already decoded, or encapsulated (pydicom found its end delimiter)
    present = raw.length
    deflated = getattr(ds.file_meta, "TransferSyntaxUID", UID("")).is_deflated
    if raw.value is not None:
        present = len(raw.value)
    elif not deflated and raw.value_tell is not None:
        present = min(raw.length, max(os.path.getsize(path) - raw.value_tell, 0))
    if present < raw.length:
        raise RejectedFile(
            f"the file is damaged: its pixel data is cut short ({present} of {raw.length} "
            "bytes present); copy or export it again"
        )
    expected = _native_pixel_bytes(ds)
    if expected is not None and raw.length < expected:
        raise RejectedFile(
            f"the file is damaged: its pixel data holds {raw.length} bytes but Rows x Columns "
            f"x SamplesPerPixel x NumberOfFrames x BitsAllocated needs {expected}"
        )


def _native_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes uncompressed pixel data must hold, or None when compressed or not computable."""
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if syntax is None or UID(syntax).is_compressed:
        return None
    values = [_int(ds, k) for k in ("Rows", "Columns", "BitsAllocated")]
    if any(v is None or v <= 0 for v in values):
        return None
    rows, cols, bits = (int(v or 0) for v in values)
    samples = _int(ds, "SamplesPerPixel") or 1
    frames = _int(ds, "NumberOfFrames") or 1
    return (rows * cols * samples * frames * bits + 7) // 8


def _sop_class_name(ds: Dataset) -> str:
    sop_class = _text(ds, "SOPClassUID")
    if not sop_class:
        return "DICOM object"
    name = UID(sop_class).name
    return name if name and name != sop_class else f"object of SOP class {sop_class}"


def parse_dicom_date(text: str) -> _dt.date | None:
    """A DICOM DA value (``YYYYMMDD``, or the old ``YYYY.MM.DD``) as a date; None if invalid."""
    digits = text.strip().replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None

"""Header extraction: plain values decoded from pydicom's raw bytes (dicomvalues) give
exactly what pydicom's own conversion gives, for plain values and for every odd one.

The reference is ``header_via_pydicom`` below, written here from pydicom alone (no helper
of the module under test): every value read through ``ds.get`` and judged by the rules
of :class:`SliceHeader`. Each case builds two identical datasets of raw elements (one per
side, since reading a value through pydicom converts it in place) and compares the two
headers, or the two exceptions when pydicom refuses a value.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag

from dicom_factory import SeriesSpec, write_series
from segmap.imaging import dicomheaders as dh
from segmap.imaging.dicomheaders import SliceHeader
from segmap.imaging.grid import VoxelGrid

KEYWORDS = (
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
)
"""The attributes a :class:`SliceHeader` is made of."""

TAG_VR: dict[str, tuple[int, str]] = {}
for _keyword in KEYWORDS:
    _tag = tag_for_keyword(_keyword)
    assert _tag is not None, _keyword
    TAG_VR[_keyword] = (_tag, dictionary_VR(_tag))

LARGEST_MM = 1e12
"""A coordinate or spacing this large (or not finite) is taken as malformed, not as mm."""


def ref_numbers(value: object, n: int) -> tuple[float, ...] | None:
    """Exactly ``n`` finite numbers below ``LARGEST_MM``, else None."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else value
    out = []
    try:
        for item in items:  # type: ignore[union-attr]
            out.append(float(item))
    except (TypeError, ValueError):
        return None
    ok = len(out) == n and all(math.isfinite(v) and abs(v) < LARGEST_MM for v in out)
    return tuple(out) if ok else None


def ref_whole(value: object) -> int | None:
    """An integer written as text, else None (absent, empty or not a whole number)."""
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def ref_text(ds: Dataset, keyword: str) -> str:
    """The value as text without surrounding spaces; "" when absent."""
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def header_via_pydicom(ds: Dataset, path: Path) -> SliceHeader:
    """The reference: every value converted by pydicom."""
    spacing = ref_numbers(ds.get("PixelSpacing"), 2)
    orientation = ref_numbers(ds.get("ImageOrientationPatient"), 6)
    position = ref_numbers(ds.get("ImagePositionPatient"), 3)
    thickness = ref_numbers(ds.get("SliceThickness"), 1)
    between = ref_numbers(ds.get("SpacingBetweenSlices"), 1)
    frames = ref_whole(ds.get("NumberOfFrames"))
    sop_class = ds.get("SOPClassUID")
    if sop_class is None and hasattr(ds, "file_meta"):
        sop_class = ds.file_meta.get("MediaStorageSOPClassUID")
    return SliceHeader(
        path=path,
        sop_class_uid=str(sop_class or ""),
        sop_instance_uid=ref_text(ds, "SOPInstanceUID"),
        series_instance_uid=ref_text(ds, "SeriesInstanceUID"),
        study_instance_uid=ref_text(ds, "StudyInstanceUID"),
        frame_of_reference_uid=ref_text(ds, "FrameOfReferenceUID") or None,
        modality=ref_text(ds, "Modality"),
        series_description=ref_text(ds, "SeriesDescription"),
        series_number=ref_whole(ds.get("SeriesNumber")),
        patient_id=ref_text(ds, "PatientID"),
        study_date=ref_text(ds, "StudyDate"),
        instance_number=ref_whole(ds.get("InstanceNumber")),
        rows=ref_whole(ds.get("Rows")),
        columns=ref_whole(ds.get("Columns")),
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
        slice_thickness=thickness[0] if thickness and thickness[0] > 0 else None,
        spacing_between_slices=between[0] if between and between[0] > 0 else None,
        number_of_frames=frames if frames and frames > 0 else 1,
    )


def _dataset(
    raw: dict[str, bytes],
    *,
    explicit: bool,
    little: bool,
    charset: bytes | None,
    meta_sop_class: str | None,
) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds[0x00080005] = RawDataElement(
            Tag(0x00080005),
            "CS" if explicit else None,
            len(charset),
            charset,
            0,
            not explicit,
            little,
        )
    for keyword, value in raw.items():
        tag, vr = TAG_VR[keyword]
        ds[tag] = RawDataElement(
            Tag(tag), vr if explicit else None, len(value), value, 0, not explicit, little
        )
    if meta_sop_class is not None:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = meta_sop_class
    return ds


def _outcome(fn: object, ds: Dataset) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(ds, Path("f.dcm"))  # type: ignore[operator]
    except Exception as e:  # the fast path must fail the same way pydicom does
        return (type(e), str(e))


def _padded(b: bytes) -> bytes:
    return b + b" " if len(b) % 2 else b


_NUMBERS = [
    b"1",
    b"-2.5",
    b" 0.8",
    b"1e3 ",
    b"+.5",
    b"3.",
    b"1.0\\2.0",
    b"nan",
    b"inf",
    b"1_0",
    b"abc",
    b"",
    b"1.2.3",
    b"12345678901234567",
    b"-204.4\\-204.4\\-86.875",
    b"1\\0\\0\\0\\1\\0",
    b"007",
    b"2147483648",
    b"1.5",
    b" 12 ",
    b"\x00",
]
_TEXTS = [
    b"CT",
    b"ct",
    b"MR ",
    b"",
    b"Synthetic CT",
    b"a\\b",
    b"caf\xc3\xa9",
    b"\x1b$B",
    b"2.25.123",
    b"1.2.840.10008.5.1.4.1.1.2\x00",
    b"20240102",
    b"2024-01-02",
    b" x",
    b"A" * 70,
    b"\t",
]

_values = {
    "DS": st.one_of(
        st.sampled_from(_NUMBERS), st.text("0123456789.+-eE \\", max_size=20).map(str.encode)
    ),
    "IS": st.one_of(
        st.sampled_from(_NUMBERS), st.text("0123456789+- \\", max_size=14).map(str.encode)
    ),
    "US": st.binary(max_size=4),
    "text": st.one_of(st.sampled_from(_TEXTS + _NUMBERS), st.binary(max_size=20)),
}


def _strategy(keyword: str) -> st.SearchStrategy[bytes]:
    vr = TAG_VR[keyword][1]
    return _values[vr] if vr in _values else _values["text"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.fixed_dictionaries({}, optional={k: _strategy(k) for k in KEYWORDS}),
    explicit=st.booleans(),
    little=st.booleans(),
    pad=st.booleans(),
    charset=st.sampled_from([None, b"ISO_IR 192", b"ISO_IR 13", b"ISO 2022 IR 87", b"GB18030"]),
    meta_sop_class=st.sampled_from([None, "1.2.840.10008.5.1.4.1.1.2"]),
)
def test_fast_path_agrees_with_pydicom(
    raw: dict[str, bytes],
    explicit: bool,
    little: bool,
    pad: bool,
    charset: bytes | None,
    meta_sop_class: str | None,
) -> None:
    if pad:
        raw = {k: _padded(v) for k, v in raw.items()}
    little = little or not explicit  # implicit VR is always little endian
    args = {
        "explicit": explicit,
        "little": little,
        "charset": charset,
        "meta_sop_class": meta_sop_class,
    }
    fast = _outcome(dh.header_from_dataset, _dataset(raw, **args))
    slow = _outcome(header_via_pydicom, _dataset(raw, **args))
    assert fast == slow


def test_real_files_agree(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((4, 3, 5), (0.7, 0.9, 2.5), (-10.0, 20.0, 30.5), np.eye(3))
    paths = write_series(
        tmp_path,
        grid,
        np.zeros(grid.array_shape, np.int16),
        SeriesSpec(series_description="Café résumé"),
    )

    def read(path: Path) -> Dataset:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(KEYWORDS))

    for path in paths:
        fast = dh.header_from_dataset(read(path), path)
        slow = header_via_pydicom(read(path), path)
        assert fast == slow
        # read_header stops after the last needed tag instead of at the pixel data.
        assert dh.read_header(path) == header_via_pydicom(
            pydicom.dcmread(path, stop_before_pixels=True), path
        )
        assert fast.rows == 3 and fast.columns == 4 and fast.pixel_spacing == (0.9, 0.7)
        assert fast.series_description == "Café résumé"


def test_customised_pydicom_conversion_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A data_element_callback or hook registered by the caller still sees every value."""
    seen: list[int] = []

    def callback(raw: RawDataElement, **kwargs: object) -> RawDataElement:
        seen.append(int(raw.tag))
        return raw

    monkeypatch.setattr(pydicom.config, "data_element_callback", callback)
    ds = _dataset(
        {"Rows": b"\x00\x02", "Modality": b"CT"},
        explicit=True,
        little=True,
        charset=None,
        meta_sop_class=None,
    )
    header = dh.header_from_dataset(ds, Path("f.dcm"))
    assert header.rows == 512 and header.modality == "CT"
    assert 0x00280010 in seen and 0x00080060 in seen


_ANNOTATION_TEXT = {
    "ReferencedSOPInstanceUID": "UI",
    "ContourGeometricType": "CS",
    "ROIName": "LO",
    "StructureSetLabel": "SH",
    "StructureSetDate": "DA",
}


@settings(max_examples=300, deadline=None)
@given(
    keyword=st.sampled_from(sorted(_ANNOTATION_TEXT)),
    value=_values["text"],
    explicit=st.booleans(),
    charset=st.sampled_from([None, b"ISO_IR 100", b"ISO_IR 192", b"ISO 2022 IR 13"]),
)
def test_annotation_text_agrees_with_pydicom(
    keyword: str, value: bytes, explicit: bool, charset: bytes | None
) -> None:
    """``annotations._dicom.text`` (plain values decoded by dicomvalues) equals what it
    was before: ``str(ds.get(keyword)).strip()``, or "" when absent."""
    from segmap.annotations._dicom import text

    def build() -> Dataset:
        ds = Dataset()
        if charset is not None:
            ds[0x00080005] = RawDataElement(
                Tag(0x00080005),
                "CS" if explicit else None,
                len(charset),
                charset,
                0,
                not explicit,
                True,
            )
        tag = tag_for_keyword(keyword)
        assert dictionary_VR(tag) == _ANNOTATION_TEXT[keyword]
        ds[tag] = RawDataElement(
            Tag(tag),
            _ANNOTATION_TEXT[keyword] if explicit else None,
            len(value),
            value,
            0,
            not explicit,
            True,
        )
        return ds

    def reference(ds: Dataset) -> str:
        got = ds.get(keyword)
        return "" if got is None else str(got).strip()

    assert _outcome(lambda ds, _: text(ds, keyword), build()) == _outcome(
        lambda ds, _: reference(ds), build()
    )

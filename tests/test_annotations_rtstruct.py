"""read_rtstruct, check_frame_of_reference and contours_on_missing_slices.

Real files: rt-utils' MIM RTSTRUCT (12 contours, those at z=70 on a slice missing from
ct/) and the RTSTRUCT whose frame of reference does not match the CT (SOURCE.txt).
Damaged files are made here by editing a copy of the real one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from segmap.annotations.info import read_annotation_info
from segmap.annotations.rtstruct import (
    check_frame_of_reference,
    contours_on_missing_slices,
    read_rtstruct,
)
from segmap.annotations.seg import read_seg
from segmap.errors import AnnotationError, SegmapError
from segmap.imaging.series import load_series

RT = "rtutils-mim-rtstruct"


@pytest.fixture(scope="module")
def mim(testdata: Path) -> Path:
    return testdata / RT / "rtstruct" / "dummy_rt_MIM.dcm"


@pytest.fixture(scope="module")
def mim_ds(mim: Path) -> Dataset:
    return pydicom.dcmread(mim)


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_mim_rois_and_contours(mim: Path) -> None:
    info, regions = read_rtstruct(mim)
    assert info.modality == "RTSTRUCT" and info.manufacturer.startswith("MIM")
    assert [(r.number, r.name) for r in regions] == [(n, f"ROI-{n}") for n in range(1, 5)]
    contours = [c for r in regions for c in r.contours]
    assert len(contours) == 12
    assert {c.geometric_type for c in contours} == {"CLOSED_PLANAR"}
    for r in regions:
        zs = sorted({float(z) for c in r.contours for z in np.unique(c.points_lps[:, 2])})
        assert zs == [60.0, 65.0, 70.0]
        assert r.frame_of_reference_uid == info.frame_of_reference_uid


def test_mim_points_match_file_values(mim: Path, mim_ds: Dataset) -> None:
    """Vertices are (N, 3) float64 in file order, N = NumberOfContourPoints."""
    _, regions = read_rtstruct(mim)
    by_number = {r.number: r for r in regions}
    for roi_contour in mim_ds.ROIContourSequence:
        region = by_number[int(roi_contour.ReferencedROINumber)]
        assert region.color_rgb == tuple(int(v) for v in roi_contour.ROIDisplayColor)
        for item, contour in zip(roi_contour.ContourSequence, region.contours, strict=True):
            expected = np.array([float(v) for v in item.ContourData]).reshape(-1, 3)
            assert contour.points_lps.dtype == np.float64
            assert contour.points_lps.shape == (int(item.NumberOfContourPoints), 3)
            assert np.array_equal(contour.points_lps, expected)
            ref = item.ContourImageSequence[0].ReferencedSOPInstanceUID
            assert contour.referenced_sop_instance_uid == ref


def test_contours_on_missing_slice_are_counted(testdata: Path, mim: Path) -> None:
    series = load_series(testdata / RT / "ct")
    info, regions = read_rtstruct(mim)
    check_frame_of_reference(info, series)  # same frame of reference: no error
    missing = contours_on_missing_slices(regions, series)
    # One contour per ROI lies at z=70, on an image not included in ct/.
    assert missing == {1: 1, 2: 1, 3: 1, 4: 1}
    present = set(series.sop_instance_uids)
    for r in regions:
        for c in r.contours:
            on_missing = c.referenced_sop_instance_uid not in present
            assert on_missing == bool(np.all(c.points_lps[:, 2] == 70.0))


def test_info_references_the_ct(testdata: Path, mim: Path) -> None:
    series = load_series(testdata / RT / "ct")
    info = read_annotation_info(mim)
    assert info.referenced_series_uids == (series.series_instance_uid,)
    assert set(series.sop_instance_uids) <= set(info.referenced_sop_instance_uids)
    assert info.frame_of_reference_uid == series.frame_of_reference_uid


def test_frame_of_reference_mismatch_is_a_clear_error(testdata: Path) -> None:
    path = testdata / RT / "rtstruct" / "rt_qurit_FoR_mismatch.dcm"
    series = load_series(testdata / RT / "ct")
    info, regions = read_rtstruct(path)
    assert len(regions) == 1 and len(regions[0].contours) == 2
    with pytest.raises(AnnotationError) as e:
        check_frame_of_reference(info, series)
    assert isinstance(e.value, SegmapError)
    msg = str(e.value)
    ds = pydicom.dcmread(path)
    rt_for = str(ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    assert rt_for != series.frame_of_reference_uid
    assert rt_for in msg and str(series.frame_of_reference_uid) in msg
    assert str(path) in msg and str(testdata / RT / "ct") in msg
    assert "Use the image series the annotation was drawn on" in msg


def test_roi_without_contours_and_missing_optional_tags(tmp_path: Path, mim_ds: Dataset) -> None:
    ds = copy.deepcopy(mim_ds)
    del ds.ROIContourSequence[1].ContourSequence  # ROI-2 keeps no contour
    del ds.ROIContourSequence[0].ROIDisplayColor
    del ds.ROIContourSequence[2].ContourSequence[0].ContourImageSequence
    ds.ROIContourSequence = ds.ROIContourSequence[:3]  # ROI-4 has no ROIContour item
    del ds.StructureSetROISequence[0].ROIName
    info, regions = read_rtstruct(save(ds, tmp_path / "rt.dcm"))
    by_number = {r.number: r for r in regions}
    assert sorted(by_number) == [1, 2, 3, 4]
    assert by_number[1].name == "" and by_number[1].color_rgb is None
    assert by_number[2].contours == () and by_number[4].contours == ()
    assert by_number[3].contours[0].referenced_sop_instance_uid is None
    assert len(by_number[3].contours) == 3


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda ds: setattr(
                ds.ROIContourSequence[0].ContourSequence[1], "ContourData", [1.0, 2.0, 3.0, 4.0]
            ),
            "ContourData (3006,0050) of ROI 1, contour 2",
        ),
        (
            lambda ds: delattr(ds.ROIContourSequence[2].ContourSequence[0], "ContourData"),
            "ContourData (3006,0050) is missing in ROI 3, contour 1",
        ),
        (lambda ds: delattr(ds, "StructureSetROISequence"), "StructureSetROISequence (3006,0020)"),
        (
            lambda ds: delattr(ds.ROIContourSequence[1].ContourSequence[0], "ContourGeometricType"),
            "ContourGeometricType (3006,0042) is missing in ROI 2, contour 1",
        ),
        (
            lambda ds: delattr(ds.StructureSetROISequence[3], "ROINumber"),
            "ROINumber (3006,0022) is missing in item 4 of StructureSetROISequence",
        ),
    ],
)
def test_damaged_rtstruct_names_file_and_tag(
    tmp_path: Path, mim_ds: Dataset, edit: object, expected: str
) -> None:
    ds = copy.deepcopy(mim_ds)
    edit(ds)  # type: ignore[operator]
    path = save(ds, tmp_path / "damaged.dcm")
    with pytest.raises(AnnotationError) as e:
        read_rtstruct(path)
    assert str(path) in str(e.value)
    assert expected in str(e.value)


def test_non_numeric_contour_data(tmp_path: Path, mim: Path) -> None:
    # Write a valid file, then corrupt one coordinate's characters in place so pydicom
    # reads the element raw, as it would from a damaged file.
    ds = pydicom.dcmread(mim)
    ds.ROIContourSequence[3].ContourSequence[2].ContourData[4] = 123.25
    path = save(ds, tmp_path / "nan.dcm")
    raw = path.read_bytes()
    assert raw.count(b"123.25") == 1
    path.write_bytes(raw.replace(b"123.25", b"12x.25"))
    with pytest.raises(AnnotationError) as e:
        read_rtstruct(path)
    msg = str(e.value)
    assert str(path) in msg and "ContourData (3006,0050) of ROI 4, contour 3" in msg
    assert "not a number" in msg


def test_not_an_annotation(testdata: Path, tmp_path: Path, mim: Path) -> None:
    ct = testdata / RT / "ct" / "ct_1.dcm"
    for reader in (read_annotation_info, read_rtstruct):
        with pytest.raises(AnnotationError, match="Modality is 'CT'"):
            reader(ct)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("Liver=1\n")
    with pytest.raises(AnnotationError, match="not a DICOM file"):
        read_rtstruct(text_file)
    with pytest.raises(AnnotationError, match="no such file"):
        read_rtstruct(tmp_path / "absent.dcm")
    series = load_series(testdata / RT / "ct")
    with pytest.raises(AnnotationError, match="not a SEG"):
        read_seg(mim, series)
    seg = testdata / "dcmqi-ct3slice-seg" / "seg" / "liver.dcm"
    with pytest.raises(AnnotationError, match="not an RTSTRUCT"):
        read_rtstruct(seg)


def test_truncated_file(tmp_path: Path, mim: Path) -> None:
    raw = mim.read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AnnotationError) as e:
        read_rtstruct(path)
    assert str(path) in str(e.value)


def test_contour_data_is_parsed_from_raw_bytes(mim: Path) -> None:
    """The fast path reads undecoded ContourData; values equal pydicom's own decoding."""
    ds = pydicom.dcmread(mim)
    item = ds.ROIContourSequence[0].ContourSequence[0]
    raw = item.get_item(Tag("ContourData"))
    assert isinstance(raw.value, bytes)  # still raw: the reader must parse it itself
    _, regions = read_rtstruct(mim)
    expected = np.array([float(v) for v in item.ContourData])
    assert np.array_equal(regions[0].contours[0].points_lps.ravel(), expected)

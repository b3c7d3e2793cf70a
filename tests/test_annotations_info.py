"""read_annotation_info: identity and references from the header of every real file.

SOURCE.txt of each folder says which image files every SEG references (all of them,
except the sparse labelmaps, which reference slices 1 and 3 only).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from segmap.annotations.info import read_annotation_info
from segmap.errors import AnnotationError

SEGS = [
    ("dcmqi-ct3slice-seg/seg/liver.dcm", "dcmqi-ct3slice-seg/ct", "BINARY"),
    ("dcmqi-ct3slice-seg/seg/partial_overlaps.dcm", "dcmqi-ct3slice-seg/ct", "BINARY"),
    (
        "dcmqi-tiny-nonsquare-seg/23x38x3/seg/label.seg.dcm",
        "dcmqi-tiny-nonsquare-seg/23x38x3/image",
        "BINARY",
    ),
    (
        "dcmqi-tiny-nonsquare-seg/24x38x3/seg/label.seg.dcm",
        "dcmqi-tiny-nonsquare-seg/24x38x3/image",
        "BINARY",
    ),
    (
        "highdicom-pydicom-ct2-seg/seg/seg_image_ct_binary_overlap.dcm",
        "highdicom-pydicom-ct2-seg/ct2",
        "BINARY",
    ),
    (
        "highdicom-pydicom-ct2-seg/seg/seg_image_ct_true_fractional.dcm",
        "highdicom-pydicom-ct2-seg/ct2",
        "FRACTIONAL",
    ),
    (
        "highdicom-pydicom-ct2-seg/seg/seg_image_ct_binary_single_frame.dcm",
        "highdicom-pydicom-ct2-seg/ct_small",
        "BINARY",
    ),
]


def image_headers(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.glob("*.dcm"))]


@pytest.mark.parametrize(("seg", "images", "seg_type"), SEGS)
def test_seg_references_its_images(testdata: Path, seg: str, images: str, seg_type: str) -> None:
    info = read_annotation_info(testdata / seg)
    headers = image_headers(testdata / images)
    ds = pydicom.dcmread(testdata / seg, stop_before_pixels=True)
    assert info.modality == "SEG" and info.segmentation_type == seg_type
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert info.series_instance_uid == ds.SeriesInstanceUID
    assert info.frame_of_reference_uid == headers[0].FrameOfReferenceUID
    assert info.referenced_series_uids == (headers[0].SeriesInstanceUID,)
    assert set(info.referenced_sop_instance_uids) == {h.SOPInstanceUID for h in headers}


@pytest.mark.parametrize("name", ["sparse-labelmap-noppv.dcm", "sparse-labelmap-ppv5.dcm"])
def test_sparse_labelmap_references_first_and_last_slice(testdata: Path, name: str) -> None:
    folder = testdata / "dcmqi-tiny-nonsquare-seg" / "24x38x3"
    info = read_annotation_info(folder / "seg" / name)
    assert info.segmentation_type == "LABELMAP"
    uids = {
        f.name: pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
        for f in (folder / "image").glob("*.dcm")
    }
    assert set(info.referenced_sop_instance_uids) == {uids["IMG0001.dcm"], uids["IMG0003.dcm"]}


def test_rtstruct_instances_without_series_list(testdata: Path, tmp_path: Path) -> None:
    """Without RTReferencedSeriesSequence the contours' image references remain."""
    ds = pydicom.dcmread(testdata / "rtutils-mim-rtstruct" / "rtstruct" / "dummy_rt_MIM.dcm")
    expected = {
        img.ReferencedSOPInstanceUID
        for rc in ds.ROIContourSequence
        for c in rc.ContourSequence
        for img in c.ContourImageSequence
    }
    del ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence
    ds.save_as(tmp_path / "rt.dcm")
    info = read_annotation_info(tmp_path / "rt.dcm")
    assert info.referenced_series_uids == ()
    assert set(info.referenced_sop_instance_uids) == expected
    # The ROIs still name their frame of reference.
    roi = ds.StructureSetROISequence[0]
    assert info.frame_of_reference_uid == roi.ReferencedFrameOfReferenceUID


def test_header_only(testdata: Path, tmp_path: Path) -> None:
    """Pixel data is never read: a SEG cut off inside its pixel data still gives its info."""
    src = testdata / "dcmqi-ct3slice-seg" / "seg" / "liver.dcm"
    raw = src.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: len(raw) - 50_000])
    assert (
        read_annotation_info(cut).referenced_series_uids
        == read_annotation_info(src).referenced_series_uids
    )


def test_image_is_not_an_annotation(testdata: Path) -> None:
    with pytest.raises(AnnotationError, match="RTSTRUCT or SEG"):
        read_annotation_info(testdata / "dcmqi-ct3slice-seg" / "ct" / "01.dcm")


def test_surface_segmentation_is_refused(testdata: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(testdata / "dcmqi-ct3slice-seg" / "seg" / "liver.dcm")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.5"  # Surface Segmentation Storage
    ds.save_as(tmp_path / "surface.dcm")
    with pytest.raises(AnnotationError, match="surface segmentation"):
        read_annotation_info(tmp_path / "surface.dcm")

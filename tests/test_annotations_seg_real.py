"""read_seg on the real SEG files in shared/testdata.

Expected counts come from each folder's SOURCE.txt (checked there against the source
repositories' own ground truth) or from an independent decode written here: pydicom's
pixel_array (or a plain bit unpacking) with frames mapped to image files through their
ReferencedSOPInstanceUID, and image z read from the image headers.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest

from segmap.annotations.seg import read_seg
from segmap.annotations.types import MaskRegion
from segmap.errors import AnnotationError
from segmap.imaging.series import DicomSeries, load_series

CT3 = "dcmqi-ct3slice-seg"
TINY = "dcmqi-tiny-nonsquare-seg"
HD = "highdicom-pydicom-ct2-seg"


def per_slice_by_z(region: MaskRegion, series: DicomSeries) -> list[int]:
    """Voxels of a region on each image file's plane, files in ascending patient z."""
    full = region.mask.to_full()
    order = sorted(range(len(series.files)), key=lambda n: series.positions_lps[n][2])
    return [int(full[series.k_of(n)].sum()) for n in order]


def image_z_by_uid(folder: Path) -> dict[str, float]:
    out = {}
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = float(ds.ImagePositionPatient[2])
    return out


def independent_frames(seg_path: Path) -> list[tuple[int | None, str, npt.NDArray[np.int64]]]:
    """(segment number or None, source SOPInstanceUID, frame pixels) for every frame."""
    ds = pydicom.dcmread(seg_path)
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    out = []
    for group, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        seg = None
        if "SegmentIdentificationSequence" in group:
            seg = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        out.append((seg, uid, frame.astype(np.int64)))
    return out


def by_number(regions: list[MaskRegion]) -> dict[int, MaskRegion]:
    return {r.number: r for r in regions}


# --- dcmqi ct-3slice -----------------------------------------------------------------


def test_liver_counts_per_slice(testdata: Path) -> None:
    series = load_series(testdata / CT3 / "ct")
    info, regions = read_seg(testdata / CT3 / "seg" / "liver.dcm", series)
    assert info.modality == "SEG" and info.segmentation_type == "BINARY"
    assert [r.name for r in regions] == ["Liver"]
    liver = regions[0]
    assert liver.mask.voxel_count == 107098
    assert per_slice_by_z(liver, series) == [36233, 35645, 35220]
    assert liver.frames_used == 3 and liver.frames_skipped == 0 and liver.frames_resampled == 0


def test_partial_overlaps_counts_and_overlaps(testdata: Path) -> None:
    series = load_series(testdata / CT3 / "ct")
    seg_path = testdata / CT3 / "seg" / "partial_overlaps.dcm"
    _, regions = read_seg(seg_path, series)
    assert [r.name for r in regions] == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]
    counts = [r.mask.voxel_count for r in regions]
    assert counts == [9602, 11888, 10743, 6693, 4713]

    # Independent pairwise overlaps: frames keyed by (segment, source image).
    frames: dict[tuple[int, str], npt.NDArray[np.bool_]] = {}
    for seg, uid, px in independent_frames(seg_path):
        assert seg is not None
        frames[(seg, uid)] = px != 0
    uids = set(image_z_by_uid(testdata / CT3 / "ct"))
    found = by_number(regions)
    overlapping = 0
    for a, b in combinations(range(1, 6), 2):
        expected = sum(
            int(np.count_nonzero(frames[(a, u)] & frames[(b, u)]))
            for u in uids
            if (a, u) in frames and (b, u) in frames
        )
        assert found[a].mask.intersection_count(found[b].mask) == expected
        overlapping += expected > 0
    assert overlapping > 0, "SOURCE.txt says these segments overlap"


# --- dcmqi tiny non-square -----------------------------------------------------------


def test_non_byte_aligned_binary_frames(testdata: Path) -> None:
    # 23 x 38 = 874 pixels per frame: frames 2 and 3 start in the middle of a byte.
    series = load_series(testdata / TINY / "23x38x3" / "image")
    assert series.grid.size[:2] == (23, 38)
    _, regions = read_seg(testdata / TINY / "23x38x3" / "seg" / "label.seg.dcm", series)
    assert regions[0].mask.voxel_count == 322
    assert per_slice_by_z(regions[0], series) == [4, 314, 4]


def test_non_square_24_columns(testdata: Path) -> None:
    series = load_series(testdata / TINY / "24x38x3" / "image")
    _, regions = read_seg(testdata / TINY / "24x38x3" / "seg" / "label.seg.dcm", series)
    assert regions[0].mask.voxel_count == 315
    assert per_slice_by_z(regions[0], series) == [0, 315, 0]


def test_rows_and_columns_not_transposed(testdata: Path) -> None:
    """Each frame's pixels land at [j=row, i=column], as an independent decode says."""
    series = load_series(testdata / TINY / "23x38x3" / "image")
    seg_path = testdata / TINY / "23x38x3" / "seg" / "label.seg.dcm"
    _, regions = read_seg(seg_path, series)
    full = regions[0].mask.to_full()
    for _, uid, px in independent_frames(seg_path):
        k = series.slice_index_of(uid)
        assert k is not None
        assert px.shape == (38, 23)
        assert np.array_equal(full[k], px != 0)


@pytest.mark.parametrize("name", ["sparse-labelmap-noppv.dcm", "sparse-labelmap-ppv5.dcm"])
def test_sparse_labelmap_missing_middle_frame(testdata: Path, name: str) -> None:
    folder = testdata / TINY / "24x38x3"
    series = load_series(folder / "image")
    seg_path = folder / "seg" / name
    info, regions = read_seg(seg_path, series)
    assert info.segmentation_type == "LABELMAP"
    # Segment 0 (Background) is not a region.
    assert [(r.number, r.name) for r in regions] == [(1, "Liver")]

    z_of = image_z_by_uid(folder / "image")
    truth_by_z = dict.fromkeys(sorted(z_of.values()), 0)
    for seg, uid, px in independent_frames(seg_path):
        assert seg is None
        truth_by_z[z_of[uid]] += int(np.count_nonzero(px == 1))
    expected = [truth_by_z[z] for z in sorted(truth_by_z)]
    assert expected[1] == 0, "SOURCE.txt: the middle slice's frame is omitted"
    assert per_slice_by_z(regions[0], series) == expected
    assert regions[0].mask.voxel_count == sum(expected) > 0
    assert regions[0].frames_used == 2


# --- highdicom SEGs on pydicom's ct2 (irregular spacing) ------------------------------


@pytest.fixture(scope="module")
def ct2(testdata: Path) -> DicomSeries:
    # One slice lies ~200 mm from the others: the imaging fix-up puts the four files on a
    # regular grid with empty planes between.
    return load_series(testdata / HD / "ct2", fixup=True)


@pytest.mark.parametrize("name", ["seg_image_ct_binary.dcm", "seg_image_ct_binary_fractional.dcm"])
def test_ct2_binary_per_slice(testdata: Path, ct2: DicomSeries, name: str) -> None:
    _, regions = read_seg(testdata / HD / "seg" / name, ct2)
    assert per_slice_by_z(regions[0], ct2) == [0, 127, 256, 255]
    assert regions[0].mask.voxel_count == 638


def test_ct2_true_fractional_any_fraction(testdata: Path, ct2: DicomSeries) -> None:
    # The smallest positive fraction a 0..255 store can hold keeps every non-zero pixel.
    _, regions = read_seg(
        testdata / HD / "seg" / "seg_image_ct_true_fractional.dcm", ct2, threshold=1 / 255
    )
    assert per_slice_by_z(regions[0], ct2) == [0, 149, 256, 256]


@pytest.mark.parametrize("threshold", [0.5, 0.25, 0.9, 1.0])
def test_ct2_true_fractional_threshold(testdata: Path, ct2: DicomSeries, threshold: float) -> None:
    seg_path = testdata / HD / "seg" / "seg_image_ct_true_fractional.dcm"
    ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
    max_value = float(ds.MaximumFractionalValue)
    z_of = image_z_by_uid(testdata / HD / "ct2")
    truth = dict.fromkeys(sorted(z_of.values()), 0)
    for _, uid, px in independent_frames(seg_path):
        truth[z_of[uid]] += int(np.count_nonzero(px / max_value >= threshold))
    _, regions = read_seg(seg_path, ct2, threshold=threshold)
    assert per_slice_by_z(regions[0], ct2) == [truth[z] for z in sorted(truth)]
    if threshold == 0.5:
        # A threshold that actually cuts: fewer voxels than "any fraction".
        assert regions[0].mask.voxel_count < 149 + 256 + 256


def test_ct2_overlapping_segments(testdata: Path, ct2: DicomSeries) -> None:
    seg_path = testdata / HD / "seg" / "seg_image_ct_binary_overlap.dcm"
    _, regions = read_seg(seg_path, ct2)
    first, second = regions
    # SOURCE.txt: "2 segments x 20 px on each of the 4 slices" -- the two segments hold
    # 20 pixels per slice together: a 4x4 block and a 2x2 block inside it.
    assert per_slice_by_z(first, ct2) == [16] * 4
    assert per_slice_by_z(second, ct2) == [4] * 4
    assert first.mask.intersection_count(second.mask) == 16

    # Independent decode: unpack the 1-bit frames by hand, LSB first as DICOM stores them.
    ds = pydicom.dcmread(seg_path)
    bits = np.unpackbits(np.frombuffer(ds.PixelData, dtype=np.uint8), bitorder="little")
    n = ds.Rows * ds.Columns
    for f, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        seg = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frame = bits[f * n : (f + 1) * n].reshape(ds.Rows, ds.Columns).astype(bool)
        k = ct2.slice_index_of(uid)
        assert k is not None
        placed = (first if seg == 1 else second).mask.to_full()[k]
        assert np.array_equal(placed, frame)


def test_single_frame_seg_on_ffs_image(testdata: Path) -> None:
    series = load_series(testdata / HD / "ct_small")
    seg_path = testdata / HD / "seg" / "seg_image_ct_binary_single_frame.dcm"
    _, regions = read_seg(seg_path, series)
    ((_, _, px),) = independent_frames(seg_path)
    assert regions[0].mask.voxel_count == int(np.count_nonzero(px)) > 0
    assert np.array_equal(regions[0].mask.to_full()[0], px != 0)


def test_seg_against_another_frame_of_reference(testdata: Path) -> None:
    series = load_series(testdata / TINY / "23x38x3" / "image")
    seg_path = testdata / CT3 / "seg" / "liver.dcm"
    with pytest.raises(AnnotationError) as e:
        read_seg(seg_path, series)
    msg = str(e.value)
    seg_for = str(pydicom.dcmread(seg_path, stop_before_pixels=True).FrameOfReferenceUID)
    assert seg_for in msg and str(series.frame_of_reference_uid) in msg
    assert str(seg_path) in msg and "frame of reference" in msg

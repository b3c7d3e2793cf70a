"""read_seg on SEGs written here with highdicom over synthetic CT series.

The truth is defined in the test: analytic shapes evaluated at voxel centres in patient
space (LPS mm). The CT series come from segmap.testing (an oblique grid with
non-square pixels, files shuffled); the SEGs from highdicom, edited with pydicom where a
case needs frames in another order, without positions, without source references, etc.
"""

from __future__ import annotations

import copy
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from scipy.spatial import cKDTree

from segmap.annotations.info import read_annotation_info
from segmap.annotations.seg import fractional_cutoff, read_seg
from segmap.errors import AnnotationError
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.series import load_series
from segmap.testing import StudyIdentity, WrittenSeries, oblique_grid, write_ct_series

SCAN_GRID = oblique_grid((20, 14, 7), (0.8, 1.1, 1.5))


# --- building blocks -----------------------------------------------------------------


def voxel_centres(grid: VoxelGrid) -> npt.NDArray[np.float64]:
    """LPS of every voxel centre, in [k, j, i] C order (one row per voxel)."""
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in grid.array_shape), indexing="ij")
    return grid.voxel_centres_lps(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1))


def ellipsoid(
    grid: VoxelGrid, centre: tuple[float, float, float], semi: tuple[float, float, float]
) -> npt.NDArray[np.bool_]:
    x = voxel_centres(grid)
    inside = (((x - np.asarray(centre)) / np.asarray(semi)) ** 2).sum(axis=1) <= 1.0
    return inside.reshape(grid.array_shape)


def box(
    grid: VoxelGrid, lo: tuple[float, float, float], hi: tuple[float, float, float]
) -> npt.NDArray[np.bool_]:
    x = voxel_centres(grid)
    inside = np.all((x >= np.asarray(lo)) & (x <= np.asarray(hi)), axis=1)
    return inside.reshape(grid.array_shape)


def write_series(
    folder: Path, grid: VoxelGrid, identity: StudyIdentity, for_uid: str, series_number: int
) -> WrittenSeries:
    return write_ct_series(
        folder,
        grid,
        np.zeros(grid.array_shape),
        identity=identity,
        frame_of_reference_uid=for_uid,
        series_number=series_number,
        seed=7,
    )


def description(number: int, label: str) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        segmented_property_type=hd.sr.CodedConcept("10200004", "SCT", "Liver"),
        algorithm_type="MANUAL",
    )


def write_seg(
    path: Path,
    series: WrittenSeries,
    pixels: npt.NDArray[np.generic],
    seg_type: str,
    labels: list[str],
    **kwargs: object,
) -> Path:
    """A highdicom SEG on ``series``; ``pixels`` is [k, j, i] or [k, j, i, segment]."""
    sources = [pydicom.dcmread(f) for f in series.files]  # files[k] is slice k
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=seg_type,
        segment_descriptions=[description(n + 1, lab) for n, lab in enumerate(labels)],
        series_instance_uid=hd.UID(),
        series_number=50,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="segmap tests",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        **kwargs,  # type: ignore[arg-type]
    )
    seg.save_as(path)
    return path


def frames_of(ds: Dataset) -> npt.NDArray[np.uint8]:
    return ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)


def set_frames(ds: Dataset, frames: npt.NDArray[np.uint8], groups: list[Dataset]) -> None:
    """Replace pixel data and per-frame groups together (keeps them in step)."""
    ds.NumberOfFrames = len(groups)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
    if ds.BitsAllocated == 1:
        ds.PixelData = pack_bits(frames.reshape(-1).astype(np.uint8))
    else:
        ds.PixelData = frames.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("synthseg")
    identity = StudyIdentity.generate("annotations")
    for_uid = "1.2.826.0.1.3680043.8.498.424242"
    scan = write_series(root / "ct", SCAN_GRID, identity, for_uid, series_number=2)
    organ = ellipsoid(SCAN_GRID, (0.5, -0.8, 0.3), (6.0, 4.5, 4.0))
    lesion = box(SCAN_GRID, (-1.0, -3.0, -2.5), (3.5, 2.0, 2.0))
    assert organ.sum() > 50 and lesion.sum() > 20 and (organ & lesion).sum() > 0
    assert not organ[0].any() and organ[-1].any(), "slice 0 empty (its frame omitted)"
    truth = np.stack([organ, lesion], axis=-1).astype(np.uint8)
    binary = write_seg(root / "binary.dcm", scan, truth, "BINARY", ["Organ", "Lesion"])
    return {
        "root": root,
        "identity": identity,
        "for_uid": for_uid,
        "scan": scan,
        "organ": organ,
        "lesion": lesion,
        "binary": binary,
    }


def read_case(case: dict[str, object], path: Path, **kw: float) -> list[npt.NDArray[np.bool_]]:
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    assert series.grid.same_geometry(SCAN_GRID)
    _, regions = read_seg(path, series, **kw)
    return [r.mask.to_full() for r in regions]


# --- tests ---------------------------------------------------------------------------


def test_binary_two_overlapping_segments_exact(case: dict[str, object]) -> None:
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    info, regions = read_seg(case["binary"], series)  # type: ignore[arg-type]
    assert info.referenced_series_uids == (series.series_instance_uid,)
    assert [r.name for r in regions] == ["Organ", "Lesion"]
    organ, lesion = case["organ"], case["lesion"]
    assert np.array_equal(regions[0].mask.to_full(), organ)
    assert np.array_equal(regions[1].mask.to_full(), lesion)
    assert regions[0].mask.intersection_count(regions[1].mask) == int((organ & lesion).sum())
    assert regions[0].frames_used == int(organ.any(axis=(1, 2)).sum())  # type: ignore[union-attr]
    assert regions[0].frames_resampled == 0 and regions[0].frames_skipped == 0


def test_frames_in_shuffled_order(case: dict[str, object], tmp_path: Path) -> None:
    ds = pydicom.dcmread(case["binary"])
    frames = frames_of(ds)
    groups = list(ds.PerFrameFunctionalGroupsSequence)
    order = np.random.default_rng(11).permutation(len(groups))
    assert not np.array_equal(order, np.arange(len(groups)))
    set_frames(ds, frames[order], [groups[i] for i in order])
    ds.save_as(tmp_path / "shuffled.dcm")
    organ, lesion = read_case(case, tmp_path / "shuffled.dcm")
    assert np.array_equal(organ, case["organ"]) and np.array_equal(lesion, case["lesion"])


def test_frames_placed_by_position_alone(case: dict[str, object], tmp_path: Path) -> None:
    ds = pydicom.dcmread(case["binary"])
    for group in ds.PerFrameFunctionalGroupsSequence:
        del group.DerivationImageSequence
    ds.save_as(tmp_path / "positions.dcm")
    organ, lesion = read_case(case, tmp_path / "positions.dcm")
    assert np.array_equal(organ, case["organ"]) and np.array_equal(lesion, case["lesion"])


def test_frames_placed_by_source_image_alone(case: dict[str, object], tmp_path: Path) -> None:
    ds = pydicom.dcmread(case["binary"])
    for group in ds.PerFrameFunctionalGroupsSequence:
        del group.PlanePositionSequence
    ds.save_as(tmp_path / "references.dcm")
    organ, lesion = read_case(case, tmp_path / "references.dcm")
    assert np.array_equal(organ, case["organ"]) and np.array_equal(lesion, case["lesion"])


def test_frames_on_a_slice_missing_from_the_series(case: dict[str, object]) -> None:
    """Drop the top slice from the series: its organ frame is skipped and counted."""
    scan: WrittenSeries = case["scan"]  # type: ignore[assignment]
    organ: npt.NDArray[np.bool_] = case["organ"]  # type: ignore[assignment]
    top = len(scan.files) - 1
    assert organ[top].any() and not case["lesion"][top].any()  # type: ignore[index]
    series = load_series(list(scan.files[:top]))
    _, regions = read_seg(case["binary"], series)  # type: ignore[arg-type]
    assert np.array_equal(regions[0].mask.to_full(), organ[:top])
    assert regions[0].frames_skipped == 1 and regions[1].frames_skipped == 0
    assert regions[0].frames_used == int(organ[:top].any(axis=(1, 2)).sum())


@pytest.mark.parametrize("spacing_between_slices", [None, 4.5])
def test_segment_painted_on_every_other_slice(
    case: dict[str, object], tmp_path: Path, spacing_between_slices: float | None
) -> None:
    """Frames on slices 1, 3, 5 only (the others omitted as empty) stay on those slices,
    whether the SEG's slice spacing is inferred from its frames (twice the scan's) or
    declared as three times the scan's."""
    organ: npt.NDArray[np.bool_] = case["organ"]  # type: ignore[assignment]
    sparse = organ.copy()
    sparse[0::2] = False
    assert sparse.any(axis=(1, 2)).tolist() == [False, True, False, True, False, True, False]
    path = write_seg(
        tmp_path / "sparse.dcm",
        case["scan"],
        sparse.astype(np.uint8),  # type: ignore[arg-type]
        "BINARY",
        ["Organ"],
    )
    ds = pydicom.dcmread(path)
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    if spacing_between_slices is None:  # the spacing is then inferred from the frames: 3 mm
        measures.pop("SpacingBetweenSlices", None)
    else:
        measures.SpacingBetweenSlices = spacing_between_slices
    ds.save_as(path)
    (mask,) = read_case(case, path)
    assert np.array_equal(mask, sparse)


@pytest.mark.parametrize("threshold", [0.5, 0.2, 0.75, 1.0])
def test_fractional_threshold(case: dict[str, object], tmp_path: Path, threshold: float) -> None:
    organ: npt.NDArray[np.bool_] = case["organ"]  # type: ignore[assignment]
    stored = np.random.default_rng(5).integers(0, 256, organ.shape) * organ
    path = write_seg(
        tmp_path / "fractional.dcm",
        case["scan"],
        stored / 255.0,  # type: ignore[arg-type]
        "FRACTIONAL",
        ["Organ"],
        max_fractional_value=255,
    )
    (mask,) = read_case(case, path, threshold=threshold)
    assert np.array_equal(mask, stored / 255.0 >= threshold)


def test_fractional_cutoff_matches_division() -> None:
    for max_value in (1, 2, 3, 100, 254, 255, 65535):
        for threshold in (1e-9, 0.1, 1 / 3, 0.5, 0.999, 1.0):
            values = np.arange(max_value + 1)
            first = int(np.flatnonzero(values / max_value >= threshold)[0])
            assert fractional_cutoff(max_value, threshold) == first


def test_threshold_outside_range(case: dict[str, object]) -> None:
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            read_seg(case["binary"], series, threshold=bad)  # type: ignore[arg-type]


def test_labelmap_and_padding(case: dict[str, object], tmp_path: Path) -> None:
    organ: npt.NDArray[np.bool_] = case["organ"]  # type: ignore[assignment]
    lesion: npt.NDArray[np.bool_] = case["lesion"]  # type: ignore[assignment]
    labels = np.zeros(organ.shape, dtype=np.uint8)
    labels[organ] = 1
    labels[lesion] = 2  # a labelmap cannot overlap: the lesion wins where both are
    path = write_seg(
        tmp_path / "labelmap.dcm",
        case["scan"],
        labels,
        "LABELMAP",  # type: ignore[arg-type]
        ["Organ", "Lesion"],
    )
    info = read_annotation_info(path)
    assert info.segmentation_type == "LABELMAP"
    assert info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.66.7"
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    _, regions = read_seg(path, series)
    assert [(r.number, r.name) for r in regions] == [(1, "Organ"), (2, "Lesion")]
    assert np.array_equal(regions[0].mask.to_full(), labels == 1)
    assert np.array_equal(regions[1].mask.to_full(), labels == 2)

    # Pixels equal to PixelPaddingValue belong to no segment, even a segment's number.
    ds = pydicom.dcmread(path)
    ds.PixelPaddingValue = 2
    ds.save_as(tmp_path / "padded.dcm")
    _, regions = read_seg(tmp_path / "padded.dcm", series)
    assert np.array_equal(regions[0].mask.to_full(), labels == 1)
    assert regions[1].mask.voxel_count == 0


def thick_slices_grid() -> VoxelGrid:
    """The scan's pixel grid, but 2.7 mm slices starting 1.6 mm below the scan's first."""
    normal = SCAN_GRID.slice_normal_lps
    origin = np.asarray(SCAN_GRID.origin_lps) - 1.6 * normal
    return VoxelGrid.from_arrays(
        (20, 14, 6), (0.8, 1.1, 2.7), np.round(origin, 6), SCAN_GRID.direction_matrix
    )


@pytest.mark.parametrize(
    "seg_grid",
    [
        oblique_grid((40, 44, 24), (0.9, 0.7, 1.2), angles_deg=(22.0, -8.0, 19.0)),
        thick_slices_grid(),
    ],
    ids=["rotated", "thick-slices"],
)
def test_seg_on_another_grid_is_resampled_nearest_neighbour(
    case: dict[str, object], tmp_path: Path, seg_grid: VoxelGrid
) -> None:
    """The SEG was drawn on another series of the same frame of reference. Each scan
    voxel takes the SEG voxel nearest to its centre, found here by a k-d tree over every
    SEG voxel centre (the geometries are chosen so that no centre is equidistant)."""
    other = write_series(
        tmp_path / "other",
        seg_grid,
        case["identity"],  # type: ignore[arg-type]
        case["for_uid"],
        series_number=3,
    )  # type: ignore[arg-type]
    seg_truth = ellipsoid(seg_grid, (0.5, -0.8, 0.3), (6.0, 4.5, 4.0))
    path = write_seg(tmp_path / "other.dcm", other, seg_truth.astype(np.uint8), "BINARY", ["Organ"])

    scan_points = voxel_centres(SCAN_GRID)
    cont = seg_grid.lps_to_continuous_index(scan_points)
    assert np.all(cont > -0.5) and np.all(cont < np.asarray(seg_grid.size) - 0.5), (
        "every scan voxel must lie inside the SEG's grid for nearest-neighbour truth"
    )
    _, nearest = cKDTree(voxel_centres(seg_grid)).query(scan_points)
    expected = seg_truth.ravel()[nearest].reshape(SCAN_GRID.array_shape)
    assert expected.sum() > 50

    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    _, regions = read_seg(path, series)
    assert np.array_equal(regions[0].mask.to_full(), expected)
    assert regions[0].frames_resampled == regions[0].frames_used > 0


def test_only_image_headers_are_needed(case: dict[str, object], tmp_path: Path) -> None:
    """Mask-only conversion must not need the scan's pixels: read with the images gone."""
    scan: WrittenSeries = case["scan"]  # type: ignore[assignment]
    copies = tmp_path / "ct"
    copies.mkdir()
    for f in scan.files:
        (copies / f.name).write_bytes(f.read_bytes())
    series = load_series(copies)
    for f in copies.iterdir():
        f.unlink()
    _, regions = read_seg(case["binary"], series)  # type: ignore[arg-type]
    assert np.array_equal(regions[0].mask.to_full(), case["organ"])


def test_seg_frame_of_reference_mismatch(case: dict[str, object], tmp_path: Path) -> None:
    ds = pydicom.dcmread(case["binary"])
    ds.FrameOfReferenceUID = "1.2.3.4.5"
    ds.save_as(tmp_path / "other_for.dcm")
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    with pytest.raises(AnnotationError, match=r"1\.2\.3\.4\.5.*" + case["for_uid"]):  # type: ignore[operator]
        read_seg(tmp_path / "other_for.dcm", series)


def damaged(case: dict[str, object], tmp_path: Path, edit: object) -> Path:
    ds = copy.deepcopy(pydicom.dcmread(case["binary"]))
    edit(ds)  # type: ignore[operator]
    path = tmp_path / "damaged.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda ds: setattr(ds, "PixelData", ds.PixelData[: len(ds.PixelData) // 3]),
            "PixelData (7FE0,0010)",
        ),
        (lambda ds: delattr(ds, "SegmentSequence"), "SegmentSequence (0062,0002) is missing"),
        (
            lambda ds: setattr(
                ds.PerFrameFunctionalGroupsSequence[1].SegmentIdentificationSequence[0],
                "ReferencedSegmentNumber",
                9,
            ),
            "frame 2 belongs to segment 9",
        ),
        (
            lambda ds: delattr(
                ds.PerFrameFunctionalGroupsSequence[0], "SegmentIdentificationSequence"
            ),
            "functional groups of frame 1",
        ),
        (lambda ds: setattr(ds, "SegmentationType", "SPARSE"), "SegmentationType (0062,0001)"),
        (
            lambda ds: delattr(ds, "PerFrameFunctionalGroupsSequence"),
            "PerFrameFunctionalGroupsSequence (5200,9230) is missing",
        ),
        (
            lambda ds: setattr(
                ds, "PerFrameFunctionalGroupsSequence", ds.PerFrameFunctionalGroupsSequence[:-1]
            ),
            "PerFrameFunctionalGroupsSequence (5200,9230) has",
        ),
    ],
)
def test_damaged_seg_names_file_and_tag(
    case: dict[str, object], tmp_path: Path, edit: object, expected: str
) -> None:
    path = damaged(case, tmp_path, edit)
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    with pytest.raises(AnnotationError) as e:
        read_seg(path, series)
    assert str(path) in str(e.value)
    assert expected in str(e.value)


def test_frame_without_position_or_known_source_is_skipped(
    case: dict[str, object], tmp_path: Path
) -> None:
    ds = pydicom.dcmread(case["binary"])
    group = ds.PerFrameFunctionalGroupsSequence[0]
    del group.PlanePositionSequence
    group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.9"
    seg_number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    ds.save_as(tmp_path / "lost.dcm")
    series = load_series(case["scan"].folder)  # type: ignore[attr-defined]
    _, regions = read_seg(tmp_path / "lost.dcm", series)
    region = regions[seg_number - 1]
    assert region.frames_skipped == 1
    truth = case["organ"] if seg_number == 1 else case["lesion"]
    assert region.mask.voxel_count < int(truth.sum())  # type: ignore[union-attr]

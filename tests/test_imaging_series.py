"""Series discovery and loading: slice order, grid geometry, refusals, fix-ups.

Expected voxel positions come from the DICOM formula computed here from each file's own
header (position + i * column spacing * row cosine + j * row spacing * column cosine), never
from the loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from dicom_factory import SeriesSpec, rotation, write_series
from segmap.errors import SeriesGeometryError, SeriesSelectionError
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.series import DicomSeries, find_series, load_series, scan_folder


def header_centres(path: Path) -> tuple[np.ndarray, int, int]:
    """LPS centres ``[j, i, 3]`` of every pixel of a file, from its header alone."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    rows, cols = int(ds.Rows), int(ds.Columns)
    jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    centres = (
        ipp[None, None, :]
        + (ii * col_spacing)[..., None] * iop[None, None, :3]
        + (jj * row_spacing)[..., None] * iop[None, None, 3:]
    )
    return centres, rows, cols


def assert_grid_matches_headers(series: DicomSeries, tol: float = 1e-4) -> None:
    """Every voxel centre of every file's plane equals the DICOM formula."""
    for n, path in enumerate(series.files):
        centres, rows, cols = header_centres(path)
        assert (cols, rows) == series.grid.size[:2]
        jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, series.k_of(n))], axis=1)
        got = series.grid.voxel_centres_lps(ijk).reshape(rows, cols, 3)
        np.testing.assert_allclose(got, centres, atol=tol, rtol=0)


def along_normal(series: DicomSeries) -> np.ndarray:
    ds = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    return np.array(series.positions_lps) @ normal


def ramp(grid: VoxelGrid) -> np.ndarray:
    nk, nj, ni = grid.array_shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    return (i + 10 * j + 100 * k).astype(np.int16)


# --- synthetic series: geometry -----------------------------------------------------


CASES = {
    "axial_hfs": (np.eye(3), (0.7, 0.9, 2.0), "HFS"),
    # Feet first: the image x axis points to the patient's right; slices go towards feet.
    "axial_ffs": (np.diag([-1.0, 1.0, -1.0]), (0.8, 0.8, 1.5), "FFS"),
    "oblique_nonsquare": (rotation((1, 2, 3), 25.0), (0.6, 1.1, 1.7), "HFS"),
    "coronal": (np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]), (0.5, 0.5, 3.0), "HFS"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_synthetic_series_grid_matches_dicom_formula(tmp_path: Path, case: str) -> None:
    direction, spacing, position = CASES[case]
    grid = VoxelGrid.from_arrays((7, 5, 6), spacing, (-12.5, 30.25, 101.0), direction)
    paths = write_series(tmp_path, grid, ramp(grid), SeriesSpec(patient_position=position))
    # The files' name order is not the slice order, so sorting by name would fail.
    assert sorted(paths) != paths
    series = load_series(tmp_path)
    assert series.grid.size == (7, 5, 6)
    np.testing.assert_allclose(series.grid.spacing, spacing, atol=1e-6)
    assert_grid_matches_headers(series)
    assert np.all(np.diff(along_normal(series)) > 0)
    assert series.fixups == ()
    assert series.slice_indices == ()


def test_slices_sorted_along_normal_not_by_instance_number(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((4, 3, 5), (1.0, 1.0, 2.5), (0, 0, 0), np.eye(3))

    def reversed_numbers(k: int, ds: Dataset) -> None:
        ds.InstanceNumber = 100 - k * 7 % 5

    write_series(tmp_path, grid, ramp(grid), edit=reversed_numbers)
    series = load_series(tmp_path)
    z = [p[2] for p in series.positions_lps]
    assert z == pytest.approx([0.0, 2.5, 5.0, 7.5, 10.0])


def test_left_handed_input_order_is_reversed_onto_the_normal(tmp_path: Path) -> None:
    # Slices written going down z while row x column points up z: k must follow the normal.
    grid = VoxelGrid.from_arrays((4, 3, 5), (1.0, 1.0, 2.0), (0, 0, 50.0), np.diag([1, 1, -1.0]))
    paths = write_series(tmp_path, grid, ramp(grid))
    series = load_series(tmp_path)
    assert series.files == tuple(reversed(paths))
    assert series.grid.origin_lps == pytest.approx((0, 0, 42.0))
    np.testing.assert_allclose(series.grid.slice_normal_lps, [0, 0, 1])
    assert_grid_matches_headers(series)


def test_rows_differ_from_columns(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((9, 4, 3), (0.5, 2.0, 1.0), (1, 2, 3), np.eye(3))
    write_series(tmp_path, grid, ramp(grid))
    series = load_series(tmp_path)
    assert series.grid.size == (9, 4, 3)
    assert series.grid.array_shape == (3, 4, 9)
    assert series.grid.spacing[:2] == pytest.approx((0.5, 2.0))
    assert_grid_matches_headers(series)


def test_list_of_files_and_single_file(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((4, 3, 3), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    paths = write_series(tmp_path, grid, ramp(grid))
    assert load_series(list(reversed(paths))).files == tuple(paths)
    single = load_series(paths[1])
    assert single.grid.size == (4, 3, 1)
    assert single.grid.spacing[2] == pytest.approx(1.0)
    assert single.fixups == ()


def test_single_slice_without_thickness_assumes_one_mm(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((4, 3, 1), (1.0, 1.0, 3.0), (0, 0, 0), np.eye(3))

    def drop_thickness(k: int, ds: Dataset) -> None:
        del ds.SliceThickness

    write_series(tmp_path, grid, ramp(grid), edit=drop_thickness)
    series = load_series(tmp_path)
    assert series.grid.spacing[2] == 1.0
    assert len(series.fixups) == 1 and "1 mm" in series.fixups[0]


def test_single_slice_takes_slice_thickness(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((4, 3, 1), (1.0, 1.0, 3.0), (0, 0, 0), np.eye(3))
    write_series(tmp_path, grid, ramp(grid))
    assert load_series(tmp_path).grid.spacing[2] == pytest.approx(3.0)


def test_small_position_jitter_is_accepted(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((4, 3, 6), (1.0, 1.0, 2.0), (0, 0, 0), np.eye(3))
    jitter = [0.0, 0.006, -0.008, 0.004, -0.003, 0.0]
    positions = [(0.0, 0.0, 2.0 * k + jitter[k]) for k in range(6)]
    write_series(tmp_path, grid, ramp(grid), positions_lps=positions)
    series = load_series(tmp_path)
    assert series.grid.size[2] == 6
    assert series.grid.spacing[2] == pytest.approx(2.0)


# --- refusals ------------------------------------------------------------------------


def _grid(nk: int = 6) -> VoxelGrid:
    return VoxelGrid.from_arrays((4, 3, nk), (1.0, 1.0, 2.0), (0, 0, 0), np.eye(3))


def _refusal(folder: Path, *, fixup: bool = False) -> str:
    with pytest.raises(SeriesGeometryError) as info:
        load_series(folder, fixup=fixup)
    return str(info.value)


def test_gap_is_refused_naming_the_slices_around_it(tmp_path: Path) -> None:
    paths = write_series(tmp_path, _grid(), ramp(_grid()))
    paths[3].unlink()
    message = _refusal(tmp_path)
    assert paths[2].name in message and paths[4].name in message
    assert "(0.00, 0.00, 4.00)" in message and "(0.00, 0.00, 8.00)" in message
    assert "4.000 mm" in message and "2.000 mm" in message
    assert "fix-up" in message


def test_uneven_spacing_is_refused(tmp_path: Path) -> None:
    positions = [(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 6.3, 8.0, 10.0)]
    paths = write_series(tmp_path, _grid(), ramp(_grid()), positions_lps=positions)
    message = _refusal(tmp_path)
    assert paths[3].name in message
    assert "6.30" in message


def test_gap_fixup_places_slices_on_a_regular_grid(tmp_path: Path) -> None:
    paths = write_series(tmp_path, _grid(), ramp(_grid()))
    paths[3].unlink()
    series = load_series(tmp_path, fixup=True)
    assert series.grid.size[2] == 6
    assert series.slice_indices == (0, 1, 2, 4, 5)
    assert series.empty_planes == (3,)
    assert len(series.fixups) == 1 and "6 planes" in series.fixups[0]
    assert series.slice_index_of(series.sop_instance_uids[3]) == 4
    assert_grid_matches_headers(series)


def test_uneven_fixup_uses_the_smallest_step(tmp_path: Path) -> None:
    # Steps 1, 1, 3, 3: the smallest is 1 mm, so 9 planes cover the 8 mm extent.
    positions = [(0.0, 0.0, z) for z in (0.0, 1.0, 2.0, 5.0, 8.0)]
    write_series(tmp_path, _grid(5), ramp(_grid(5)), positions_lps=positions)
    series = load_series(tmp_path, fixup=True)
    assert series.grid.size[2] == 9
    assert series.grid.spacing[2] == pytest.approx(1.0)
    assert series.slice_indices == (0, 1, 2, 5, 8)
    assert_grid_matches_headers(series)


def test_duplicate_positions_are_refused_even_with_fixup(tmp_path: Path) -> None:
    positions = [(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 4.0, 6.0, 8.0)]
    paths = write_series(tmp_path, _grid(), ramp(_grid()), positions_lps=positions)
    message = _refusal(tmp_path, fixup=True)
    assert paths[2].name in message and paths[3].name in message
    assert "share one position" in message


def test_sheared_stack_is_refused(tmp_path: Path) -> None:
    # A tilted gantry shifts each slice along y: the stack is not along the normal.
    positions = [(0.0, 0.5 * k, 2.0 * k) for k in range(6)]
    paths = write_series(tmp_path, _grid(), ramp(_grid()), positions_lps=positions)
    message = _refusal(tmp_path)
    assert paths[5].name in message and "off the stack's axis" in message


def _edit_slice(k_bad: int, change):  # type: ignore[no-untyped-def]
    def edit(k: int, ds: Dataset) -> None:
        if k == k_bad:
            change(ds)

    return edit


def _set_for(ds: Dataset) -> None:
    ds.FrameOfReferenceUID = "1.2.3.4.5"


def _tilt(ds: Dataset) -> None:
    d = rotation((0, 0, 1), 2.0)
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*d[:, 0], *d[:, 1])]


def _spacing(ds: Dataset) -> None:
    ds.PixelSpacing = ["1.0", "1.2"]


def _size(ds: Dataset) -> None:
    ds.Rows = 4
    ds.PixelData = np.zeros((4, 4), dtype=np.uint16).tobytes()


def _no_position(ds: Dataset) -> None:
    del ds.ImagePositionPatient


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (_set_for, ["frames of reference", "1.2.3.4.5"]),
        (_tilt, ["orientations"]),
        (_spacing, ["pixel spacings"]),
        (_size, ["image sizes", "4 x 4"]),
        (_no_position, ["ImagePositionPatient"]),
    ],
    ids=["frame_of_reference", "orientation", "pixel_spacing", "rows_columns", "no_position"],
)
def test_mixed_headers_are_refused_naming_the_odd_slice(
    tmp_path: Path,
    change,
    words: list[str],  # type: ignore[no-untyped-def]
) -> None:
    paths = write_series(tmp_path, _grid(), ramp(_grid()), edit=_edit_slice(2, change))
    message = _refusal(tmp_path, fixup=True)
    assert paths[2].name in message
    for word in words:
        assert word in message
    # Only the odd slice is named in its own group, not every file.
    assert message.count(paths[2].name) == 1


# --- choosing a series in a folder ---------------------------------------------------


def _rtstruct(path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.save_as(path, enforce_file_format=True)


def test_folder_with_several_series(tmp_path: Path) -> None:
    a, b = SeriesSpec(series_description="first"), SeriesSpec(series_description="second")
    write_series(tmp_path / "a", _grid(3), ramp(_grid(3)), a)
    write_series(tmp_path / "b" / "deep", _grid(4), ramp(_grid(4)), b)
    _rtstruct(tmp_path / "rois.dcm")
    (tmp_path / "notes.txt").write_text("not dicom")
    (tmp_path / "DICOMDIR-like.bin").write_bytes(b"\x00" * 300)

    scan = scan_folder(tmp_path)
    assert [s.series_instance_uid for s in scan.series] == [b.series_uid, a.series_uid]
    assert [s.instance_count for s in scan.series] == [4, 3]
    assert scan.non_dicom_files == 2
    assert scan.non_image_instances == {"RTSTRUCT (RT Structure Set Storage)": 1}
    assert len(find_series(tmp_path)) == 2

    with pytest.raises(SeriesSelectionError) as info:
        load_series(tmp_path)
    assert a.series_uid in str(info.value) and b.series_uid in str(info.value)
    assert load_series(tmp_path, a.series_uid).grid.size[2] == 3
    with pytest.raises(SeriesSelectionError, match="not found"):
        load_series(tmp_path, "9.9.9")


def test_empty_folder_is_a_selection_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SeriesSelectionError, match="no DICOM image series"):
        load_series(tmp_path)


# --- real files ------------------------------------------------------------------------


def test_real_ct3slice_ffs(testdata: Path) -> None:
    series = load_series(testdata / "dcmqi-ct3slice-seg" / "ct")
    assert series.grid.size == (512, 512, 3)
    # IOP is the identity, so slices ascend in z: 03 (z=-128.69), 02, 01 (z=-126.69).
    assert [p.name for p in series.files] == ["03.dcm", "02.dcm", "01.dcm"]
    assert series.grid.spacing[2] == pytest.approx(1.0, abs=1e-5)
    assert series.grid.origin_lps[2] == pytest.approx(-128.69, abs=1e-4)
    assert series.modality == "CT"
    assert_grid_matches_headers(series)


def test_real_ct2_irregular_refused_then_fixed(testdata: Path) -> None:
    folder = testdata / "highdicom-pydicom-ct2-seg" / "ct2"
    message = _refusal(folder)
    assert "17106.dcm" in message and "17136.dcm" in message
    assert "-99.48" in message and "103.02" in message
    series = load_series(folder, fixup=True)
    # SOURCE.txt: z = -99.48, 103.02, 104.27, 105.52, 1.25 mm apart where regular;
    # (105.52 + 99.48) / 1.25 + 1 = 165 planes.
    assert series.grid.size[2] == 165
    assert series.grid.spacing[2] == pytest.approx(1.25, abs=1e-4)
    assert series.slice_indices == (0, 162, 163, 164)
    assert series.fixups and "165 planes" in series.fixups[0]
    assert_grid_matches_headers(series, tol=1e-3)


def test_real_oblique_nonsquare(testdata: Path) -> None:
    series = load_series(testdata / "rtutils-mim-rtstruct" / "oblique_ct")
    # SOURCE.txt: 100 columns x 50 rows, 3 slices; PixelSpacing [3.5, 2.5] = [row, column].
    assert series.grid.size == (100, 50, 3)
    assert series.grid.spacing[:2] == pytest.approx((2.5, 3.5))
    assert series.frame_of_reference_uid is None
    np.testing.assert_allclose(
        series.grid.direction_matrix[:, 0], [0.954, -0.208, 0.215], atol=1e-3
    )
    assert_grid_matches_headers(series, tol=1e-3)


def test_real_rows_not_columns(testdata: Path) -> None:
    series = load_series(testdata / "dcmqi-tiny-nonsquare-seg" / "23x38x3" / "image")
    # SOURCE.txt: 23 columns x 38 rows, 3 slices 2.5 mm apart.
    assert series.grid.size == (23, 38, 3)
    assert series.grid.array_shape == (3, 38, 23)
    assert series.grid.spacing[2] == pytest.approx(2.5)
    assert_grid_matches_headers(series)


def test_real_folder_tree_lists_every_series(testdata: Path) -> None:
    scan = scan_folder(testdata)
    # README: ct3slice, 23x38x3, 24x38x3, ct2, ct_small, rt-utils ct, oblique_ct.
    assert len(scan.series) == 7
    assert sum(scan.non_image_instances.values()) == 13  # 11 SEG + 2 RTSTRUCT
    with pytest.raises(SeriesSelectionError, match="7 image series"):
        load_series(testdata)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40))
def test_stacking_median_is_numpys(values: list[float]) -> None:
    from segmap.imaging.stacking import _median

    assert _median(np.array(values)) == float(np.median(values))

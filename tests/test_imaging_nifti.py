"""NIfTI output: every voxel lands where the DICOM says, codes, types, atomic writes.

nibabel reads the files back; the expected positions come from each DICOM file's own
header (position + i * column spacing * row cosine + j * row spacing * column cosine)
and the LPS -> RAS flip of the first two axes, computed here.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_factory import SeriesSpec, rotation, write_series
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.nifti import read_nifti_grid, write_nifti
from segmap.imaging.pixels import read_pixels
from segmap.imaging.series import load_series


def dicom_planes(folder: Path) -> list[pydicom.Dataset]:
    """The folder's files sorted along their normal, computed here from the headers."""
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)))
    return datasets


def ras_centres(ds: pydicom.Dataset) -> np.ndarray:
    """RAS mm of every pixel centre ``[i, j, 3]`` of one file (LPS formula, x and y negated)."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    dj, di = (float(v) for v in ds.PixelSpacing)
    ii, jj = np.meshgrid(np.arange(int(ds.Columns)), np.arange(int(ds.Rows)), indexing="ij")
    lps = ipp + (ii * di)[..., None] * iop[:3] + (jj * dj)[..., None] * iop[3:]
    return lps * np.array([-1.0, -1.0, 1.0])


def assert_nifti_matches_dicom(nifti: Path, planes: list[pydicom.Dataset], tol: float) -> None:
    image = nib.load(str(nifti))
    assert int(image.header["qform_code"]) == 1
    assert int(image.header["sform_code"]) == 1
    qform = image.header.get_qform()
    sform = image.header.get_sform()
    data = np.asanyarray(image.dataobj)
    ni, nj, nk = data.shape
    assert nk == len(planes)
    ii, jj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    for k, ds in enumerate(planes):
        ijk1 = np.stack([ii, jj, np.full_like(ii, k), np.ones_like(ii)], axis=-1).astype(float)
        expected = ras_centres(ds)
        for affine in (qform, sform):
            got = ijk1 @ affine.T
            np.testing.assert_allclose(got[..., :3], expected, atol=tol, rtol=0)
        values = ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(data[:, :, k], values, atol=1e-3)


@pytest.mark.parametrize(
    ("direction", "position"),
    [(rotation((2, -1, 1), 30), "HFS"), (np.diag([-1.0, 1.0, -1.0]), "FFS")],
    ids=["oblique", "ffs"],
)
def test_every_voxel_is_where_the_dicom_says(
    tmp_path: Path, direction: np.ndarray, position: str
) -> None:
    grid = VoxelGrid.from_arrays((11, 7, 5), (0.6, 1.3, 2.2), (-40.0, 25.0, 80.0), direction)
    rng = np.random.default_rng(5)
    volume = rng.integers(-1000, 1500, size=grid.array_shape)
    folder = tmp_path / "dicom"
    write_series(folder, grid, volume, SeriesSpec(patient_position=position))
    series = load_series(folder)
    out = tmp_path / "image.nii.gz"
    write_nifti(read_pixels(series), series.grid, out, description="CT test")
    assert_nifti_matches_dicom(out, dicom_planes(folder), tol=1e-3)
    header = nib.load(str(out)).header
    assert header.get_xyzt_units()[0] == "mm"
    assert header["descrip"].tobytes().rstrip(b"\0") == b"CT test"
    assert header.get_data_dtype() == np.int16
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip


def test_real_ct3slice_world_positions(testdata: Path, tmp_path: Path) -> None:
    folder = testdata / "dcmqi-ct3slice-seg" / "ct"
    series = load_series(folder)
    out = tmp_path / "ct.nii.gz"
    write_nifti(read_pixels(series), series.grid, out)
    assert_nifti_matches_dicom(out, dicom_planes(folder), tol=1e-3)


def test_real_oblique_world_positions(testdata: Path, tmp_path: Path) -> None:
    folder = testdata / "rtutils-mim-rtstruct" / "oblique_ct"
    series = load_series(folder)
    out = tmp_path / "oblique.nii.gz"
    write_nifti(read_pixels(series), series.grid, out)
    # The file's cosines have 7 digits: allow for their rounding over 250 mm.
    assert_nifti_matches_dicom(out, dicom_planes(folder), tol=5e-3)


GRID = VoxelGrid.from_arrays((6, 5, 4), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), rotation((0, 0, 1), 10))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_data_type_is_kept(tmp_path: Path, dtype: type) -> None:
    volume = (np.arange(np.prod(GRID.array_shape)) % 200).reshape(GRID.array_shape).astype(dtype)
    out = tmp_path / "m.nii.gz"
    write_nifti(volume, GRID, out)
    image = nib.load(str(out))
    assert image.header.get_data_dtype() == np.dtype(dtype)
    stored = np.asanyarray(image.dataobj)
    assert stored.dtype == np.dtype(dtype)
    # NIfTI index (i, j, k) holds our [k, j, i].
    assert stored[5, 1, 2] == volume[2, 1, 5]


def test_bool_mask_written_as_uint8(tmp_path: Path) -> None:
    volume = np.zeros(GRID.array_shape, dtype=bool)
    volume[1, 2, 3] = True
    write_nifti(volume, GRID, tmp_path / "b.nii.gz")
    data = np.asanyarray(nib.load(str(tmp_path / "b.nii.gz")).dataobj)
    assert data.dtype == np.uint8
    assert data[3, 2, 1] == 1 and data.sum() == 1


def test_round_trip_through_read_nifti_grid(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).integers(0, 9, GRID.array_shape).astype(np.uint16)
    write_nifti(volume, GRID, tmp_path / "r.nii.gz")
    back, grid = read_nifti_grid(tmp_path / "r.nii.gz")
    assert grid.same_geometry(GRID, tol_mm=1e-4)
    np.testing.assert_array_equal(back, volume)


def test_write_is_atomic_and_replaces(tmp_path: Path) -> None:
    out = tmp_path / "x.nii.gz"
    write_nifti(np.zeros(GRID.array_shape, np.uint8), GRID, out)
    write_nifti(np.ones(GRID.array_shape, np.uint8), GRID, out)
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]
    assert np.asanyarray(nib.load(str(out)).dataobj).min() == 1
    with pytest.raises(ValueError, match="does not match the grid"):
        write_nifti(np.zeros((1, 2, 3), np.uint8), GRID, tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match=r"\.nii\.gz"):
        write_nifti(np.zeros(GRID.array_shape, np.uint8), GRID, tmp_path / "plain.nii")
    with pytest.raises(OSError):
        write_nifti(np.zeros(GRID.array_shape, np.uint8), GRID, tmp_path / "no" / "y.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_isal_and_zlib_writers_store_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: type
) -> None:
    """The fast (ISA-L) and the fallback (nibabel's zlib) writer differ only in how they
    deflate: the decompressed files are identical and the gzip header names no file."""
    import gzip

    from segmap.imaging import nifti

    volume = (np.arange(np.prod(GRID.array_shape)) % 7).reshape(GRID.array_shape).astype(dtype)
    write_nifti(volume, GRID, tmp_path / "fast.nii.gz")
    monkeypatch.setattr(nifti, "_igzip", None)
    write_nifti(volume, GRID, tmp_path / "zlib.nii.gz")
    fast, slow = (tmp_path / "fast.nii.gz").read_bytes(), (tmp_path / "zlib.nii.gz").read_bytes()
    assert gzip.decompress(fast) == gzip.decompress(slow)
    for blob in (fast, slow):
        flags, mtime = blob[3], int.from_bytes(blob[4:8], "little")
        assert flags & 0x08 == 0 and mtime == 0  # no FNAME field, no time stamp

"""Pixel reading: rescale, value types, slice order, and every compressed transfer syntax.

Compressed files are made here from known volumes with independent encoders (pydicom's
RLE, pyjpegls, openjpeg; imagecodecs' libjpeg-turbo for JPEG lossless and 12-bit JPEG and
its HTJ2K encoder; Pillow for 8-bit baseline JPEG) and must decode to the known values:
exactly for lossless syntaxes, within the codec's bound or a small error for lossy ones.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from dicom_factory import SeriesSpec, rotation, write_series
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.pixels import read_pixels
from segmap.imaging.series import load_series

GRID = VoxelGrid.from_arrays((64, 48, 3), (0.7, 0.9, 2.0), (10, -20, 30), rotation((1, 1, 0), 20))


def ct_volume(grid: VoxelGrid, lo: int = -1000, hi: int = 2000, seed: int = 3) -> np.ndarray:
    """A smooth body-like field plus noise, in HU, ``[k, j, i]``."""
    nk, nj, ni = grid.array_shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    smooth = np.sin(i / 9.0) * np.cos(j / 7.0) + 0.2 * k
    noise = np.random.default_rng(seed).normal(0, 0.05, smooth.shape)
    values = lo + (hi - lo) * (smooth + noise - (smooth + noise).min()) / np.ptp(smooth + noise)
    return np.rint(values).astype(np.int32)


def load_volume(folder: Path) -> tuple[np.ndarray, list[Path]]:
    series = load_series(folder)
    return read_pixels(series), list(series.files)


def in_loader_order(paths: list[Path], files: list[Path]) -> list[int]:
    return [paths.index(f) for f in files]


Recode = Callable[[Dataset], None]


def recode_files(paths: list[Path], recode: Recode) -> None:
    for path in paths:
        ds = pydicom.dcmread(path)
        recode(ds)
        ds.save_as(path, enforce_file_format=True)


def with_pydicom(syntax: str, **kwargs: object) -> Recode:
    def recode(ds: Dataset) -> None:
        ds.compress(syntax, generate_instance_uid=False, **kwargs)

    return recode


def encapsulated(syntax: str, encode: Callable[[np.ndarray], bytes]) -> Recode:
    def recode(ds: Dataset) -> None:
        frame = encode(ds.pixel_array)
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax

    return recode


def ljpeg(predictor: int) -> Callable[[np.ndarray], bytes]:
    def encode(arr: np.ndarray) -> bytes:
        bits = arr.view(np.uint16) if arr.dtype == np.int16 else arr
        return bytes(
            imagecodecs.jpeg8_encode(bits, lossless=True, predictor=predictor, bitspersample=16)
        )

    return encode


def htj2k(arr: np.ndarray) -> bytes:
    return bytes(imagecodecs.htj2k_encode(arr, level=0, reversible=True))


LOSSLESS: dict[str, Recode] = {
    "rle": with_pydicom(uid.RLELossless),
    "jpeg_ls": with_pydicom(uid.JPEGLSLossless),
    "jpeg2000": with_pydicom(uid.JPEG2000Lossless),
    "jpeg_lossless_sv1": encapsulated(uid.JPEGLosslessSV1, ljpeg(1)),
    "jpeg_lossless_p14": encapsulated(uid.JPEGLossless, ljpeg(6)),
    "htj2k": encapsulated(uid.HTJ2KLossless, htj2k),
}


@pytest.mark.parametrize("intercept", [0.0, -1024.0], ids=["signed_stored", "unsigned_stored"])
@pytest.mark.parametrize("codec", sorted(LOSSLESS))
def test_lossless_syntaxes_decode_exactly(tmp_path: Path, codec: str, intercept: float) -> None:
    volume = ct_volume(GRID)
    paths = write_series(tmp_path, GRID, volume, SeriesSpec(intercept=intercept))
    recode_files(paths, LOSSLESS[codec])
    syntax = pydicom.dcmread(paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax.is_compressed
    got, files = load_volume(tmp_path)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, volume[in_loader_order(paths, files)])


def test_jpeg_ls_near_lossless_stays_within_its_bound(tmp_path: Path) -> None:
    volume = ct_volume(GRID)
    paths = write_series(tmp_path, GRID, volume, SeriesSpec(intercept=-1024.0))
    recode_files(paths, with_pydicom(uid.JPEGLSNearLossless, jls_error=3))
    got, files = load_volume(tmp_path)
    diff = np.abs(got.astype(int) - volume[in_loader_order(paths, files)])
    assert diff.max() <= 3
    assert diff.max() > 0  # it really was lossy


def test_jpeg2000_lossy_is_close(tmp_path: Path) -> None:
    volume = ct_volume(GRID)
    paths = write_series(tmp_path, GRID, volume, SeriesSpec(intercept=-1024.0))
    recode_files(paths, with_pydicom(uid.JPEG2000, j2k_psnr=[90.0]))
    got, files = load_volume(tmp_path)
    diff = np.abs(got.astype(float) - volume[in_loader_order(paths, files)])
    assert diff.mean() < 5.0 and diff.max() < 60.0  # range is 3000 HU


def pillow_baseline(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8), mode="L").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_jpeg_baseline_8bit_is_close(tmp_path: Path) -> None:
    volume = ct_volume(GRID, 0, 255)
    spec = SeriesSpec(modality="MR", slope=1.0, intercept=0.0, stored_dtype="uint8")
    paths = write_series(tmp_path, GRID, volume, spec)
    recode_files(paths, encapsulated(uid.JPEGBaseline8Bit, pillow_baseline))
    got, files = load_volume(tmp_path)
    diff = np.abs(got.astype(float) - volume[in_loader_order(paths, files)])
    assert diff.mean() < 2.0 and diff.max() <= 16


def test_jpeg_extended_12bit_is_close(tmp_path: Path) -> None:
    volume = ct_volume(GRID, -1024, 3071)
    paths = write_series(tmp_path, GRID, volume, SeriesSpec(intercept=-1024.0))

    def twelve_bit(ds: Dataset) -> None:
        ds.BitsStored, ds.HighBit = 12, 11
        frame = imagecodecs.jpeg8_encode(ds.pixel_array, level=95, bitspersample=12)
        ds.PixelData = encapsulate([bytes(frame)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = uid.JPEGExtended12Bit

    recode_files(paths, twelve_bit)
    got, files = load_volume(tmp_path)
    diff = np.abs(got.astype(float) - volume[in_loader_order(paths, files)])
    assert diff.mean() < 8.0 and diff.max() < 120.0  # range is 4095 HU


# --- value types and rescale ---------------------------------------------------------


def test_hounsfield_units_kept_as_int16(tmp_path: Path) -> None:
    volume = ct_volume(GRID, -1024, 3071)
    paths = write_series(tmp_path, GRID, volume, SeriesSpec(intercept=-1024.0))
    got, files = load_volume(tmp_path)
    assert got.dtype == np.int16 and got.shape == GRID.array_shape
    np.testing.assert_array_equal(got, volume[in_loader_order(paths, files)])


def test_fractional_slope_gives_float32(tmp_path: Path) -> None:
    volume = ct_volume(GRID, 0, 1000).astype(np.float64) * 0.25
    paths = write_series(tmp_path, GRID, volume, SeriesSpec(slope=0.25, intercept=-3.5))
    got, files = load_volume(tmp_path)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, volume[in_loader_order(paths, files)], atol=1e-4)


def test_unsigned_values_beyond_int16_give_uint16(tmp_path: Path) -> None:
    volume = ct_volume(GRID, 0, 60000).astype(np.int64)
    spec = SeriesSpec(modality="MR", slope=1.0, intercept=0.0)
    paths = write_series(tmp_path, GRID, volume, spec)
    got, files = load_volume(tmp_path)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, volume[in_loader_order(paths, files)])


def test_unsigned_stored_without_rescale_fits_int16(tmp_path: Path) -> None:
    volume = ct_volume(GRID, 0, 4000)
    spec = SeriesSpec(modality="MR", slope=1.0, intercept=0.0)
    paths = write_series(tmp_path, GRID, volume, spec)
    assert pydicom.dcmread(paths[0]).PixelRepresentation == 0
    got, files = load_volume(tmp_path)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, volume[in_loader_order(paths, files)])


def test_requested_dtype(tmp_path: Path) -> None:
    volume = ct_volume(GRID)
    write_series(tmp_path, GRID, volume)
    series = load_series(tmp_path)
    assert read_pixels(series, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="do not fit"):
        read_pixels(series, dtype=np.uint8)


def test_missing_plane_after_fixup_holds_the_minimum(tmp_path: Path) -> None:
    grid = VoxelGrid.from_arrays((8, 6, 5), (1.0, 1.0, 2.0), (0, 0, 0), np.eye(3))
    volume = ct_volume(grid) + 100
    paths = write_series(tmp_path, grid, volume, shuffle=False)
    paths[2].unlink()
    series = load_series(tmp_path, fixup=True)
    got = read_pixels(series)
    assert got.shape == (5, 6, 8)
    kept = [0, 1, 3, 4]
    np.testing.assert_array_equal(got[kept], volume[kept])
    assert np.all(got[2] == volume[kept].min())


# --- real files --------------------------------------------------------------------------


def independent_volume(folder: Path) -> np.ndarray:
    """Rescaled pixels of every file, stacked by ascending z (axial, IOP identity)."""
    datasets = [pydicom.dcmread(p) for p in folder.glob("*.dcm")]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets]
    )


def test_real_ct3slice_pixels(testdata: Path) -> None:
    folder = testdata / "dcmqi-ct3slice-seg" / "ct"
    got = read_pixels(load_series(folder))
    assert got.dtype == np.int16 and got.shape == (3, 512, 512)
    np.testing.assert_array_equal(got, independent_volume(folder))


def test_real_rows_not_columns_pixels(testdata: Path) -> None:
    folder = testdata / "dcmqi-tiny-nonsquare-seg" / "23x38x3" / "image"
    got = read_pixels(load_series(folder))
    assert got.shape == (3, 38, 23)
    np.testing.assert_array_equal(got, independent_volume(folder))


def test_real_oblique_fractional_slope(testdata: Path) -> None:
    # RescaleSlope .001: values become floats.
    series = load_series(testdata / "rtutils-mim-rtstruct" / "oblique_ct")
    got = read_pixels(series)
    assert got.dtype == np.float32 and got.shape == (3, 50, 100)
    for k, path in enumerate(series.files):
        ds = pydicom.dcmread(path)
        np.testing.assert_allclose(got[k], ds.pixel_array * 0.001, atol=1e-6)

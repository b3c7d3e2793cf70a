"""Pixel data of a loaded series as one volume ``[k, j, i]`` in modality units.

Each file is read once. Compressed transfer syntaxes (JPEG baseline and extended, JPEG
lossless, JPEG-LS, JPEG 2000, RLE) are decoded by pydicom's pixel backends
(pylibjpeg with its libjpeg, openjpeg and rle plugins, and pyjpegls); no decoding is
written here.

Values: RescaleSlope and RescaleIntercept are applied, so CT stays in Hounsfield units (a
Modality LUT Sequence, rare, is applied through pydicom). The volume's type is the
smallest exact one: int16 when every slope and intercept is an integer and the values fit,
else uint16 when they fit that, else float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from segmap.errors import PixelDataError
from segmap.imaging.series import DicomSeries

_INTEGRAL_TOL = 1e-6


@dataclass(frozen=True)
class _Rescale:
    slope: float
    intercept: float

    @property
    def integral(self) -> bool:
        return all(abs(v - round(v)) <= _INTEGRAL_TOL for v in (self.slope, self.intercept))

    @property
    def identity(self) -> bool:
        return self.slope == 1.0 and self.intercept == 0.0

    def value_range(self, lo: float, hi: float) -> tuple[float, float]:
        a, b = lo * self.slope + self.intercept, hi * self.slope + self.intercept
        return (min(a, b), max(a, b))


def _rescale_of(ds: Dataset) -> _Rescale:
    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    return _Rescale(
        float(slope) if slope not in (None, "") else 1.0,
        float(intercept) if intercept not in (None, "") else 0.0,
    )


def _decode(ds: Dataset, path: Path, shape: tuple[int, int]) -> npt.NDArray[np.generic]:
    syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise PixelDataError(
            f"{path}: {ds.get('PhotometricInterpretation', '')} colour pixels; segmap reads "
            "greyscale scans only"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise PixelDataError(f"{path}: multi-frame pixel data; expected one slice per file")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for codec problems
        name = getattr(syntax, "name", str(syntax))
        raise PixelDataError(
            f"{path}: cannot decode pixel data ({name}): {exc}. Check the file, or install "
            "the decoder pydicom names (pylibjpeg-libjpeg, pylibjpeg-openjpeg, pyjpegls)."
        ) from exc
    if arr.shape != shape:
        raise PixelDataError(
            f"{path}: pixel array of shape {arr.shape} where the series has "
            f"Rows x Columns {shape[0]} x {shape[1]}"
        )
    return np.asarray(arr)


def _fits(dtype: np.dtype[np.generic], lo: float, hi: float) -> bool:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)  # type: ignore[type-var]
        return bool(info.min <= lo and hi <= info.max)
    return True


def _natural_dtype(
    raw_dtype: np.dtype[np.generic], rescales: list[_Rescale], lo: float, hi: float
) -> np.dtype[np.generic]:
    if not np.issubdtype(raw_dtype, np.integer) or not all(r.integral for r in rescales):
        return np.dtype(np.float32)
    for candidate in (np.int16, np.uint16):
        if _fits(np.dtype(candidate), lo, hi):
            return np.dtype(candidate)
    return np.dtype(np.float32)


class _RawStack:
    """Decoded stored values of every file, widened when a later slice needs it."""

    def __init__(self, count: int, shape: tuple[int, int]) -> None:
        self.count, self.shape = count, shape
        self.data: npt.NDArray[np.generic] | None = None

    def put(self, n: int, arr: npt.NDArray[np.generic]) -> None:
        if self.data is None:
            self.data = np.empty((self.count, *self.shape), dtype=arr.dtype)
        elif not np.can_cast(arr.dtype, self.data.dtype, casting="safe"):
            self.data = self.data.astype(np.result_type(self.data.dtype, arr.dtype))
        self.data[n] = arr


def _read_all(series: DicomSeries) -> tuple[npt.NDArray[np.generic], list[_Rescale], float, float]:
    nk, nj, ni = series.grid.array_shape
    raw = _RawStack(len(series.files), (nj, ni))
    rescales: list[_Rescale] = []
    lo, hi = np.inf, -np.inf
    for n, path in enumerate(series.files):
        ds = pydicom.dcmread(path)
        arr = _decode(ds, path, (nj, ni))
        rescale = _rescale_of(ds)
        if "ModalityLUTSequence" in ds:
            arr = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
            rescale = _Rescale(1.0, 0.0)
        raw.put(n, arr)
        rescales.append(rescale)
        a, b = rescale.value_range(float(arr.min()), float(arr.max()))
        lo, hi = min(lo, a), max(hi, b)
    assert raw.data is not None
    return raw.data, rescales, lo, hi


def _rescaled(
    stored: npt.NDArray[np.generic], rescale: _Rescale, dtype: np.dtype[np.generic]
) -> npt.NDArray[np.generic]:
    """One slice in modality units, computed in a type that holds every value exactly."""
    if rescale.identity:
        return stored
    if np.issubdtype(dtype, np.integer):
        # int32 is exact for 8/16-bit stored values with the integer rescale checked to fit
        # ``dtype``; wider stored types use int64.
        wide = np.int32 if stored.dtype.itemsize <= 2 else np.int64
        work: npt.NDArray[np.signedinteger] = stored.astype(wide)
        if rescale.slope != 1.0:
            np.multiply(work, int(round(rescale.slope)), out=work)
        if rescale.intercept != 0.0:
            np.add(work, int(round(rescale.intercept)), out=work)
        return work
    return stored.astype(np.float64) * rescale.slope + rescale.intercept


def read_pixels(
    series: DicomSeries, *, dtype: npt.DTypeLike | None = None
) -> npt.NDArray[np.generic]:
    """Pixel values of ``series`` as a volume ``[k, j, i]`` on ``series.grid``.

    Values are in modality units (CT: Hounsfield units) after RescaleSlope/Intercept.
    The type is int16 when slopes and intercepts are integers and the values fit, else
    uint16 when they fit that, else float32; ``dtype`` forces another (integer types must
    hold every value). Planes that no file fills (after a gap fix-up) hold the volume's
    minimum.

    Raises:
        PixelDataError: undecodable data, colour or multi-frame images, or a slice whose
            size differs from the series'.
    """
    raw, rescales, lo, hi = _read_all(series)
    natural = _natural_dtype(raw.dtype, rescales, lo, hi)
    out_dtype = np.dtype(dtype) if dtype is not None else natural
    if not _fits(out_dtype, lo, hi):
        raise ValueError(f"pixel values {lo:g}..{hi:g} do not fit {out_dtype}")
    fixed = not series.slice_indices
    all_identity = all(r.identity for r in rescales)
    if fixed and all_identity and raw.dtype == out_dtype:
        return raw
    if fixed and raw.dtype.itemsize == out_dtype.itemsize and raw.dtype.kind in "iu":
        out = raw.view(out_dtype)  # rewrite each slice in place: no second volume
    else:
        out = np.empty(series.grid.array_shape, dtype=out_dtype)
        if not fixed:
            out[...] = np.array(lo).astype(out_dtype)
    for n, rescale in enumerate(rescales):
        out[series.k_of(n)] = _rescaled(raw[n], rescale, out_dtype)
    return out

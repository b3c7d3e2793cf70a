"""Rendered frames (PS3.18 §8.3.5.1, §10.4.1.1.3): one frame as an 8-bit PNG or JPEG.

The smallest correct rendering of what segmap stores: the frame's uncompressed pixels
(from :func:`segmap.imaging.frame_read.read_frame_uncompressed`), the Modality LUT
(RescaleSlope/Intercept), then a linear VOI window — the ``window=center,width``
query parameter when given, else the instance's first WindowCenter/WindowWidth, else
the frame's own minimum to maximum — mapped to 0–255 as PS3.3 C.11.2.1.2 defines,
inverted for MONOCHROME1. Colour frames (RGB after decoding) are sent as they are at 8
bits. 1-bit frames (BINARY SEG) are black and white. Pillow encodes the image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from segmap.imaging.frame_index import FrameIndex
from segmap.server.dicomweb.errors import BadRequest, NotAcceptable


def parse_window(value: str | None) -> tuple[float, float] | None:
    """The ``window`` query parameter (``center,width[,function]``); 400 when malformed."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        center, width = float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        raise BadRequest(f"window={value!r} must be center,width (numbers)") from None
    function = parts[2].strip().upper() if len(parts) > 2 else "LINEAR"
    if function != "LINEAR" or len(parts) > 3:
        raise BadRequest(f"window={value!r}: only the LINEAR function is offered")
    if width < 1:
        raise BadRequest(f"window={value!r}: the width must be at least 1")
    return center, width


def render(
    frame: bytes,
    index: FrameIndex,
    header: Dataset,
    media_type: str,
    window: tuple[float, float] | None = None,
) -> bytes:
    """Frame bytes (uncompressed little endian) as a PNG or JPEG image of 8 bits."""
    p = index.pixel
    if p.bits_allocated == 1:
        bits = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")
        image = (bits[: p.rows * p.columns].reshape(p.rows, p.columns) * 255).astype(np.uint8)
    elif p.samples_per_pixel == 1:
        image = _grey(_array(frame, index), header, window)
        if p.photometric_interpretation == "MONOCHROME1":
            image = 255 - image
    else:
        image = _colour(_array(frame, index), index)
    buffer = io.BytesIO()
    if media_type == "image/jpeg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    else:
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _array(frame: bytes, index: FrameIndex) -> np.ndarray:
    p = index.pixel
    if p.bits_allocated not in (8, 16, 32):
        raise NotAcceptable(f"frames of {p.bits_allocated} bits are not rendered")
    kind = "i" if p.pixel_representation == 1 else "u"
    values = np.frombuffer(frame, dtype=f"<{kind}{p.bits_allocated // 8}")
    samples = p.samples_per_pixel
    if samples == 1:
        return values.reshape(p.rows, p.columns)
    if p.planar_configuration == 1 and not index.encapsulated:  # decoded frames interleave
        return values.reshape(samples, p.rows, p.columns).transpose(1, 2, 0)
    return values.reshape(p.rows, p.columns, samples)


def _grey(pixels: np.ndarray, header: Dataset, window: tuple[float, float] | None) -> np.ndarray:
    slope = float(header.get("RescaleSlope") or 1.0)
    intercept = float(header.get("RescaleIntercept") or 0.0)
    values = pixels.astype(np.float64) * slope + intercept
    center_width = window or _stored_window(header)
    if center_width is None:
        low, high = float(values.min()), float(values.max())
        center_width = ((low + high) / 2 + 0.5, max(high - low + 1.0, 1.0))
    center, width = center_width
    # PS3.3 C.11.2.1.2.1: linear function from (c - 0.5) - (w - 1)/2 to … + (w - 1)/2
    scaled = ((values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _stored_window(header: Dataset) -> tuple[float, float] | None:
    center, width = _first(header.get("WindowCenter")), _first(header.get("WindowWidth"))
    try:
        c, w = float(center), float(width)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return (c, w) if w >= 1 else None


def _first(value: object) -> object:
    if isinstance(value, MultiValue | list | tuple):
        return value[0] if len(value) else None
    return value


def _colour(pixels: np.ndarray, index: FrameIndex) -> np.ndarray:
    photometric = index.pixel.photometric_interpretation
    if photometric != "RGB" and not index.encapsulated:  # decoded frames are RGB already
        raise NotAcceptable(f"{photometric} frames are not rendered; only RGB colour")
    if pixels.dtype.itemsize > 1:
        top = float(2**index.pixel.bits_stored - 1)
        pixels = np.clip(pixels.astype(np.float64) / top * 255.0, 0, 255)
    return np.ascontiguousarray(pixels.astype(np.uint8))

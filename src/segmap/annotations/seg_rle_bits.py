"""RLE Lossless frames of 1-bit SEG pixels, which pydicom does not decode.

OHIF 3.13 (dcmjs) stores a BINARY SEG with RLE Lossless by RLE-compressing each frame's
*packed* bits: one RLE segment per frame holding ``ceil(rows * columns / 8)`` bytes, pixel
0 in the least significant bit of the first byte (the DICOM bit order for 1-bit data).
pydicom's RLE decoder expects a byte per pixel for such files and refuses them, so these
frames are decoded here: the RLE frame header (PS3.5 Annex G), PackBits runs, then the
bits unpacked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import RLELossless


def is_rle_bit_packed(ds: Dataset) -> bool:
    """Whether ``ds`` holds 1-bit pixels encapsulated as RLE Lossless."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return syntax == RLELossless and int(getattr(ds, "BitsAllocated", 0)) == 1


def iter_rle_bit_frames(ds: Dataset) -> Iterator[npt.NDArray[np.uint8]]:
    """Each frame of ``ds`` (see :func:`is_rle_bit_packed`) as a rows x columns 0/1 array.

    Raises:
        ValueError: a frame that is not one RLE segment of the packed frame's length.
    """
    rows, columns = int(ds.Rows), int(ds.Columns)
    pixels = rows * columns
    need = (pixels + 7) // 8
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    for number, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames), 1):
        if len(frame) < 64:
            raise ValueError(f"frame {number} is shorter than an RLE header")
        count, first = struct.unpack_from("<2I", frame)
        if count != 1:
            raise ValueError(f"frame {number} has {count} RLE segments, 1-bit pixels need 1")
        packed = _unpack_bits_runs(frame[first:], need)
        if len(packed) != need:
            raise ValueError(
                f"frame {number} decodes to {len(packed)} bytes, {rows} x {columns} "
                f"1-bit pixels need {need}"
            )
        bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), bitorder="little")
        yield bits[:pixels].reshape(rows, columns)


def _unpack_bits_runs(data: bytes, limit: int) -> bytes:
    """PackBits: a header byte n >= 0 copies n + 1 bytes, n < 0 (not -128) repeats the
    next byte 1 - n times. Stops at ``limit`` bytes (segments are padded to even length)."""
    out = bytearray()
    i, end = 0, len(data)
    while i < end and len(out) < limit:
        n = data[i] - 256 if data[i] > 127 else data[i]
        i += 1
        if n >= 0:
            out += data[i : i + n + 1]
            i += n + 1
        elif n != -128:
            if i >= end:
                break
            out += bytes([data[i]]) * (1 - n)
            i += 1
    return bytes(out)

"""Read one frame of a stored instance by seeking to the ranges its frame index gives.

The layouts and what each :class:`~segmap.imaging.frame_index.Conversion` means are
described in :mod:`segmap.imaging.frame_index`. Nothing here parses the file: the index
says where the bytes are. Decoding (for clients that want uncompressed pixels of an
encapsulated frame) is pydicom's, one frame at a time.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder, pack_bits
from pydicom.uid import UID

from segmap.imaging.frame_index import Conversion, FrameIndex, FrameIndexError


class NoSuchFrame(FrameIndexError):
    """A frame number outside 1..NumberOfFrames."""


def frame_ranges(index: FrameIndex, number: int) -> list[tuple[int, int]] | None:
    """The ``(file offset, length)`` byte ranges whose concatenation is frame ``number``.

    For a response that copies file ranges straight to the socket. ``None`` for a 1-bit
    frame that does not start on a byte boundary or does not fill its last byte (it must
    be re-packed: use :func:`read_frame`).
    """
    _check(index, number)
    if index.encapsulated:
        return [(f.offset, f.length) for f in index.fragments[number - 1]]
    frame_bits = index.pixel.frame_bits
    if frame_bits % 8:
        return None
    size = frame_bits // 8
    return [(index.value_offset + (number - 1) * size, size)]


def read_frame(fp: BinaryIO, index: FrameIndex, number: int) -> bytes:
    """Frame ``number`` (1-based) as stored: native bytes, or the encoded frame.

    1-bit native frames come re-packed to start at bit 0 (see
    :mod:`segmap.imaging.frame_index`).
    """
    ranges = frame_ranges(index, number)
    if ranges is None:
        bits = index.pixel.frame_bits
        return _read_bit_packed(fp, index, (number - 1) * bits, bits)
    parts = []
    for offset, length in ranges:
        fp.seek(offset)
        parts.append(_read_exactly(fp, length))
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _check(index: FrameIndex, number: int) -> None:
    if not 1 <= number <= index.number_of_frames:
        raise NoSuchFrame(
            f"frame {number} does not exist; the instance has {index.number_of_frames} frame(s)"
        )


def read_frame_uncompressed(fp: BinaryIO, index: FrameIndex, number: int) -> bytes:
    """Frame ``number`` as uncompressed little-endian pixels (decoded or swapped if needed)."""
    return to_uncompressed(index, read_frame(fp, index, number))


def to_uncompressed(index: FrameIndex, frame: bytes) -> bytes:
    """Turn one frame as stored (from :func:`read_frame`) into uncompressed little endian.

    Decoded frames are interleaved (PlanarConfiguration 0); YBR colour is converted to RGB
    as pydicom's decoders do by default; 1-bit frames come packed as :func:`read_frame`
    gives them.
    """
    conversion = index.conversion
    if conversion is Conversion.NONE:
        return frame
    bits = index.pixel.bits_allocated
    if conversion is Conversion.BYTE_SWAP:
        return np.frombuffer(frame, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    p = index.pixel
    # a dict, as pydicom annotates ``**kwargs`` with the whole options TypedDict
    options: dict[str, Any] = {
        "rows": p.rows,
        "columns": p.columns,
        "samples_per_pixel": p.samples_per_pixel,
        "bits_allocated": bits,
        "bits_stored": p.bits_stored,
        "pixel_representation": p.pixel_representation,
        "photometric_interpretation": p.photometric_interpretation,
        "planar_configuration": p.planar_configuration,
        "number_of_frames": 1,
    }
    try:
        arr, _ = get_decoder(index.transfer_syntax_uid).as_array(encapsulate([frame]), **options)
    except Exception as exc:  # the codec plugins raise many types
        name = UID(index.transfer_syntax_uid).name
        raise FrameIndexError(f"cannot decode a {name} frame: {exc}") from None
    if bits == 1:
        return pack_bits(arr.ravel(), pad=False)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def _read_bit_packed(fp: BinaryIO, index: FrameIndex, bit_offset: int, frame_bits: int) -> bytes:
    first_byte, shift = divmod(bit_offset, 8)
    n_bytes = (shift + frame_bits + 7) // 8
    fp.seek(index.value_offset + first_byte)
    raw = np.frombuffer(_read_exactly(fp, n_bytes), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[shift : shift + frame_bits]
    return np.packbits(bits, bitorder="little").tobytes()


def _read_exactly(fp: BinaryIO, n: int) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise FrameIndexError(f"the stored file ends early: wanted {n} bytes, got {len(data)}")
    return data

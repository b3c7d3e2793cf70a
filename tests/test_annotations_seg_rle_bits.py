"""1-bit SEG frames in RLE Lossless (what OHIF writes for a BINARY SEG), decoded by hand-
made frames whose pixels are counted here."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from segmap.annotations.seg_rle_bits import is_rle_bit_packed, iter_rle_bit_frames


def _dataset(frames: list[bytes], rows: int = 8, columns: int = 8) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.Rows, ds.Columns, ds.BitsAllocated = rows, columns, 1
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    return ds


def _rle(segment: bytes) -> bytes:
    header = struct.pack("<16I", 1, 64, *([0] * 14))
    return header + segment + (b"\x00" if len(segment) % 2 else b"")


def test_packed_bits_unpack_with_pixel_zero_in_the_low_bit() -> None:
    # Frame 1: every byte 0x0F (a run: -7 then the byte) -> columns 0-3 of each row set.
    # Frame 2: literal bytes 0x01, 0x80 then a run of six zero bytes -> two pixels set.
    frames = [_rle(bytes([0xF9, 0x0F])), _rle(bytes([0x01, 0x01, 0x80, 0xFB, 0x00]))]
    ds = _dataset(frames)
    assert is_rle_bit_packed(ds)
    first, second = list(iter_rle_bit_frames(ds))
    assert first.shape == (8, 8)
    assert first[:, :4].all() and not first[:, 4:].any()
    assert np.argwhere(second).tolist() == [[0, 0], [1, 7]]


def test_a_frame_of_the_wrong_length_is_refused() -> None:
    ds = _dataset([_rle(bytes([0xFC, 0xFF]))])  # 5 bytes where 8 are needed
    with pytest.raises(ValueError, match="decodes to 5 bytes"):
        list(iter_rle_bit_frames(ds))


def test_other_encodings_are_left_to_pydicom() -> None:
    ds = _dataset([_rle(b"\x00")])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert not is_rle_bit_packed(ds)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.BitsAllocated = 8
    assert not is_rle_bit_packed(ds)

"""Where each frame's bytes lie in a stored Part-10 file, found once when it is stored.

WADO-RS serves single frames (OHIF asks for every frame of a series, one request each).
Decoding the whole file with pydicom per request would cost a full parse and a copy of
all the pixel data for one frame; instead :func:`index_frames` reads the header once
(pydicom, ``stop_before_pixels``) and records the byte ranges of every frame, and
:func:`segmap.imaging.frame_read.read_frame` later seeks to them. pydicom has no API
that answers "at which file offset does frame *n* start" (its encapsulation helpers
return the bytes), so the small amount of layout arithmetic is here; pydicom's
:func:`~pydicom.encaps.parse_basic_offsets` and :func:`~pydicom.encaps.parse_fragments`
do the item parsing.

Layouts (PS3.5 §8.2, Annex A.4):

- **Native** pixel data: frame *n* (1-based) is ``frame_bits`` bits at bit offset
  ``(n - 1) * frame_bits`` of the Pixel Data value. For BitsAllocated 8/16/32/64 that is
  a whole number of bytes. For **BitsAllocated 1** (BINARY SEG) frames are packed back to
  back and are not byte aligned when Rows x Columns is not a multiple of 8: a frame read
  here is re-packed so that its first pixel is bit 0 of byte 0 (DICOM's little-endian
  bit order) and the unused high bits of its last byte are zero, i.e. exactly what
  :func:`pydicom.pixels.pack_bits` (``pad=False``) gives for that frame alone.
- **Encapsulated** pixel data (:mod:`segmap.imaging.frame_fragments`): each frame is one
  or more fragments (items). The frame's
  fragments come from the Extended Offset Table when present (one fragment per frame,
  PS3.3 C.7.6.3.1.8), else the Basic Offset Table, else: one fragment = one frame when
  there is one frame or as many fragments as frames, all fragments for a one-frame
  image, and otherwise a frame ends at a fragment ending in a JPEG EOI / J2K EOC marker
  (the same rules pydicom's ``generate_fragmented_frames`` applies).

Transfer syntaxes: native little endian (implicit or explicit VR) frames are already
"uncompressed little endian" (:attr:`Conversion.NONE`); Explicit VR Big Endian (retired)
frames of 16, 32 or 64 bits are byte-swapped when read for delivery
(:attr:`Conversion.BYTE_SWAP`; big endian with fewer bits is refused, its OW byte order
being ambiguous); encapsulated frames are decoded with pydicom's decoders
(:attr:`Conversion.DECODE`; see :mod:`segmap.imaging.frame_read`). Deflated files are
refused: their dataset is compressed as a whole, so no frame has a place in the stored
bytes (store such files re-encoded).

Offsets are bytes from the start of the file. Frame numbers are 1-based, as in WADO-RS.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from segmap.errors import SegmapError
from segmap.imaging.frame_fragments import (
    Fragment,
    FragmentLayoutError,
    encapsulated_frames,
    extended_offsets,
)

_PIXEL_DATA = 0x7FE00010
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}
_FORMAT_VERSION = 1
# frames, rows, columns, samples, bits allocated/stored, representation, planar, value
_HEAD = struct.Struct("<IHHHHHBBQQ")


class FrameIndexError(SegmapError):
    """A file whose frames cannot be indexed or read; the message says why."""


class NoPixelData(FrameIndexError):
    """A file without Pixel Data (an RTSTRUCT, a report): it has no frames to index."""


class Conversion(enum.Enum):
    """What it takes to turn a stored frame into uncompressed little-endian pixels."""

    NONE = "none"
    BYTE_SWAP = "byte-swap"
    DECODE = "decode"


@dataclass(frozen=True)
class PixelFormat:
    """The Image Pixel module values a frame's bytes depend on."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int
    photometric_interpretation: str  # last: the others are the packed integers

    @property
    def frame_bits(self) -> int:
        """Bits of one native frame (YBR_FULL_422 stores two samples per pixel)."""
        samples = 2 if self.photometric_interpretation == "YBR_FULL_422" else self.samples_per_pixel
        return self.rows * self.columns * samples * self.bits_allocated

    @property
    def frame_bytes(self) -> int:
        """Bytes of one native frame as delivered (1-bit frames padded to whole bytes)."""
        return (self.frame_bits + 7) // 8


@dataclass(frozen=True)
class FrameIndex:
    """The byte layout of every frame of one stored instance."""

    transfer_syntax_uid: str
    number_of_frames: int
    pixel: PixelFormat
    value_offset: int
    value_length: int
    fragments: tuple[tuple[Fragment, ...], ...] = ()

    @property
    def encapsulated(self) -> bool:
        return UID(self.transfer_syntax_uid).is_encapsulated

    @property
    def conversion(self) -> Conversion:
        """What delivering a frame as uncompressed little endian takes."""
        if self.encapsulated:
            return Conversion.DECODE
        if self.transfer_syntax_uid == ExplicitVRBigEndian and self.pixel.bits_allocated > 8:
            return Conversion.BYTE_SWAP
        return Conversion.NONE

    def to_bytes(self) -> bytes:
        """A compact binary form for a database column (see :meth:`from_bytes`)."""
        p = self.pixel
        text = f"{self.transfer_syntax_uid}\\{p.photometric_interpretation}".encode("ascii")
        ints = astuple(p)[:-1]
        head = _HEAD.pack(self.number_of_frames, *ints, self.value_offset, self.value_length)
        flat = [g for frame in self.fragments for g in frame]
        return b"".join([
            struct.pack("<BH", _FORMAT_VERSION, len(text)), text, head,
            struct.pack("<I", len(self.fragments)),
            np.array([len(f) for f in self.fragments], dtype="<u4").tobytes(),
            np.array([g.offset for g in flat], dtype="<u8").tobytes(),
            np.array([g.length for g in flat], dtype="<u4").tobytes(),
        ])  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> FrameIndex:
        """Read back what :meth:`to_bytes` wrote."""
        version, n_text = struct.unpack_from("<BH", data, 0)
        if version != _FORMAT_VERSION:
            raise FrameIndexError(f"frame index format {version} is not {_FORMAT_VERSION}")
        pos = 3 + n_text
        ts, photometric = data[3:pos].decode("ascii").split("\\")
        n_frames, rows, cols, spp, alloc, stored, rep, planar, v_off, v_len = _HEAD.unpack_from(
            data, pos
        )
        (n_enc,) = struct.unpack_from("<I", data, pos + _HEAD.size)
        pos += _HEAD.size + 4
        counts = np.frombuffer(data, dtype="<u4", count=n_enc, offset=pos).tolist()
        total, pos = sum(counts), pos + 4 * n_enc
        offsets = np.frombuffer(data, dtype="<u8", count=total, offset=pos).tolist()
        lengths = np.frombuffer(data, dtype="<u4", count=total, offset=pos + 8 * total).tolist()
        fragments = [Fragment(o, n) for o, n in zip(offsets, lengths, strict=True)]
        ends = np.cumsum(counts).tolist()
        frames = tuple(tuple(fragments[e - c : e]) for c, e in zip(counts, ends, strict=True))
        pixel = PixelFormat(rows, cols, spp, alloc, stored, rep, planar, photometric)
        return cls(ts, n_frames, pixel, v_off, v_len, frames)


def index_frames(source: str | Path | BinaryIO) -> FrameIndex:
    """Read a Part-10 file's header once and locate every frame of its Pixel Data.

    ``source`` is a path or a seekable binary file (read from its start). Only the
    header, the item tags and (without an offset table, for JPEG data) the last bytes of
    each fragment are read.
    """
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            return _index(fp, source)
    source.seek(0)
    return _index(source, getattr(source, "name", "the stored file"))


def index_frames_of(ds: pydicom.Dataset, fp: BinaryIO) -> FrameIndex:
    """:func:`index_frames` for a dataset already read from ``fp``, sparing a second parse.

    ``ds`` must come from ``pydicom.dcmread(fp, defer_size=…)`` with its Pixel Data left
    unread (never accessed): its recorded file position says where the frames start.
    Otherwise (no Pixel Data, Float Pixel Data, a value already read) the header is read
    again, as :func:`index_frames` does, so the answer and its errors are the same.
    """
    raw = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    tell = getattr(raw, "value_tell", None)
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if tell is None or not ts or ts not in pydicom.uid.AllTransferSyntaxes:
        return index_frames(fp)
    fp.seek(int(tell) - (8 if ts.is_implicit_VR else 12))  # back to the element's tag
    return _index_dataset(ds, fp, getattr(fp, "name", "the stored file"))


def _index(fp: BinaryIO, path: str | Path) -> FrameIndex:
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True)
    except Exception as exc:
        raise FrameIndexError(f"{path}: not a readable DICOM file ({exc})") from None
    return _index_dataset(ds, fp, path)


def _index_dataset(ds: pydicom.Dataset, fp: BinaryIO, path: str | Path) -> FrameIndex:
    """Index the frames of ``ds`` with ``fp`` at its Pixel Data element (or past the end)."""
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if not ts or ts not in pydicom.uid.AllTransferSyntaxes:
        raise FrameIndexError(f"{path}: no known transfer syntax in the file meta ({ts!r})")
    if ts == DeflatedExplicitVRLittleEndian:
        raise FrameIndexError(
            f"{path}: Deflated Explicit VR Little Endian; its frames have no place in the "
            "stored bytes. Re-encode it (e.g. Explicit VR Little Endian) and store it again"
        )
    value_offset, value_length = _pixel_data_header(fp, ts, path)
    pixel = _pixel_format(ds, path)
    frames = int(ds.get("NumberOfFrames") or 1)
    little = ts.is_little_endian
    if ts.is_encapsulated:
        fp.seek(value_offset)
        try:
            fragments = encapsulated_frames(fp, frames, extended_offsets(ds, little), little)
        except FragmentLayoutError as exc:
            raise FrameIndexError(f"{path}: {exc}") from None
        last = fragments[-1][-1]
        value_length = last.offset + last.length - value_offset
        return FrameIndex(str(ts), frames, pixel, value_offset, value_length, fragments)
    if not little and pixel.bits_allocated < 16:
        raise FrameIndexError(
            f"{path}: big endian pixel data with BitsAllocated {pixel.bits_allocated} is not "
            "served; store it as Explicit VR Little Endian"
        )
    needed = (pixel.frame_bits * frames + 7) // 8
    if value_length < needed:
        raise FrameIndexError(
            f"{path}: Pixel Data holds {value_length} bytes; {frames} frame(s) of "
            f"{pixel.rows}x{pixel.columns}x{pixel.samples_per_pixel} at "
            f"{pixel.bits_allocated} bits need {needed}"
        )
    return FrameIndex(str(ts), frames, pixel, value_offset, value_length)


def _pixel_format(ds: pydicom.Dataset, path: str | Path) -> PixelFormat:
    missing = [k for k in ("Rows", "Columns", "BitsAllocated") if ds.get(k) in (None, "")]
    if missing:
        raise FrameIndexError(f"{path}: no pixel data attributes ({', '.join(missing)} missing)")
    bits = int(ds.BitsAllocated)
    if bits not in (1, 8, 16, 32, 64):
        raise FrameIndexError(f"{path}: BitsAllocated {bits} is not 1, 8, 16, 32 or 64")
    return PixelFormat(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples_per_pixel=int(ds.get("SamplesPerPixel") or 1),
        bits_allocated=bits,
        bits_stored=int(ds.get("BitsStored") or bits),
        pixel_representation=int(ds.get("PixelRepresentation") or 0),
        photometric_interpretation=str(ds.get("PhotometricInterpretation") or "MONOCHROME2"),
        planar_configuration=int(ds.get("PlanarConfiguration") or 0),
    )


def _pixel_data_header(fp: BinaryIO, ts: UID, path: str | Path) -> tuple[int, int]:
    """Parse the Pixel Data element header at ``fp``; return (value offset, value length)."""
    order = "<" if ts.is_little_endian else ">"
    start = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        raise NoPixelData(f"{path}: the file has no Pixel Data (7FE0,0010), so no frames")
    group, elem = struct.unpack(f"{order}HH", head[:4])
    tag = group << 16 | elem
    if tag != _PIXEL_DATA:
        raise FrameIndexError(
            f"{path}: element ({group:04X},{elem:04X}) where Pixel Data (7FE0,0010) was "
            "expected; Float/Double Float Pixel Data are not served as frames"
        )
    if ts.is_implicit_VR:
        (length,) = struct.unpack(f"{order}L", head[4:8])
        offset = start + 8
    elif head[4:6] in _LONG_VRS:
        (length,) = struct.unpack(f"{order}L", fp.read(4))
        offset = start + 12
    else:
        (length,) = struct.unpack(f"{order}H", head[6:8])
        offset = start + 8
    if ts.is_encapsulated and length != 0xFFFFFFFF:
        raise FrameIndexError(f"{path}: encapsulated Pixel Data with a defined length")
    return offset, length

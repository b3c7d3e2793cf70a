"""Which fragments of encapsulated Pixel Data make up each frame (PS3.5 Annex A.4).

Used by :mod:`segmap.imaging.frame_index`, which describes the rules: the Extended Offset
Table when present (one fragment per frame), else the Basic Offset Table, else one
fragment per frame, all fragments for a one-frame image, or frames ending at a fragment
that ends in a JPEG EOI / JPEG 2000 EOC marker. pydicom's
:func:`~pydicom.encaps.parse_basic_offsets` and :func:`~pydicom.encaps.parse_fragments`
parse the items; the offsets here are bytes from the start of the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.encaps import parse_basic_offsets, parse_fragments

_EOI_MARKER = b"\xff\xd9"  # JPEG EOI, also JPEG 2000 EOC
_EOI_WINDOW = 10  # pydicom looks for the marker in a fragment's last 10 bytes too


class FragmentLayoutError(ValueError):
    """Fragments that cannot be split into the frames the header announces."""


@dataclass(frozen=True)
class Fragment:
    """One encapsulated fragment's value: file offset and length in bytes."""

    offset: int
    length: int


def extended_offsets(ds: pydicom.Dataset, little: bool) -> tuple[list[int], list[int]] | None:
    """The Extended Offset Table (offsets, lengths in bytes) of ``ds``; None when absent."""
    offsets, lengths = ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths")
    if not offsets or not lengths:
        return None
    fmt = "<" if little else ">"
    n = len(offsets) // 8
    if len(lengths) // 8 != n:
        raise FragmentLayoutError("Extended Offset Table and its Lengths differ in size")
    return (
        list(struct.unpack(f"{fmt}{n}Q", offsets)),
        list(struct.unpack(f"{fmt}{n}Q", lengths)),
    )


def encapsulated_frames(
    fp: BinaryIO,
    frames: int,
    eot: tuple[list[int], list[int]] | None,
    little: bool,
) -> tuple[tuple[Fragment, ...], ...]:
    """The fragments of each of ``frames`` frames; ``fp`` is at the Pixel Data value.

    ``eot`` is :func:`extended_offsets`' answer; ``little`` the transfer syntax's byte
    order. Raises :class:`FragmentLayoutError` saying why the split fails.
    """
    endian = "<" if little else ">"
    try:
        bot = parse_basic_offsets(fp, endianness=endian)
        first = fp.tell()  # first byte of the first fragment's item tag
        _count, item_offsets = parse_fragments(fp, endianness=endian)
    except ValueError as exc:
        raise FragmentLayoutError(f"malformed encapsulated Pixel Data ({exc})") from None
    if eot is not None:
        if len(eot[0]) != frames:
            raise FragmentLayoutError(
                f"Extended Offset Table has {len(eot[0])} entries for {frames} frames"
            )
        return tuple((Fragment(first + o + 8, n),) for o, n in zip(*eot, strict=True))
    fragments = [_fragment(fp, offset, endian) for offset in item_offsets]
    if not fragments:
        raise FragmentLayoutError("encapsulated Pixel Data holds no fragments")
    if bot:
        groups = _group_by_offsets(fragments, [o - first for o in item_offsets], bot)
    elif len(fragments) == frames or frames == 1:
        groups = [[f] for f in fragments] if len(fragments) == frames else [fragments]
    elif len(fragments) > frames:
        groups = _group_by_markers(fp, fragments)
    else:
        groups = []
    if len(groups) != frames:
        raise FragmentLayoutError(
            f"{len(fragments)} fragment(s) cannot be split into NumberOfFrames "
            f"{frames} (found {len(groups)} frame(s)); the file needs an offset table"
        )
    return tuple(tuple(g) for g in groups)


def _fragment(fp: BinaryIO, item_offset: int, endian: str) -> Fragment:
    fp.seek(item_offset + 4)
    (length,) = struct.unpack(f"{endian}L", fp.read(4))
    return Fragment(item_offset + 8, length)


def _group_by_offsets(
    fragments: list[Fragment], relative: list[int], bot: list[int]
) -> list[list[Fragment]]:
    """Fragments per frame from the Basic Offset Table (offsets of each frame's first item)."""
    groups: list[list[Fragment]] = []
    starts = set(bot)
    for fragment, offset in zip(fragments, relative, strict=True):
        if offset in starts or not groups:
            groups.append([])
        groups[-1].append(fragment)
    return groups


def _group_by_markers(fp: BinaryIO, fragments: list[Fragment]) -> list[list[Fragment]]:
    groups: list[list[Fragment]] = [[]]
    for fragment in fragments:
        groups[-1].append(fragment)
        tail = min(_EOI_WINDOW, fragment.length)
        fp.seek(fragment.offset + fragment.length - tail)
        if _EOI_MARKER in fp.read(tail):
            groups.append([])
    return [g for g in groups if g]

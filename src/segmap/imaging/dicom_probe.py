"""Judging a DICOM file from its first bytes, before the rest is received or unpacked.

A file that is not DICOM, or whose header is garbage, can be refused from a bounded
prefix (the service reads at most its ``dicom_probe_bytes``), so a zip entry of 2 GiB of
zeros behind a 'DICM' marker costs a few kilobytes of inflating instead of 2 GiB.

:func:`probe_header` checks, with pydicom's element reader on the prefix only: the
128-byte preamble and 'DICM'; a file meta group (0002) holding a valid
TransferSyntaxUID; then the data set's elements up to the pixel data or the end of the
prefix, which must be in ascending tag order, outside groups 0000 and 0002, and start
in group 0008 or below (every SOP instance has a SOPInstanceUID, (0008,0018)). A header
longer than the prefix passes as far as it was read; the full header read after the file
is staged (:mod:`segmap.imaging.instance_check`) is the final judge.

:func:`check_inflated_size` bounds files in the Deflated Explicit VR transfer syntax,
which pydicom inflates in memory whole before reading a single element.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from pydicom.dataelem import RawDataElement
from pydicom.filereader import data_element_generator
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from segmap.imaging.instance_check import NOT_DICOM, RejectedFile
from segmap.imaging.uids import describe_uid, uid_problem

PREAMBLE_BYTES = 128
MAGIC = b"DICM"
SNIFF_BYTES = PREAMBLE_BYTES + len(MAGIC)  # enough to tell DICOM, zip and other apart
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_TRANSFER_SYNTAX = Tag(0x0002, 0x0010)
_PIXEL_TAGS = (Tag(0x7FE0, 0x0010), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))
_DEFER = 256  # bytes: longer values are skipped, not read, while probing
_INFLATE_CHUNK = 1024 * 1024


def looks_like_zip(first: bytes) -> bool:
    """Whether these first bytes start a zip archive."""
    return first[:4] in ZIP_MAGICS


def has_dicom_marker(first: bytes) -> bool:
    """Whether these first bytes are a Part 10 preamble followed by 'DICM'."""
    return first[PREAMBLE_BYTES:SNIFF_BYTES] == MAGIC


class _Prefix(io.BytesIO):
    """The first bytes of a file; reading past them raises (and is remembered) unless
    they are the whole file, so pydicom stops where the prefix ends."""

    def __init__(self, data: bytes, complete: bool) -> None:
        super().__init__(data)
        self._size = len(data)
        self._complete = complete
        self.overran = False

    def read(self, size: int | None = -1) -> bytes:
        if not self._complete and (size is None or size < 0 or self.tell() + size > self._size):
            self.overran = True
            raise EOFError("end of the probed prefix")
        return super().read(size)


def probe_header(prefix: bytes, *, complete: bool) -> None:
    """Raise :class:`RejectedFile` unless ``prefix`` starts like a DICOM Part 10 file.

    ``complete`` says ``prefix`` is the whole file (then it must hold at least one data
    set element after the file meta group). See the module doc for what is checked.
    """
    if not has_dicom_marker(prefix):
        raise RejectedFile(NOT_DICOM)
    fp = _Prefix(prefix, complete)
    fp.seek(SNIFF_BYTES)
    meta = _read_meta(fp)
    syntax = _transfer_syntax(meta)
    if syntax.is_deflated:
        return  # the data set is compressed; check_inflated_size bounds it once staged
    _walk_data_set(fp, syntax)


def _read_meta(fp: _Prefix) -> dict[BaseTag, RawDataElement]:
    meta: dict[BaseTag, RawDataElement] = {}
    try:
        for raw in data_element_generator(
            fp, False, True, stop_when=lambda tag, _vr, _length: tag.group != 2
        ):
            if isinstance(raw, RawDataElement):
                meta[raw.tag] = raw
    except Exception as exc:  # pydicom raises many kinds of errors on garbage
        if fp.overran:
            raise RejectedFile(
                "not a usable DICOM file: its file meta information (group 0002) does not "
                "end within the first bytes; export it again"
            ) from None
        raise RejectedFile(
            f"not a usable DICOM file: its file meta information cannot be read "
            f"({type(exc).__name__}: {exc}); export it again"
        ) from None
    return meta


def _transfer_syntax(meta: dict[BaseTag, RawDataElement]) -> UID:
    raw = meta.get(_TRANSFER_SYNTAX)
    value = b"" if raw is None or raw.value is None else bytes(raw.value)
    text = value.decode("ascii", errors="replace").rstrip("\0 ")
    if not text:
        raise RejectedFile(
            "not a DICOM file: it has the 'DICM' marker but no file meta information "
            "(group 0002) with a TransferSyntaxUID; upload DICOM files (Part 10) or a zip "
            "of them"
        )
    problem = uid_problem(text)
    if problem is not None:
        raise RejectedFile(
            f"not a usable DICOM file: its TransferSyntaxUID (0002,0010) {describe_uid(text)} "
            f"is not a UID: it {problem}"
        )
    return UID(text)


class _Walk:
    """Top-level data set tags seen so far, judged before their values are read."""

    def __init__(self) -> None:
        self.previous: BaseTag | None = None
        self.count = 0
        self.bad: BaseTag | None = None

    def stop_at(self, tag: BaseTag, _vr: str | None, _length: int) -> bool:
        """pydicom's ``stop_when``: stop at the pixel data, or at a tag no header holds."""
        if tag in _PIXEL_TAGS:
            return True
        # Every SOP instance holds SOPInstanceUID (0008,0018), so the first element is in
        # group 0008 or below (0004: DICOMDIR); random bytes almost never are.
        first_too_late = self.previous is None and tag.group > 0x0008
        out_of_order = self.previous is not None and tag <= self.previous
        if tag.group in (0x0000, 0x0002) or first_too_late or out_of_order:
            self.bad = tag
            return True
        self.previous = tag
        self.count += 1
        return False


def _walk_data_set(fp: _Prefix, syntax: UID) -> None:
    implicit = syntax == ImplicitVRLittleEndian
    little = syntax != ExplicitVRBigEndian
    walk = _Walk()
    try:
        for _element in data_element_generator(
            fp, implicit, little, stop_when=walk.stop_at, defer_size=_DEFER
        ):
            pass
    except Exception as exc:
        if not fp.overran:
            raise RejectedFile(
                f"the file is damaged and cannot be read ({type(exc).__name__}: {exc}); "
                "copy or export it again"
            ) from None
        # Otherwise the header goes on past the prefix; what was read was well-formed.
    if walk.bad is not None:
        raise RejectedFile(
            f"the file is damaged: its header holds element ({walk.bad.group:04X},"
            f"{walk.bad.element:04X}) where none can be (out of order, or not a data set); "
            "export it again"
        )
    if walk.count == 0 and not fp.overran:
        raise RejectedFile("the file is incomplete: it holds file meta information only")


_DEFLATED_UID = DeflatedExplicitVRLittleEndian.encode("ascii")


def check_inflated_size(path: Path, max_bytes: int) -> None:
    """Refuse a Deflated-transfer-syntax file whose data set inflates past ``max_bytes``.

    Inflates in 1 MiB pieces and discards them, so memory stays bounded; files in other
    transfer syntaxes return at once. pydicom would inflate the whole data set in memory.
    """
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
        if not has_dicom_marker(head):
            return
        window = head + f.read(64 * 1024)
        if _DEFLATED_UID not in window:
            return  # the file meta (read below from this window too) cannot name it
        fp = _Prefix(window, complete=False)
        fp.seek(SNIFF_BYTES)
        try:
            meta = _read_meta(fp)
            if not _transfer_syntax(meta).is_deflated:
                return
        except RejectedFile:
            return  # the full header read gives the reason
        f.seek(fp.tell())
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        data = b""
        while True:
            data = inflater.unconsumed_tail or f.read(_INFLATE_CHUNK)
            if not data:
                return
            total += len(inflater.decompress(data, _INFLATE_CHUNK))
            if total > max_bytes:
                raise RejectedFile(
                    f"the file's deflated data set inflates to more than {max_bytes} bytes; "
                    "segmap does not read it. Store it uncompressed or with an image "
                    "compression and upload it again"
                )
            if inflater.eof:
                return

"""Writing a layout as a zip to a stream that cannot seek (an HTTP response, a pipe).

:func:`iter_zip` yields the archive piece by piece while it is made: source files are
read 1 MiB at a time and each piece is handed on before the next is read, so memory stays
the same however many cases there are (one generated label image at a time is the most
held). Python's ``zipfile`` writes to a stream that cannot seek by putting each entry's
sizes and CRC in a data descriptor after its data.

The same entries always give the same bytes: entries are in layout order, every time
stamp is 1980-01-01 00:00 (the earliest a zip holds), permissions are fixed (files 0644,
folders 0755, Unix), JSON is deflated at zlib's default level, NIfTI (already gzip) and
PNG are stored. Entries that could pass 2 GiB are written as ZIP64.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from segmap.datasets.entries import CHUNK, Entry, changed, missing

EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_DIR_MODE = (0o040755 << 16) | 0x10  # Unix folder bits, and MS-DOS's directory flag
_UNIX = 3


class _Pipe:
    """A write-only stream that keeps what was written until :meth:`drain` takes it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.total = 0

    def write(self, data: bytes) -> int:
        if data:
            self._parts.append(bytes(data))
            self.total += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: :meth:`drain` hands the bytes on."""

    def close(self) -> None:
        """Nothing to close: the archive ends with the last :meth:`drain`."""

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _info(root: str, entry: Entry) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{root}/{entry.path}", date_time=EPOCH)
    info.create_system = _UNIX
    if entry.is_dir:
        info.external_attr = _DIR_MODE
        info.compress_type = zipfile.ZIP_STORED
    else:
        info.external_attr = _FILE_MODE
        info.compress_type = zipfile.ZIP_DEFLATED if entry.compress else zipfile.ZIP_STORED
    return info


def iter_zip(entries: Sequence[Entry], root: str) -> Iterator[bytes]:
    """The zip of ``entries`` under folder ``root``, as pieces of bytes.

    Raises (while iterating):
        DatasetError: a source file is missing or changed since the dataset was frozen;
            what was yielded so far is not a complete archive then.
    """
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", allowZip64=True) as archive:
        for entry in entries:
            info = _info(root, entry)
            if entry.is_dir:
                archive.writestr(info, b"")
                yield pipe.drain()
                continue
            big = entry.size_hint > zipfile.ZIP64_LIMIT
            with archive.open(info, mode="w", force_zip64=big) as out:
                if entry.source is not None:
                    yield from _copy(entry, out, pipe)
                else:
                    assert entry.write is not None
                    entry.write(out)
            yield pipe.drain()
    yield pipe.drain()  # the central directory


def _copy(entry: Entry, out: IO[bytes], pipe: _Pipe) -> Iterator[bytes]:
    """Copy a source into the zip entry, yielding the archive's bytes every chunk."""
    assert entry.source is not None
    h = hashlib.sha256()
    try:
        f = open(entry.source, "rb")  # noqa: SIM115 - closed below, across yields
    except FileNotFoundError:
        raise missing(entry) from None
    with f:
        while block := f.read(CHUNK):
            h.update(block)
            out.write(block)
            yield pipe.drain()
    if h.hexdigest() != entry.sha256:
        raise changed(entry)


@dataclass(frozen=True)
class ZipResult:
    """Where a zip was written and its size in bytes."""

    path: Path
    bytes: int


def write_zip(entries: Sequence[Entry], root: str, path: str | Path) -> ZipResult:
    """Write the zip to ``path`` (through a temporary file renamed at the end, so a
    failure leaves nothing)."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in iter_zip(entries, root):
                f.write(piece)
                size += len(piece)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return ZipResult(path, size)

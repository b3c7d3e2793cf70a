"""Files of a session upload, as staged files on disk: loose files and unpacked zip entries.

Zip archives are unpacked entry by entry into fresh staging files, so nothing is held in
memory and entry names never become paths on disk (no traversal is possible: names are
only shown back to the user). The bounds of :mod:`segmap.server.upload_limits` apply:
the entry count is checked before the archive is opened (``zip_directory``); each
entry's first bytes are judged as a DICOM header (``segmap.imaging.dicom_probe``)
before anything of it is written; the rest is copied in a bounded loop that counts the
bytes really unpacked (never the sizes the archive declares) against the per-file and
per-upload limits and the compression ratio, and calls ``stop`` between pieces.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, cast

from segmap.imaging.dicom_probe import looks_like_zip, probe_header
from segmap.imaging.instance_check import RejectedFile
from segmap.server.errors import PayloadTooLarge
from segmap.server.imaging.zip_directory import ZipDirectoryError, check_directory
from segmap.server.storage import StagedFile, Storage
from segmap.server.upload_limits import (
    ArchiveMeter,
    Inflation,
    StopCheck,
    UploadLimits,
    copy_bounded,
    never_stop,
    read_prefix,
)
from segmap.server.web.transfer import IncomingFile, Rejection

# Stored and deflated are what zip tools write by default; bzip2 and lzma inflate without
# an output bound in zipfile, so they are refused rather than trusted.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_NESTED = "a zip inside a zip is not unpacked; unzip it and upload its files"


def is_zip(path: Path) -> bool:
    """Whether the file starts like a zip archive."""
    with open(path, "rb") as f:
        return looks_like_zip(f.read(4))


def stage_path(storage: Storage, path: Path, max_bytes: int) -> StagedFile:
    """Copy a local file into staging (hashing it) so it can be placed like an upload."""
    with storage.stage(max_bytes) as writer, open(path, "rb") as source:
        writer.write_from(source)
        return writer.finish()


def local_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Every file under the given files and folders (folders walked, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


class _Budget:
    """Unpacked bytes still allowed for this upload."""

    def __init__(self, total: int) -> None:
        self.left = total


class _CountingReader:
    """The archive file for ``zipfile``, counting the bytes read from it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        """The caller closes the file it opened."""


def expand(
    storage: Storage,
    incoming: Sequence[IncomingFile],
    limits: UploadLimits,
    stop: StopCheck = never_stop,
) -> Iterator[IncomingFile | Rejection]:
    """Yield each loose file as is and each zip's entries as staged files, or rejections.

    A zip's own staging file is discarded once unpacked. The caller owns (and must place
    or discard) every ``IncomingFile`` yielded. ``stop`` is called between pieces of work
    and may raise to end it (whatever was staged is then the caller's to discard).
    """
    budget = _Budget(limits.max_unzipped_bytes)
    for item in incoming:
        stop()
        if not is_zip(item.staged.path):
            yield item
            continue
        try:
            yield from _unpack(storage, item, limits, budget, stop)
        finally:
            storage.discard(item.staged)


def _unpack(
    storage: Storage, item: IncomingFile, limits: UploadLimits, budget: _Budget, stop: StopCheck
) -> Iterator[IncomingFile | Rejection]:
    with open(item.staged.path, "rb") as raw:
        try:
            check_directory(raw, item.staged.size, limits.max_zip_entries)
        except ZipDirectoryError as exc:
            yield Rejection(item.name, str(exc))
            return
        counted = _CountingReader(raw)
        try:
            archive = zipfile.ZipFile(cast(BinaryIO, counted))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            yield Rejection(item.name, f"not a readable zip archive ({exc}); zip the files again")
            return
        meter = ArchiveMeter(limits, item.staged.size, lambda: counted.bytes_read)
        with archive:
            entries = [i for i in archive.infolist() if not i.is_dir()]
            for index, info in enumerate(entries):
                name = f"{item.name}/{info.filename}"
                if meter.exhausted is not None:
                    left = len(entries) - index
                    yield Rejection(f"{name} and {left - 1} more", meter.exhausted)
                    return
                if budget.left <= 0:
                    yield Rejection(name, _too_much_unpacked(limits))
                    continue
                stop()
                yield _unpack_entry(storage, archive, info, name, limits, budget, meter, stop)


def _unpack_entry(
    storage: Storage,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    limits: UploadLimits,
    budget: _Budget,
    meter: ArchiveMeter,
    stop: StopCheck,
) -> IncomingFile | Rejection:
    if info.flag_bits & 0x1:
        return Rejection(name, "the zip entry is encrypted; zip the files without a password")
    if info.compress_type not in _METHODS:
        return Rejection(
            name,
            f"the zip entry uses compression method {info.compress_type}; segmap unpacks "
            "stored and deflated entries (what zip tools write by default): zip it again",
        )
    cap = min(limits.max_file_bytes, budget.left)
    entry = meter.entry()
    try:
        with archive.open(info) as source:
            # One byte more than the probe tells whether the prefix is the whole entry.
            head = read_prefix(source, limits.probe_bytes + 1, entry, stop)
            if looks_like_zip(head):
                return Rejection(name, _NESTED)
            probe_header(head[: limits.probe_bytes], complete=len(head) <= limits.probe_bytes)
            with storage.stage(cap) as writer:
                writer.write(head)
                copy_bounded(source, writer.write, entry, stop)
                staged = writer.finish()
    except RejectedFile as exc:
        return Rejection(name, exc.reason)
    except Inflation as exc:
        return Rejection(name, exc.reason)
    except PayloadTooLarge:
        if cap < limits.max_file_bytes:  # the upload's budget ran out, not this file's
            budget.left = 0
            return Rejection(name, _too_much_unpacked(limits))
        return Rejection(
            name,
            f"unpacks to more than the limit of {limits.max_file_bytes} bytes per file",
        )
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        zlib.error,
    ) as exc:
        return Rejection(name, f"the zip entry is damaged and cannot be unpacked ({exc})")
    except NotImplementedError as exc:
        return Rejection(name, f"the zip entry uses a compression segmap cannot read ({exc})")
    budget.left -= staged.size
    return IncomingFile(name, staged)


def _too_much_unpacked(limits: UploadLimits) -> str:
    return (
        f"not unpacked: the upload's zip files unpack to more than {limits.max_unzipped_bytes} "
        "bytes; upload them in several parts"
    )

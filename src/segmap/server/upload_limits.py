"""The bounds on what one upload may make the service unpack and parse, in one place.

Session uploads (zip archives of DICOM files) use them; STOW-RS bodies are meant to use
the same ones. Every bound is counted on the bytes as they flow, never taken from sizes an
archive or a header declares:

* ``max_file_bytes`` — one file, also one unpacked zip entry;
* ``max_unzipped_bytes`` — every zip entry of one upload together;
* ``max_zip_entries`` — entries one archive may list (``imaging.zip_directory`` counts
  them before ``zipfile`` reads the directory into memory);
* ``max_ratio`` past ``ratio_grace_bytes`` — unpacked bytes per compressed byte, for each
  entry (against the compressed bytes read for it so far) and for the archive as a whole
  (against its size);
* ``probe_bytes`` — how much of each file is judged as a DICOM header
  (``segmap.imaging.dicom_probe``) before the rest is unpacked.

:func:`read_prefix` and :func:`copy_bounded` are the bounded read loops that apply them,
calling a ``stop`` check between pieces so work ends when the client goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from segmap.server.settings import (
    DEFAULT_DICOM_PROBE_BYTES,
    DEFAULT_ZIP_MAX_ENTRIES,
    DEFAULT_ZIP_MAX_RATIO,
    DEFAULT_ZIP_RATIO_GRACE_BYTES,
    UNZIPPED_FACTOR,
    Settings,
)

# Bytes unpacked per step. zipfile reads about this much compressed data ahead of what it
# has inflated, so a small step keeps the per-entry ratio close to the truth.
READ_CHUNK = 64 * 1024

StopCheck = Callable[[], None]
"""Called between steps of long work; raises (e.g. ``ClientGone``) to end it."""


def never_stop() -> None:
    """A :data:`StopCheck` for work nobody waits on (the command line, the demo)."""


@dataclass(frozen=True)
class UploadLimits:
    """The bounds of one upload, in bytes and counts (see the module doc)."""

    max_file_bytes: int
    max_unzipped_bytes: int
    max_zip_entries: int = DEFAULT_ZIP_MAX_ENTRIES
    max_ratio: int = DEFAULT_ZIP_MAX_RATIO
    ratio_grace_bytes: int = DEFAULT_ZIP_RATIO_GRACE_BYTES
    probe_bytes: int = DEFAULT_DICOM_PROBE_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        """The limits a service runs with."""
        return cls(
            max_file_bytes=settings.max_upload_bytes,
            max_unzipped_bytes=settings.effective_max_unzipped_bytes,
            max_zip_entries=settings.zip_max_entries,
            max_ratio=settings.zip_max_ratio,
            ratio_grace_bytes=settings.zip_ratio_grace_bytes,
            probe_bytes=settings.dicom_probe_bytes,
        )

    @classmethod
    def for_upload_limit(cls, max_upload_bytes: int) -> UploadLimits:
        """Default limits around a single-file limit (unzipped: 4x it)."""
        return cls(max_upload_bytes, UNZIPPED_FACTOR * max_upload_bytes)


class Inflation(Exception):
    """Unpacking went past the compression ratio; ``str()`` is the reason for the user.

    ``whole_archive`` is True when the archive's total did (nothing more of it is unpacked).
    """

    def __init__(self, reason: str, whole_archive: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.whole_archive = whole_archive


class ArchiveMeter:
    """Unpacked bytes of one archive against its compressed bytes.

    ``packed_read`` tells how many bytes have been read from the archive file so far.
    """

    def __init__(self, limits: UploadLimits, archive_size: int, packed_read: Callable[[], int]):
        self.limits = limits
        self.archive_size = archive_size
        self.packed_read = packed_read
        self.unpacked = 0
        self.exhausted: str | None = None  # set once the whole archive went past the ratio

    @property
    def archive_allowance(self) -> int:
        """Most bytes the whole archive may unpack to."""
        return max(self.limits.ratio_grace_bytes, self.limits.max_ratio * self.archive_size)

    def entry(self) -> EntryMeter:
        """Start counting one entry (call before opening it)."""
        return EntryMeter(self, self.packed_read())


class EntryMeter:
    """Unpacked bytes of one entry against the compressed bytes read for it."""

    def __init__(self, archive: ArchiveMeter, packed_start: int) -> None:
        self.archive = archive
        self.packed_start = packed_start
        self.unpacked = 0

    def add(self, count: int) -> None:
        """Count ``count`` more unpacked bytes; raise :class:`Inflation` past a ratio."""
        self.unpacked += count
        archive = self.archive
        archive.unpacked += count
        limits = archive.limits
        packed = max(archive.packed_read() - self.packed_start, 1)
        if self.unpacked > limits.ratio_grace_bytes and self.unpacked > limits.max_ratio * packed:
            raise Inflation(
                f"not unpacked: the entry inflates to more than {limits.max_ratio} times its "
                f"compressed size ({self.unpacked} bytes from {packed}), which only a zip bomb "
                "does; zip the files again without padding",
                whole_archive=False,
            )
        if archive.unpacked > archive.archive_allowance:
            archive.exhausted = (
                f"not unpacked: the archive unpacks to more than {limits.max_ratio} times its "
                f"size of {archive.archive_size} bytes (past {archive.archive_allowance} "
                "bytes); split it into several uploads"
            )
            raise Inflation(archive.exhausted, whole_archive=True)


def read_prefix(source: IO[bytes], size: int, meter: EntryMeter, stop: StopCheck) -> bytes:
    """Up to ``size`` first bytes of ``source`` (fewer at its end), counted by ``meter``."""
    pieces: list[bytes] = []
    left = size
    while left > 0:
        stop()
        piece = source.read(min(left, READ_CHUNK))
        if not piece:
            break
        meter.add(len(piece))
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def copy_bounded(
    source: IO[bytes], sink: Callable[[bytes], None], meter: EntryMeter, stop: StopCheck
) -> None:
    """Copy the rest of ``source`` into ``sink`` piece by piece, each counted by ``meter``
    (which raises past a ratio) and each preceded by ``stop()``; ``sink`` enforces sizes."""
    while True:
        stop()
        piece = source.read(READ_CHUNK)
        if not piece:
            return
        meter.add(len(piece))
        sink(piece)

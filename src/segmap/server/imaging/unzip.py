"""Files of a session upload, as staged files on disk: loose files and unpacked zip entries.

Zip archives are unpacked entry by entry into fresh staging files, so nothing is held in
memory and entry names never become paths on disk (no traversal is possible: names are
only shown back to the user). Sizes are counted while decompressing, not taken from the
archive's headers, so a zip bomb stops at the limit instead of filling the disk.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from segmap.server.errors import PayloadTooLarge
from segmap.server.storage import StagedFile, Storage
from segmap.server.web.transfer import IncomingFile, Rejection

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
DEFAULT_MAX_ZIP_ENTRIES = 100_000
# Unpacked bytes allowed per upload, as a multiple of the single-file upload limit.
UNZIP_FACTOR = 4


@dataclass(frozen=True)
class UploadLimits:
    """Size limits of one session upload, in bytes.

    ``max_file_bytes`` bounds each file (also each unpacked zip entry);
    ``max_unzipped_bytes`` all zip entries together; ``max_zip_entries`` the entries of
    one archive.
    """

    max_file_bytes: int
    max_unzipped_bytes: int
    max_zip_entries: int = DEFAULT_MAX_ZIP_ENTRIES

    @classmethod
    def for_upload_limit(cls, max_upload_bytes: int) -> UploadLimits:
        """Limits derived from the service's single-upload limit."""
        return cls(max_upload_bytes, UNZIP_FACTOR * max_upload_bytes)


def is_zip(path: Path) -> bool:
    """Whether the file starts like a zip archive."""
    with open(path, "rb") as f:
        return f.read(4) in ZIP_MAGIC


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


def expand(
    storage: Storage, incoming: Sequence[IncomingFile], limits: UploadLimits
) -> Iterator[IncomingFile | Rejection]:
    """Yield each loose file as is and each zip's entries as staged files, or rejections.

    A zip's own staging file is discarded once unpacked. The caller owns (and must place
    or discard) every ``IncomingFile`` yielded.
    """
    budget = _Budget(limits.max_unzipped_bytes)
    for item in incoming:
        if not is_zip(item.staged.path):
            yield item
            continue
        try:
            yield from _unpack(storage, item, limits, budget)
        finally:
            storage.discard(item.staged)


def _unpack(
    storage: Storage, item: IncomingFile, limits: UploadLimits, budget: _Budget
) -> Iterator[IncomingFile | Rejection]:
    try:
        archive = zipfile.ZipFile(item.staged.path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Rejection(item.name, f"not a readable zip archive ({exc}); zip the files again")
        return
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir()]
        if len(entries) > limits.max_zip_entries:
            yield Rejection(
                item.name,
                f"the zip holds {len(entries)} files, more than the limit of "
                f"{limits.max_zip_entries}; split it into several uploads",
            )
            return
        for info in entries:
            name = f"{item.name}/{info.filename}"
            if budget.left <= 0:
                yield Rejection(name, _too_much_unpacked(limits))
                continue
            yield _unpack_entry(storage, archive, info, name, limits, budget)


def _unpack_entry(
    storage: Storage,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    limits: UploadLimits,
    budget: _Budget,
) -> IncomingFile | Rejection:
    if info.flag_bits & 0x1:
        return Rejection(name, "the zip entry is encrypted; zip the files without a password")
    cap = min(limits.max_file_bytes, budget.left)
    try:
        with storage.stage(cap) as writer, archive.open(info) as source:
            writer.write_from(source)
            staged = writer.finish()
    except PayloadTooLarge:
        if cap < limits.max_file_bytes:  # the upload's budget ran out, not this file's
            budget.left = 0
            return Rejection(name, _too_much_unpacked(limits))
        return Rejection(
            name,
            f"unpacks to more than the limit of {limits.max_file_bytes} bytes per file",
        )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        return Rejection(name, f"the zip entry is damaged and cannot be unpacked ({exc})")
    except NotImplementedError as exc:
        return Rejection(name, f"the zip entry uses a compression segmap cannot read ({exc})")
    budget.left -= staged.size
    if is_zip(staged.path):
        storage.discard(staged)
        return Rejection(name, "a zip inside a zip is not unpacked; unzip it and upload its files")
    return IncomingFile(name, staged)


def _too_much_unpacked(limits: UploadLimits) -> str:
    return (
        f"not unpacked: the upload's zip files unpack to more than {limits.max_unzipped_bytes} "
        "bytes; upload them in several parts"
    )

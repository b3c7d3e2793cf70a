"""File storage behind a small interface, with a local-folder implementation.

Every write goes to a staging file first (hashed and size-checked while it streams in),
then is moved into place with one atomic rename. Stored objects are never modified: a
re-upload is a new object and the database row switches to it, so a reader or a second
writer never sees a torn file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from segmap.server.errors import PayloadTooLarge
from segmap.server.private_files import FILE_MODE, fsync_folder, make_private_dir
from segmap.server.staging_area import StagingArea

CHUNK = 1024 * 1024
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class StagedFile:
    """An upload received in full and not yet placed: where it is, its size and SHA-256."""

    path: Path
    size: int
    sha256: str


class StagingWriter:
    """Receives an upload chunk by chunk, enforcing ``max_bytes`` and hashing as it goes.

    Use as a context manager: leaving the block without ``finish()`` removes the file.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 is masked by the umask; make it exact
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes
        self._done = False

    def write(self, chunk: bytes) -> None:
        """Append bytes; raises ``PayloadTooLarge`` (and discards) past ``max_bytes``."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.discard()
            raise PayloadTooLarge(
                f"the upload is larger than the limit of {self.max_bytes} bytes; "
                "ask the administrator to raise --max-upload-bytes"
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def write_from(self, source: BinaryIO | Iterable[bytes] | bytes) -> None:
        """Copy a whole binary file object or iterable of chunks."""
        if isinstance(source, (bytes, bytearray)):
            self.write(bytes(source))
        elif hasattr(source, "read"):
            while chunk := source.read(CHUNK):
                self.write(chunk)
        else:
            for chunk in source:
                self.write(chunk)

    def finish(self) -> StagedFile:
        """Flush to disk and return the staged file (the caller owns it from now on)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._done = True
        return StagedFile(self.path, self.size, self._hash.hexdigest())

    def close(self) -> None:
        """Discard the file unless :meth:`finish` made it the caller's (then a no-op)."""
        if not self._done:
            self.discard()

    def discard(self) -> None:
        """Close and delete the partial file."""
        if not self._file.closed:
            self._file.close()
        self._done = True
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.discard()


class Storage(Protocol):
    """What the service needs from a file store. Keys are ``/``-separated safe names."""

    def stage(self, max_bytes: int) -> StagingWriter:
        """Start receiving an upload."""
        ...

    def commit(self, staged: StagedFile, key: str, *, sync: bool = True) -> None:
        """Move a staged file to ``key`` atomically (and durably, unless ``sync`` is False:
        then the caller calls :meth:`sync_folders` before it records the key)."""
        ...

    def sync_folders(self, keys: Iterable[str]) -> None:
        """Make the moves of ``commit(..., sync=False)`` to ``keys`` durable."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open a stored object for reading; ``FileNotFoundError`` when absent."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """A whole (small) object."""
        ...

    def discard(self, staged: StagedFile) -> None:
        """Drop a staged file that will not be committed."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; no error when it is already gone."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with ``prefix/``."""
        ...


def new_key(prefix: str) -> str:
    """A fresh, never reused key under ``prefix`` (e.g. ``models/12/3f2a...``)."""
    return f"{prefix}/{uuid.uuid4().hex}"


class LocalStorage:
    """Objects as files under ``root/objects``; staging files under this process's own
    folder ``root/staging/<pid>-<random>/`` (``staging``), its lock under ``root/locks``
    (see ``staging_area``).

    Both live on one filesystem so the final rename is atomic. Folders are created 0700
    and files 0600 (``private_files``). ``close()`` releases the staging folder's lock.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        make_private_dir(root)
        make_private_dir(self.objects)
        self._staging = StagingArea(root / "staging", root / "locks")
        self.staging = self._staging.folder

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not parts or not all(_KEY_PART.match(p) and p not in (".", "..") for p in parts):
            # Keys are made by the server, never by users; a bad one is a bug.
            raise ValueError(f"invalid storage key {key!r}")
        return self.objects.joinpath(*parts)

    def stage(self, max_bytes: int) -> StagingWriter:
        """Start receiving an upload into ``root/staging``."""
        return StagingWriter(self.staging, max_bytes)

    def commit(self, staged: StagedFile, key: str, *, sync: bool = True) -> None:
        """Rename the staged file to the object path and make the rename durable.

        The bytes were flushed when staged; the rename is durable once its folder is
        flushed. ``sync=False`` leaves that to :meth:`sync_folders`, so a batch of files
        into one folder costs one folder flush instead of one each.
        """
        target = self._path(key)
        make_private_dir(target.parent)
        os.replace(staged.path, target)
        # The orphan sweep spares young files: their age counts from now, not from when
        # the bytes were received.
        os.utime(target)
        if sync:
            fsync_folder(target.parent)

    def sync_folders(self, keys: Iterable[str]) -> None:
        """Flush each folder holding one of ``keys`` once (see :meth:`commit`)."""
        for folder in sorted({self._path(key).parent for key in keys}):
            fsync_folder(folder)

    def discard(self, staged: StagedFile) -> None:
        """Delete a staged file."""
        with contextlib.suppress(FileNotFoundError):
            staged.path.unlink()

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading."""
        return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it

    def read_bytes(self, key: str) -> bytes:
        """A whole (small) object."""
        return self._path(key).read_bytes()

    def local_path(self, key: str) -> Path:
        """Where an object lives on local disk, for tools that read files in place.

        Callers must only read it: objects are never modified once placed.
        """
        return self._path(key)

    def exists(self, key: str) -> bool:
        """Whether the object is present."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove an object."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def delete_prefix(self, prefix: str) -> None:
        """Remove a whole key prefix (e.g. every file of a deleted model)."""
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def sweep_staging(self, older_than_s: float = 3600.0, *, include_own: bool = True) -> int:
        """Delete what crashed uploads left in staging; returns how many folders and files.

        Other processes' folders go as soon as their owner has ended (at once after a
        kill -9, never while it runs); loose files of the older layout only when older
        than ``older_than_s`` seconds, and so do this process's own files unless
        ``include_own`` is False (a sweep while uploads may be waiting in them).
        """
        removed = self._staging.sweep(older_than_s)
        if not include_own:
            return removed
        cutoff = time.time() - older_than_s
        for path in self.staging.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def close(self) -> None:
        """Release this process's staging folder (swept by the next start-up)."""
        self._staging.close()


def iter_file(handle: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield a file's bytes in chunks and close it at the end (for streaming responses)."""
    with handle:
        while data := handle.read(chunk):
            yield data

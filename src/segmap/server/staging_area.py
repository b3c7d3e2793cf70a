"""Each process's own staging folder, and removing the folders of processes that are gone.

Uploads are received into ``staging/<pid>-<random>/``, and the process holds the lock
file ``locks/<pid>-<random>.lock`` with ``flock`` for as long as it runs (kept out of
``staging/``, which holds only what uploads wrote). The kernel drops the lock when the
process ends, however it ends (kill -9 too), so another process can tell, without
guessing from file ages, that a folder's owner is gone: if it can take the lock, nobody
is writing there and the folder is removed; if it cannot, the owner is alive and the
folder is left alone. Several services sharing one data folder therefore never remove
each other's uploads in progress. (The lock needs a filesystem with working ``flock``:
local disks, and NFS on Linux, which emulates it.)

Files of the older layout (``.part`` files directly in ``staging/``) carry no owner and
are only removed once they are older than the age given to :meth:`StagingArea.sweep`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from segmap.server.private_files import FILE_MODE, make_private_dir

LOCK_SUFFIX = ".lock"


def _open_lock(path: Path, create: bool) -> BinaryIO:
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), FILE_MODE)
    if create:
        os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "r+b")


def _try_lock(handle: BinaryIO) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class StagingArea:
    """The staging root, this process's folder in it (``folder``) and the sweep of others.

    The lock is taken before the folder is made, so a folder whose lock can be taken
    belongs to nobody. Closing (or the process ending) releases the lock.
    """

    def __init__(self, root: Path, lock_dir: Path) -> None:
        self.root = root
        self.lock_dir = lock_dir
        make_private_dir(root)
        make_private_dir(lock_dir)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lock = _open_lock(self._lock_path(self.token), create=True)
        if not _try_lock(self._lock):  # a fresh random name: nobody else can hold it
            raise RuntimeError(f"cannot lock the staging folder {self.token}")
        self.folder = root / self.token
        make_private_dir(self.folder)

    def _lock_path(self, token: str) -> Path:
        return self.lock_dir / f"{token}{LOCK_SUFFIX}"

    def sweep(self, older_than_s: float = 3600.0) -> int:
        """Remove the staging folders of ended processes, and loose files older than
        ``older_than_s`` seconds; returns how many folders and files were removed."""
        removed = 0
        for lock_path in _entries(self.lock_dir):
            if lock_path.name.endswith(LOCK_SUFFIX) and lock_path.name != f"{self.token}.lock":
                removed += self._sweep_owner(lock_path)
        cutoff = time.time() - older_than_s
        for path in _entries(self.root):
            if path.name == self.token:
                continue
            if path.is_dir():
                if not self._lock_path(path.name).exists() and _older(path, cutoff):
                    shutil.rmtree(path, ignore_errors=True)  # a folder nobody can own
                    removed += 1
            elif _older(path, cutoff):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    def _sweep_owner(self, lock_path: Path) -> int:
        """Remove a folder whose owner's lock can be taken (the owner is gone)."""
        try:
            handle = _open_lock(lock_path, create=False)
        except FileNotFoundError:
            return 0  # swept by another process a moment ago
        with handle:
            if not _try_lock(handle):
                return 0  # its owner is alive
            folder = self.root / lock_path.name.removesuffix(LOCK_SUFFIX)
            existed = folder.exists()
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()  # while still holding it: nobody else sweeps it now
        return 1 if existed else 0

    def close(self) -> None:
        """Release the lock (the next sweep by any process removes the folder)."""
        self._lock.close()


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False

"""Folders and files only the service's own user can read: 0700 folders, 0600 files.

The data folder holds patient images, password hashes and the cookie key, so everything
segmap creates in it is owner-only. Modes are set with ``chmod`` after creating, so they
do not depend on the umask the service was started with. Folders and files that already
exist are left as they are (an administrator may have chosen their modes).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, each created one with mode 0700."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            folder.mkdir(mode=DIR_MODE)
            os.chmod(folder, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 unless it exists (its folder must exist)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_file_once(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` whole (mode 0600, on disk), unless a file is there.

    Returns True when this call made the file, False when one was there (made by
    another process meanwhile, perhaps: its content wins). The bytes are written and
    synced in a private temporary file beside ``path``, then hard-linked into place:
    the link either appears with all the bytes in it or fails because ``path`` exists,
    so no process ever reads a file made but not yet written (which creating ``path``
    with O_EXCL and then writing it would let one do), and a crash leaves no empty
    file behind. ``path``'s folder must exist.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes it 0600 already; say so whatever it does
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        fsync_folder(path.parent)  # the new name survives a crash of the machine
        return True
    finally:
        os.unlink(temp)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a file made, renamed or linked in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

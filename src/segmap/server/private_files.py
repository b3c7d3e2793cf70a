"""Folders and files only the service's own user can read: 0700 folders, 0600 files.

The data folder holds patient images, password hashes and the cookie key, so everything
segmap creates in it is owner-only. Modes are set with ``chmod`` after creating, so they
do not depend on the umask the service was started with. Folders and files that already
exist are left as they are (an administrator may have chosen their modes).
"""

from __future__ import annotations

import contextlib
import os
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

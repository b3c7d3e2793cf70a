"""Writing a file the user named (``-o OUT``): atomically, and never over one unasked."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from segmap.errors import SegmapError


class OutputError(SegmapError):
    """An output file that cannot or must not be written."""


def write_new_file(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the
    whole new one, never a part. Without ``force`` an existing file is never replaced,
    even one created by someone else while we were writing.

    Raises:
        OutputError: ``path`` exists (without ``force``), is a folder, or cannot be written.
    """
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name with -o")
    if not force and path.exists():
        raise OutputError(_exists(path))
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")
    temp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never write through a file or link that appeared under our name.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _move_into_place(temp, path, force=force)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _move_into_place(temp: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(temp, path)
        return
    try:
        # A hard link fails if the name exists, closing the gap between check and write.
        os.link(temp, path)
    except FileExistsError:
        raise OutputError(_exists(path)) from None
    except OSError:
        # File systems without hard links: the existence check above has to do.
        if path.exists():
            raise OutputError(_exists(path)) from None
        os.replace(temp, path)


def _exists(path: Path) -> str:
    return f"{path} already exists; use --force to replace it, or -o to choose another name"

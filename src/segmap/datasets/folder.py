"""Writing a layout into a folder: hard links where the file system allows, else copies.

Source files are checked against their SHA-256 first, then hard-linked (same file system,
no copy; the link keeps the bytes even when a later conversion replaces the file by a
new one, as segmap's outputs always are) or, where linking fails (another file system,
no permission), copied. Generated files are written. Everything goes into a hidden
staging folder beside the destination and is renamed into place at the end, so the
destination receives the whole dataset or nothing.

A hard-linked file is the same file as its source: do not edit an exported image in
place (training frameworks only read their raw data).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segmap.datasets.entries import Entry, check_sources, copy_checked
from segmap.datasets.errors import DatasetError

FOLDER_MODE = 0o755


@dataclass(frozen=True)
class FolderResult:
    """Where a dataset was written and how: files linked, copied and generated, bytes."""

    path: Path
    linked: int
    copied: int
    generated: int
    bytes: int


def write_folder(
    entries: Sequence[Entry], root: str, out_dir: str | Path, *, force: bool = False
) -> FolderResult:
    """Write ``entries`` into ``out_dir/root``.

    Raises:
        DatasetError: ``out_dir/root`` exists (and not ``force``), or a source file is
            missing or changed; nothing is left behind then.
    """
    out_dir = Path(out_dir).absolute()
    target = out_dir / root
    if target.exists() and not force:
        raise DatasetError(
            f"{target} already exists; remove it, choose another --out, or "
            "give --force to replace it"
        )
    if target.exists() and not target.is_dir():
        raise DatasetError(f"{target} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root}.staging-", dir=out_dir))
    os.chmod(staging, FOLDER_MODE)  # mkdtemp makes it private; the dataset is not
    linked = copied = generated = total = 0
    try:
        for entry in entries:
            dst = staging / entry.path
            if entry.is_dir:
                dst.mkdir(parents=True, exist_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if entry.source is not None:
                if _link(entry, dst):
                    linked += 1
                else:
                    with open(dst, "wb") as f:
                        copy_checked(entry, f)
                    copied += 1
            else:
                assert entry.write is not None
                with open(dst, "wb") as f:
                    entry.write(f)
                generated += 1
            total += dst.stat().st_size
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return FolderResult(target, linked, copied, generated, total)


def _link(entry: Entry, dst: Path) -> bool:
    """Hard-link ``entry.source`` at ``dst`` after checking it; False if linking fails."""
    assert entry.source is not None
    check_sources([entry])
    try:
        os.link(entry.source, dst)
    except OSError:
        return False
    return True


def _move_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    # --force: move the old one aside first, so a failure can put it back.
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.parent))
    aside = old / target.name
    os.replace(target, aside)
    try:
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(aside, target)
        raise
    shutil.rmtree(old, ignore_errors=True)

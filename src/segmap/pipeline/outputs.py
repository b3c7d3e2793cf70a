"""An output folder that receives all of a conversion's files or none of them.

Files are written into a hidden staging folder beside the destination (same parent, so
on the same file system and a rename is atomic). Only when every file has been written
are they renamed into the destination. If anything fails before that, or while moving,
the destination is left exactly as it was: files it already held are restored, folders
created for it are removed, and a destination that did not exist still does not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from segmap.errors import SegmapError


class OutputTransaction:
    """Stage files for ``destination`` and move them in on :meth:`commit`.

    Use as a context manager::

        with OutputTransaction(out_dir) as tx:
            write_mask(tx.path("mask.nii.gz"))
            tx.commit()

    Leaving the block without :meth:`commit` (or by an exception) discards everything
    staged. Files already in ``destination`` that are not re-written are left alone;
    files with the same name are replaced, each by an atomic rename.
    """

    def __init__(self, destination: str | os.PathLike[str]) -> None:
        self.destination = Path(destination).absolute()
        self._staging: Path | None = None
        self._created_dirs: list[Path] = []
        self._committed = False

    # --- context manager -----------------------------------------------------------

    def __enter__(self) -> OutputTransaction:
        self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.abort()

    # --- staging -----------------------------------------------------------------------

    def begin(self) -> Path:
        """Create the staging folder (and any missing parents of the destination)."""
        if self.destination.exists() and not self.destination.is_dir():
            raise SegmapError(f"output path {self.destination} exists and is not a folder")
        # Conversions running side by side (segmap batch) may create, or on failure remove,
        # the same parent folders at the same moment: take what exists, try again if a
        # parent vanished under us.
        for attempt in range(3):
            self._make_parents(self.destination.parent)
            try:
                self._staging = Path(
                    tempfile.mkdtemp(
                        prefix=f".{self.destination.name}.staging-", dir=self.destination.parent
                    )
                )
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            break
        return self.staging_dir

    @property
    def staging_dir(self) -> Path:
        """The folder files are written to before commit."""
        if self._staging is None:
            raise RuntimeError("OutputTransaction used before begin()")
        return self._staging

    def path(self, name: str) -> Path:
        """Where to write output file ``name`` (a plain file name, no folders)."""
        if not name or Path(name).name != name or name in {".", ".."}:
            raise ValueError(f"output name must be a plain file name, got {name!r}")
        return self.staging_dir / name

    # --- ending --------------------------------------------------------------------------

    def commit(self) -> list[Path]:
        """Move every staged file into the destination; returns their final paths.

        If a move fails, files already moved are taken back, replaced files restored,
        and the error is raised.
        """
        staging = self.staging_dir
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        in_the_way = [n for n in names if (self.destination / n).is_dir()]
        if in_the_way:
            raise SegmapError(
                f"{self.destination / in_the_way[0]} is a folder where an output file must "
                "go; move it away or choose another output folder"
            )
        backup = staging / ".replaced"
        created_dest = False
        moved: list[str] = []
        replaced: list[str] = []
        try:
            if not self.destination.exists():
                self.destination.mkdir()
                created_dest = True
            backup.mkdir()
            for name in names:
                target = self.destination / name
                if target.exists():
                    os.replace(target, backup / name)
                    replaced.append(name)
                os.replace(staging / name, target)
                moved.append(name)
        except BaseException:
            self._roll_back(moved, replaced, backup, created_dest)
            raise
        self._committed = True
        shutil.rmtree(staging, ignore_errors=True)
        self._staging = None
        return [self.destination / n for n in names]

    def abort(self) -> None:
        """Discard everything staged and remove folders created for the destination."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        for d in reversed(self._created_dirs):
            try:
                d.rmdir()
            except OSError:
                break  # someone else put something there: leave it
        self._created_dirs.clear()

    def _roll_back(
        self, moved: list[str], replaced: list[str], backup: Path, created_dest: bool
    ) -> None:
        staging = self.staging_dir
        for name in moved:
            with contextlib.suppress(OSError):
                os.replace(self.destination / name, staging / name)
        for name in replaced:
            with contextlib.suppress(OSError):
                os.replace(backup / name, self.destination / name)
        if created_dest:
            with contextlib.suppress(OSError):
                self.destination.rmdir()

    def _make_parents(self, folder: Path) -> None:
        missing: list[Path] = []
        p = folder
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue  # made a moment ago by a conversion running beside this one
            self._created_dirs.append(d)

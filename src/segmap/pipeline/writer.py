"""The output writer of a conversion: NIfTI files gzip-compressed on one background thread.

ISA-L and zlib release the GIL while they compress, so a file queued here is written
while the conversion goes on decoding, resampling and drawing in its own thread. The
writer keeps a reference to each queued array until it is written, records every file
(its grid, data type, size and checksum) in the order queued, and is shut down -- waiting
for its last file -- before the output transaction ends. With ``SEGMAP_NO_SPEEDUPS=1``
(:mod:`segmap.pipeline.speedups`) each file is written at once, in the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from segmap.imaging.grid import VoxelGrid
from segmap.pipeline.outputs import OutputTransaction
from segmap.pipeline.report import OutputRecord, file_sha256
from segmap.pipeline.speedups import speedups_enabled
from segmap.pipeline.timing import StageClock


class OutputWriter:
    """Writes NIfTI outputs on one background thread and records them in order."""

    def __init__(self, tx: OutputTransaction, clock: StageClock) -> None:
        self.tx = tx
        self._clock = clock
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-writer")
            if speedups_enabled()
            else None
        )
        self._pending: list[tuple[Future[None] | None, str, str, VoxelGrid | None, Any]] = []

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def nifti(
        self,
        stage: str,
        volume: npt.NDArray[np.generic],
        grid: VoxelGrid,
        name: str,
        kind: str,
        description: str,
    ) -> None:
        """Queue ``volume`` to be written as ``name`` (the writer keeps a reference)."""
        path = self.tx.path(name)
        if self._pool is None:
            self._timed(stage, volume, grid, path, description)
            self._pending.append((None, name, kind, grid, volume.dtype))
            return
        future = self._pool.submit(self._timed, stage, volume, grid, path, description)
        self._pending.append((future, name, kind, grid, volume.dtype))

    def done(self, name: str, kind: str, grid: VoxelGrid | None, dtype: Any) -> None:
        """Record a file written directly into the staging folder."""
        self._pending.append((None, name, kind, grid, dtype))

    def finish(self) -> list[OutputRecord]:
        """Wait for every queued file (raising its error, if any); their records."""
        records = []
        for future, name, kind, grid, dtype in self._pending:
            if future is not None:
                future.result()
            records.append(output_record(self.tx.path(name), kind, grid, dtype))
        return records

    def _timed(
        self,
        stage: str,
        volume: npt.NDArray[np.generic],
        grid: VoxelGrid,
        path: Path,
        description: str,
    ) -> None:
        write_nifti = load_nifti_writer()
        with self._clock(stage):
            write_nifti(volume, grid, path, description=description)


def load_nifti_writer() -> Callable[..., None]:
    """``segmap.imaging.nifti.write_nifti``, importing it (and nibabel, ~30 ms) if needed.

    Imported on demand rather than with this module so that a conversion can have it
    imported while the process would otherwise wait for the RTSTRUCT being parsed in a
    child (``read_inputs(while_waiting=...)``); the writer thread calls it otherwise.
    """
    from segmap.imaging.nifti import write_nifti

    return write_nifti


def output_record(path: Path, kind: str, grid: VoxelGrid | None, dtype: Any) -> OutputRecord:
    """The report's record of the finished file at ``path``."""
    return OutputRecord(
        name=path.name,
        kind=kind,
        grid=grid.to_dict() if grid is not None else None,
        dtype=np.dtype(dtype).name if dtype is not None else None,
        bytes=path.stat().st_size,
        sha256=file_sha256(path),
    )

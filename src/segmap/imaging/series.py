"""DICOM image series: discovery, slice sorting along the normal, geometry checks, pixels.

The fields of :class:`DicomSeries` are a contract other packages rely on; the loading
functions live beside it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segmap.errors import SeriesSelectionError
from segmap.imaging.dicomheaders import HeaderScan, SliceHeader, scan_headers, walk_files
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.stacking import stack_slices


@dataclass(frozen=True, eq=False)
class DicomSeries:
    """One image series, headers read, slices sorted along the slice normal.

    Attributes:
        grid: the voxel grid (``k`` follows the sorted slices).
        files: file of each slice, in order along the slice normal; entry ``n`` lies on
            grid plane ``k_of(n)``, which is ``n`` unless a gap fix-up added empty planes.
        sop_instance_uids: SOPInstanceUID of each slice, same order as ``files``.
        positions_lps: ImagePositionPatient of each slice (LPS mm), same order as ``files``.
        study_instance_uid, series_instance_uid, frame_of_reference_uid: identity.
        modality: e.g. ``CT``, ``MR``.
        series_description, patient_id, study_date: for listings and reports.
        fixups: human-readable notes of any geometry fix-up that was applied.
        slice_indices: grid plane ``k`` of each file; empty means file ``n`` is plane ``n``
            (always so without a fix-up).
    """

    grid: VoxelGrid
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    positions_lps: tuple[tuple[float, float, float], ...]
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    series_description: str = ""
    patient_id: str = ""
    study_date: str = ""
    fixups: tuple[str, ...] = field(default_factory=tuple)
    slice_indices: tuple[int, ...] = field(default_factory=tuple)

    def k_of(self, n: int) -> int:
        """Grid plane ``k`` of the ``n``-th file (equal to ``n`` without a gap fix-up)."""
        return self.slice_indices[n] if self.slice_indices else n

    def slice_index_of(self, sop_instance_uid: str) -> int | None:
        """Index ``k`` of the slice with this SOPInstanceUID, or None."""
        try:
            n = self.sop_instance_uids.index(sop_instance_uid)
        except ValueError:
            return None
        return self.k_of(n)

    @property
    def empty_planes(self) -> tuple[int, ...]:
        """Grid planes ``k`` that no file fills (only after a gap fix-up)."""
        filled = {self.k_of(n) for n in range(len(self.files))}
        return tuple(k for k in range(self.grid.size[2]) if k not in filled)


@dataclass(frozen=True)
class SeriesSummary:
    """One image series found in a folder: identity and its files (headers only)."""

    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    series_description: str
    series_number: int | None
    patient_id: str
    study_date: str
    files: tuple[Path, ...]

    @property
    def instance_count(self) -> int:
        """Number of image files in the series."""
        return len(self.files)

    def describe(self) -> str:
        """One line for listings: UID, modality, description, number and image count."""
        parts = [self.series_instance_uid, self.modality or "?"]
        if self.series_number is not None:
            parts.append(f"#{self.series_number}")
        if self.series_description:
            parts.append(repr(self.series_description))
        parts.append(f"{self.instance_count} image{'s' if self.instance_count != 1 else ''}")
        return " ".join(parts)


@dataclass(frozen=True)
class FolderScan:
    """What a folder holds: image series, and counts of what was skipped.

    Attributes:
        series: image series, largest first.
        non_dicom_files: files that are not DICOM.
        non_image_instances: DICOM instances that are not scan images (RTSTRUCT, SEG,
            SR, ...), counted by ``"MODALITY (SOP class name)"``.
    """

    series: tuple[SeriesSummary, ...]
    non_dicom_files: int
    non_image_instances: dict[str, int]


def _group(headers: Sequence[SliceHeader]) -> dict[str, list[SliceHeader]]:
    groups: dict[str, list[SliceHeader]] = {}
    for h in headers:
        groups.setdefault(h.series_instance_uid, []).append(h)
    return groups


def _summary(headers: Sequence[SliceHeader]) -> SeriesSummary:
    h = headers[0]
    return SeriesSummary(
        series_instance_uid=h.series_instance_uid,
        study_instance_uid=h.study_instance_uid,
        frame_of_reference_uid=h.frame_of_reference_uid,
        modality=h.modality,
        series_description=h.series_description,
        series_number=h.series_number,
        patient_id=h.patient_id,
        study_date=h.study_date,
        files=tuple(x.path for x in headers),
    )


def _folder_scan(scan: HeaderScan) -> FolderScan:
    groups = _group(scan.images)
    summaries = sorted(
        (_summary(g) for g in groups.values()),
        key=lambda s: (-s.instance_count, s.series_instance_uid),
    )
    return FolderScan(tuple(summaries), scan.non_dicom_files, dict(scan.non_image_instances))


def scan_folder(folder: Path) -> FolderScan:
    """Walk ``folder`` recursively and group its image instances into series.

    Only headers are read (no pixel data). Non-DICOM files and DICOM instances that are
    not scan images (RTSTRUCT, SEG, SR, ...) are skipped and counted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SeriesSelectionError(f"{folder}: not a folder")
    return _folder_scan(scan_headers(walk_files(folder)))


def find_series(folder: Path) -> list[SeriesSummary]:
    """Image series under ``folder``, largest first (headers only; see :func:`scan_folder`)."""
    return list(scan_folder(folder).series)


def _source_paths(source: Path | str | Sequence[Path | str]) -> tuple[list[Path], bool]:
    """Files to read and whether they were listed explicitly (not found by walking)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return list(walk_files(path)), False
        if path.is_file():
            return [path], True
        raise SeriesSelectionError(f"{path}: no such file or folder")
    paths = [Path(p) for p in source]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SeriesSelectionError(f"no such file: {', '.join(missing[:5])}")
    return paths, True


def _choose(groups: dict[str, list[SliceHeader]], uid: str | None, where: str) -> list[SliceHeader]:
    listing = "; ".join(_summary(g).describe() for g in groups.values())
    if uid is not None:
        if uid in groups:
            return groups[uid]
        found = f"it holds: {listing}" if groups else "it holds no image series"
        raise SeriesSelectionError(f"{where}: image series {uid} not found; {found}")
    if not groups:
        raise SeriesSelectionError(f"{where}: no DICOM image series found")
    if len(groups) > 1:
        raise SeriesSelectionError(
            f"{where} holds {len(groups)} image series; name the one to use "
            f"(SeriesInstanceUID): {listing}"
        )
    return next(iter(groups.values()))


def load_series(
    source: Path | Sequence[Path],
    series_instance_uid: str | None = None,
    *,
    fixup: bool = False,
) -> DicomSeries:
    """Read the headers of one image series and build its voxel grid (no pixel data).

    Args:
        source: a folder (walked recursively), one file, or a list of files.
        series_instance_uid: the series to load when ``source`` holds several (the
            pipeline passes the one the annotation references).
        fixup: repair uneven slice spacing and gaps instead of refusing (see
            :func:`segmap.imaging.stacking.stack_slices`); the fix-up is recorded in
            ``fixups``.

    Raises:
        SeriesSelectionError: no series, several and none named, or the named one absent.
        SeriesGeometryError: the slices do not form one regular grid (message names them).
    """
    paths, explicit = _source_paths(source)
    scan = scan_headers(paths)
    where = str(source) if not explicit else f"the {len(paths)} given file(s)"
    if explicit and scan.non_dicom_files and not scan.images:
        raise SeriesSelectionError(f"{where}: none is a DICOM image file")
    chosen = _choose(_group(scan.images), series_instance_uid, where)
    stack = stack_slices(chosen, fixup=fixup)
    first = stack.slices[0]
    identity = stack.slice_indices == tuple(range(len(stack.slices)))
    return DicomSeries(
        grid=stack.grid,
        files=tuple(h.path for h in stack.slices),
        sop_instance_uids=tuple(h.sop_instance_uid for h in stack.slices),
        positions_lps=tuple(h.position for h in stack.slices if h.position is not None),
        study_instance_uid=first.study_instance_uid,
        series_instance_uid=first.series_instance_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        modality=first.modality,
        series_description=first.series_description,
        patient_id=first.patient_id,
        study_date=first.study_date,
        fixups=stack.fixups,
        slice_indices=() if identity else stack.slice_indices,
    )

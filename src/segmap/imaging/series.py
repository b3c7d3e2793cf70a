"""DICOM image series: discovery, slice sorting along the normal, geometry checks, pixels.

The fields of :class:`DicomSeries` are a contract other packages rely on; the loading
functions live beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from segmap.imaging.grid import VoxelGrid


@dataclass(frozen=True, eq=False)
class DicomSeries:
    """One image series, headers read, slices sorted along the slice normal.

    Attributes:
        grid: the voxel grid (``k`` follows the sorted slices).
        files: file of each slice, index ``k``.
        sop_instance_uids: SOPInstanceUID of each slice, index ``k``.
        positions_lps: ImagePositionPatient of each slice (LPS mm), index ``k``.
        study_instance_uid, series_instance_uid, frame_of_reference_uid: identity.
        modality: e.g. ``CT``, ``MR``.
        series_description, patient_id, study_date: for listings and reports.
        fixups: human-readable notes of any geometry fix-up that was applied.
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

    def slice_index_of(self, sop_instance_uid: str) -> int | None:
        """Index ``k`` of the slice with this SOPInstanceUID, or None."""
        try:
            return self.sop_instance_uids.index(sop_instance_uid)
        except ValueError:
            return None

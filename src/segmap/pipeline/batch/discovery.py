"""Finding a batch's cases: every RTSTRUCT and SEG under a folder tree, with its series.

:func:`discover` reads every file's header once, groups image instances into series and
resolves each annotation to the series it references.

A case's name is the annotation file's path relative to the input tree without a
``.dcm`` suffix (``patient7/rtstruct.dcm`` -> ``patient7/rtstruct``), so re-running a
batch on the same tree writes to the same folders.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from segmap.annotations.info import read_annotation_info
from segmap.annotations.types import AnnotationInfo
from segmap.errors import SegmapError
from segmap.imaging.dicomheaders import SliceHeader, read_header, walk_files
from segmap.imaging.sop_classes import collection_kind


class BatchError(SegmapError):
    """A batch that cannot start: no input folder, nothing to convert, a bad output place."""


@dataclass(frozen=True)
class FoundSeries:
    """An image series found in the tree: its UID, folder and frame of reference."""

    series_instance_uid: str
    folder: Path
    frame_of_reference_uid: str | None
    modality: str
    instances: int


@dataclass(frozen=True)
class BatchCase:
    """One annotation to convert.

    Attributes:
        name: output folder relative to OUT (``/``-separated), stable across runs.
        annotation: the RTSTRUCT or SEG file.
        modality: ``RTSTRUCT``, ``SEG``, or ``""`` when the file could not be read.
        image_dir: folder holding the referenced series (it may hold others too).
        series_instance_uid: the series the case will be converted onto.
        problem: why the case cannot be converted, found while discovering; None if fine.
    """

    name: str
    annotation: Path
    modality: str
    image_dir: Path | None
    series_instance_uid: str | None
    problem: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What a tree holds: the cases, and counts of what was read and skipped."""

    root: Path
    cases: tuple[BatchCase, ...]
    series: tuple[FoundSeries, ...]
    files_read: int
    non_dicom_files: int
    other_instances: int

    def describe(self) -> str:
        """One line: cases, series and skipped files."""
        rt = sum(1 for c in self.cases if c.modality == "RTSTRUCT")
        seg = sum(1 for c in self.cases if c.modality == "SEG")
        parts = [
            f"{len(self.cases)} annotation(s) ({rt} RTSTRUCT, {seg} SEG)",
            f"{len(self.series)} image series",
            f"{self.files_read} files read",
        ]
        if self.non_dicom_files:
            parts.append(f"{self.non_dicom_files} non-DICOM file(s) ignored")
        if self.other_instances:
            parts.append(f"{self.other_instances} other DICOM instance(s) ignored")
        return ", ".join(parts)


def _is_annotation(header: SliceHeader) -> bool:
    return collection_kind(header.modality, header.sop_class_uid) is not None


def case_name(root: Path, annotation: Path) -> str:
    """The output folder name of ``annotation``: its path under ``root`` without ``.dcm``."""
    rel = PurePosixPath(annotation.relative_to(root).as_posix())
    if rel.suffix.lower() == ".dcm":
        rel = rel.with_suffix("")
    return str(rel)


def _series_index(images: Iterable[SliceHeader]) -> dict[str, FoundSeries]:
    groups: dict[str, list[SliceHeader]] = {}
    for h in images:
        groups.setdefault(h.series_instance_uid, []).append(h)
    index = {}
    for uid, headers in groups.items():
        folder = Path(os.path.commonpath([str(h.path.parent) for h in headers]))
        first = headers[0]
        index[uid] = FoundSeries(
            uid, folder, first.frame_of_reference_uid, first.modality, len(headers)
        )
    return index


def _shared_depth(a: Path, b: Path) -> int:
    return len(os.path.commonpath([str(a), str(b)]).split(os.sep))


def _resolve(
    info: AnnotationInfo, path: Path, root: Path, index: dict[str, FoundSeries]
) -> tuple[FoundSeries | None, str | None]:
    """The series an annotation is converted onto, or why there is none."""
    for uid in info.referenced_series_uids:
        if uid in index:
            return index[uid], None
    # The referenced UID is absent; a series nearby in the same frame of reference may be
    # the one it was drawn on (exports sometimes renumber series). The conversion checks
    # the geometry and records the substitution in its report.
    same_for = [
        s
        for s in index.values()
        if info.frame_of_reference_uid and s.frame_of_reference_uid == info.frame_of_reference_uid
    ]
    if same_for:
        best = max(_shared_depth(s.folder, path.parent) for s in same_for)
        nearest = [s for s in same_for if _shared_depth(s.folder, path.parent) == best]
        if len(nearest) == 1:
            return nearest[0], None
    refs = ", ".join(info.referenced_series_uids) or "no series (the file names none)"
    return None, (
        f"it references image series {refs}, which is not under {root}; put the "
        "series it was drawn on beside it"
    )


def discover(root: str | Path) -> Discovery:
    """Find every RTSTRUCT/SEG under ``root`` and the image series each one references.

    Every file's header is read once (no pixel data); annotation files are then read
    for their references. Files that are not DICOM, and DICOM instances that are neither
    images nor annotations, are counted and ignored. A case whose file is damaged or
    whose series is missing is kept, with ``problem`` saying why.

    Raises:
        BatchError: ``root`` is not a folder.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise BatchError(f"{root}: not a folder; give the folder tree to search with --in")
    images: list[SliceHeader] = []
    annotations: list[Path] = []
    files = non_dicom = other = 0
    for path in walk_files(root):
        files += 1
        header = read_header(path)
        if header is None:
            non_dicom += 1
        elif _is_annotation(header):
            annotations.append(path)
        elif header.is_scan_image:
            images.append(header)
        else:
            other += 1
    index = _series_index(images)
    cases = []
    taken: set[str] = set()
    for path in annotations:
        name = case_name(root, path)
        if name in taken:  # "x.dcm" beside "x": keep both apart
            name = str(PurePosixPath(path.relative_to(root).as_posix())).replace(".", "_")
        taken.add(name)
        cases.append(_case(root, path, name, index))
    series = tuple(sorted(index.values(), key=lambda s: str(s.folder)))
    return Discovery(root, tuple(cases), series, files, non_dicom, other)


def _case(root: Path, path: Path, name: str, index: dict[str, FoundSeries]) -> BatchCase:
    try:
        info = read_annotation_info(path)
    except SegmapError as exc:
        return BatchCase(name, path, "", None, None, problem=str(exc))
    found, problem = _resolve(info, path, root, index)
    if found is None:
        return BatchCase(name, path, info.modality, None, None, problem=problem)
    return BatchCase(name, path, info.modality, found.folder, found.series_instance_uid)

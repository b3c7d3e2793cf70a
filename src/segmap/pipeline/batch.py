"""Many conversions at once: every RTSTRUCT and SEG under a folder tree, with its series.

:func:`discover` reads every file's header once, groups image instances into series and
resolves each annotation to the series it references. :func:`run_batch` converts every
case with :func:`segmap.pipeline.convert.convert` on an :class:`~.executors.Executor`
(a local process pool or a Dask cluster), into ``OUT/<case name>/``, and carries on past
cases that fail: each outcome records what went wrong in words a user can act on.

A case's name is the annotation file's path relative to the input tree without a
``.dcm`` suffix (``patient7/rtstruct.dcm`` -> ``patient7/rtstruct``), so re-running a
batch on the same tree writes to the same folders.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from segmap.annotations.info import read_annotation_info
from segmap.annotations.types import AnnotationInfo
from segmap.errors import SegmapError
from segmap.imaging.dicomheaders import SliceHeader, read_header, walk_files
from segmap.pipeline.executors import Executor, TaskHandle

ANNOTATION_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
    }
)
ANNOTATION_MODALITIES = frozenset({"RTSTRUCT", "SEG"})
REPORT_NAME = "batch_report.json"


class BatchError(SegmapError):
    """A batch that cannot start: no input folder, nothing to convert, a bad output place."""


# --- discovery ----------------------------------------------------------------------------


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
    return (
        header.sop_class_uid in ANNOTATION_SOP_CLASSES
        or header.modality.upper() in ANNOTATION_MODALITIES
    )


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
        index[uid] = FoundSeries(uid, folder, first.frame_of_reference_uid, first.modality,
                                 len(headers))
    return index


def _shared_depth(a: Path, b: Path) -> int:
    return len(os.path.commonpath([str(a), str(b)]).split(os.sep))


def _resolve(info: AnnotationInfo, path: Path, root: Path,
             index: dict[str, FoundSeries]) -> tuple[FoundSeries | None, str | None]:
    """The series an annotation is converted onto, or why there is none."""
    for uid in info.referenced_series_uids:
        if uid in index:
            return index[uid], None
    # The referenced UID is absent; a series nearby in the same frame of reference may be
    # the one it was drawn on (exports sometimes renumber series). The conversion checks
    # the geometry and records the substitution in its report.
    same_for = [s for s in index.values()
                if info.frame_of_reference_uid and
                s.frame_of_reference_uid == info.frame_of_reference_uid]
    if same_for:
        best = max(_shared_depth(s.folder, path.parent) for s in same_for)
        nearest = [s for s in same_for if _shared_depth(s.folder, path.parent) == best]
        if len(nearest) == 1:
            return nearest[0], None
    refs = ", ".join(info.referenced_series_uids) or "no series (the file names none)"
    return None, (f"it references image series {refs}, which is not under {root}; put the "
                  "series it was drawn on beside it")


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


# --- running ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs for one case (plain values, so it pickles cheaply)."""

    name: str
    annotation: str
    image_dir: str
    out_dir: str
    region_map: str
    options: dict[str, Any]


@dataclass(frozen=True)
class CaseOutcome:
    """How one case went.

    Attributes:
        name: the case.
        ok: converted, every output written.
        error: what went wrong, for the user (None when ``ok``).
        seconds: wall-clock time of the conversion in the worker.
        regions: regions painted into the mask.
        unmatched: region names the map did not hold (skipped).
        warnings: the conversion's warnings.
        out_dir: where the outputs are (None when failed: nothing was written).
    """

    name: str
    ok: bool
    error: str | None = None
    seconds: float = 0.0
    regions: int = 0
    unmatched: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    out_dir: str | None = None


def run_case(task: CaseTask) -> CaseOutcome:
    """Convert one case in a worker; never raises for bad input (see :class:`CaseOutcome`)."""
    from segmap.pipeline.convert import ConvertOptions, convert

    start = time.perf_counter()
    try:
        options = ConvertOptions(**_options_from_dict(task.options))
        result = convert(task.region_map, task.image_dir, task.annotation, task.out_dir,
                         options)
    except SegmapError as exc:
        return CaseOutcome(task.name, False, _one_line(str(exc)),
                           time.perf_counter() - start)
    except MemoryError:
        return CaseOutcome(task.name, False, "out of memory; run with fewer --workers",
                           time.perf_counter() - start)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return CaseOutcome(task.name, False, f"{where}{exc.strerror or exc}",
                           time.perf_counter() - start)
    except Exception as exc:  # a bug: say so, keep going with the other cases
        return CaseOutcome(task.name, False,
                           f"internal error ({type(exc).__name__}: {exc}); please report it",
                           time.perf_counter() - start)
    report = result.report
    painted = sum(1 for r in report.regions if r.status != "unmatched" and r.voxels)
    unmatched = tuple(r.name for r in report.regions if r.status == "unmatched")
    return CaseOutcome(task.name, True, None, time.perf_counter() - start, painted,
                       unmatched, tuple(report.warnings), str(result.out_dir))


def _options_from_dict(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    if out.get("spacing") is not None:
        out["spacing"] = tuple(out["spacing"])
    return out


def _one_line(message: str) -> str:
    return " / ".join(line.strip() for line in message.strip().splitlines() if line.strip())


@dataclass
class BatchResult:
    """Outcomes of every case (in discovery order) and how the batch ran."""

    outcomes: list[CaseOutcome]
    seconds: float
    executor: str
    discovery: Discovery | None = field(default=None, repr=False)

    @property
    def failed(self) -> list[CaseOutcome]:
        """Cases that produced nothing."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def succeeded(self) -> list[CaseOutcome]:
        """Cases with every output written."""
        return [o for o in self.outcomes if o.ok]

    @property
    def cases_per_minute(self) -> float:
        """Throughput over the whole run, counting failed cases too."""
        return 60.0 * len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "cases": len(self.outcomes),
            "succeeded": len(self.succeeded),
            "failed": len(self.failed),
            "seconds": round(self.seconds, 3),
            "executor": self.executor,
            "outcomes": [asdict(o) for o in self.outcomes],
        }


ProgressHook = Callable[[CaseOutcome], None]


def run_batch(
    discovery: Discovery,
    region_map: str | Path,
    out_root: str | Path,
    executor: Executor,
    options: dict[str, Any] | None = None,
    *,
    on_outcome: ProgressHook | None = None,
) -> BatchResult:
    """Convert every case of ``discovery`` into ``out_root/<case name>``.

    Args:
        discovery: from :func:`discover`.
        region_map: the ``region2MaskValueMap.txt`` every case is converted with (checked
            by the caller; each worker reads it again).
        out_root: output tree; created when missing.
        executor: where the conversions run.
        options: keyword arguments of :class:`~segmap.pipeline.convert.ConvertOptions`
            (``spacing`` as three mm values along columns, rows and slices).
        on_outcome: called in this process as each case finishes (for a progress bar).

    A case whose worker dies (a crash, the out-of-memory killer) is tried once more on
    its own before it is reported as failed.
    """
    out_root = Path(out_root).absolute()
    out_root.mkdir(parents=True, exist_ok=True)
    opts = dict(options or {})
    if opts.get("spacing") is not None:
        opts["spacing"] = [float(x) for x in opts["spacing"]]
    say = on_outcome or (lambda outcome: None)
    start = time.perf_counter()
    outcomes: dict[str, CaseOutcome] = {}
    tasks: dict[str, CaseTask] = {}
    for case in discovery.cases:
        if case.problem is not None or case.image_dir is None:
            outcomes[case.name] = CaseOutcome(case.name, False,
                                              _one_line(case.problem or "no image series"))
            say(outcomes[case.name])
            continue
        tasks[case.name] = CaseTask(case.name, str(case.annotation), str(case.image_dir),
                                    str(out_root / case.name), str(region_map), opts)
    suspects = _run_all(executor, list(tasks.values()), outcomes, say)
    # Each case whose worker died runs alone now, so one bad case cannot take others down.
    for task in suspects:
        again = _run_all(executor, [task], outcomes, say)
        if again:
            outcomes[task.name] = CaseOutcome(
                task.name, False, "the worker process died while converting this case "
                "(out of memory or a crash); try it alone with 'segmap convert'")
            say(outcomes[task.name])
    ordered = [outcomes[c.name] for c in discovery.cases]
    result = BatchResult(ordered, time.perf_counter() - start, executor.description, discovery)
    return result


def _run_all(executor: Executor, tasks: list[CaseTask], outcomes: dict[str, CaseOutcome],
             say: ProgressHook) -> list[CaseTask]:
    """Run ``tasks``; record outcomes; return the tasks whose worker died."""
    if not tasks:
        return []
    handles: dict[Any, CaseTask] = {}
    for task in tasks:
        handles[executor.submit(run_case, task)] = task
    lost: list[CaseTask] = []
    broken = False
    for handle in executor.as_completed(list(handles)):
        task = handles[handle]
        outcome = _outcome_of(executor, handle, task)
        if outcome is None:
            lost.append(task)
            broken = True
            continue
        outcomes[task.name] = outcome
        say(outcome)
    if broken:
        executor.restart()
    return lost


def _outcome_of(executor: Executor, handle: TaskHandle, task: CaseTask) -> CaseOutcome | None:
    try:
        outcome: CaseOutcome = handle.result()
        return outcome
    except Exception as exc:
        if executor.is_lost_worker(exc):
            return None
        return CaseOutcome(task.name, False, f"{type(exc).__name__}: {exc}")


# --- reporting --------------------------------------------------------------------------


def summary_table(result: BatchResult) -> str:
    """Lines for the terminal: totals, then a table of the failed cases and why."""
    n, ok = len(result.outcomes), len(result.succeeded)
    lines = [
        f"converted {ok} of {n} case(s) in {result.seconds:.1f} s "
        f"({result.cases_per_minute:.1f} cases/min) on a {result.executor}"
    ]
    failed = result.failed
    if failed:
        width = min(max(len("case"), *(len(o.name) for o in failed)), 60)
        lines.append(f"{len(failed)} case(s) failed:")
        lines.append(f"  {'case':<{width}}  reason")
        lines.append(f"  {'-' * width}  {'-' * 6}")
        for o in failed:
            lines.append(f"  {o.name:<{width}}  {o.error}")
    warned = [o for o in result.succeeded if o.warnings or o.unmatched]
    for o in warned:
        for w in o.warnings:
            lines.append(f"  warning {o.name}: {w}")
        if o.unmatched:
            lines.append(f"  note {o.name}: skipped region names not in the map: "
                         f"{', '.join(o.unmatched)}")
    return "\n".join(lines)


def write_batch_report(result: BatchResult, out_root: str | Path) -> Path:
    """Write ``OUT/batch_report.json`` (every case's outcome) atomically; returns its path."""
    path = Path(out_root) / REPORT_NAME
    temp = path.with_name(f".{REPORT_NAME}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    os.replace(temp, path)
    return path

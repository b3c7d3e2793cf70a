"""Running a batch: every case converted on an executor, bad cases recorded, not raised.

:func:`run_batch` converts every case of a :class:`~.discovery.Discovery` with
:func:`segmap.pipeline.convert.convert` on an :class:`~segmap.pipeline.executors.Executor`
(a local process pool or a Dask cluster), into ``OUT/<case name>/``, and carries on past
cases that fail: each outcome records what went wrong in words a user can act on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segmap.errors import SegmapError
from segmap.pipeline.batch.discovery import Discovery
from segmap.pipeline.executors import Executor, TaskHandle


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
        notes: what the conversion left out or decided, in sentences
            (:meth:`~segmap.pipeline.report.ConvertReport.notes` without the overlaps;
            includes the warnings).
        out_dir: where the outputs are (None when failed: nothing was written).
    """

    name: str
    ok: bool
    error: str | None = None
    seconds: float = 0.0
    regions: int = 0
    unmatched: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    out_dir: str | None = None


def run_case(task: CaseTask) -> CaseOutcome:
    """Convert one case in a worker; never raises for bad input (see :class:`CaseOutcome`)."""
    from segmap.pipeline.convert import ConvertOptions, convert

    start = time.perf_counter()
    try:
        options = ConvertOptions(**_options_from_dict(task.options))
        result = convert(task.region_map, task.image_dir, task.annotation, task.out_dir, options)
    except SegmapError as exc:
        return CaseOutcome(task.name, False, _one_line(str(exc)), time.perf_counter() - start)
    except MemoryError:
        return CaseOutcome(
            task.name, False, "out of memory; run with fewer --workers", time.perf_counter() - start
        )
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return CaseOutcome(
            task.name, False, f"{where}{exc.strerror or exc}", time.perf_counter() - start
        )
    except Exception as exc:  # a bug: say so, keep going with the other cases
        return CaseOutcome(
            task.name,
            False,
            f"internal error ({type(exc).__name__}: {exc}); please report it",
            time.perf_counter() - start,
        )
    report = result.report
    painted = sum(1 for r in report.regions if r.status != "unmatched" and r.voxels)
    unmatched = tuple(r.name for r in report.regions if r.status == "unmatched")
    return CaseOutcome(
        task.name,
        True,
        None,
        time.perf_counter() - start,
        regions=painted,
        unmatched=unmatched,
        warnings=tuple(report.warnings),
        # Overlaps painted in map order are the map at work and would repeat for every
        # case (organs inside the body); each case's report.json still lists them.
        notes=tuple(report.notes(overlaps=False)),
        out_dir=str(result.out_dir),
    )


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
            outcomes[case.name] = CaseOutcome(
                case.name, False, _one_line(case.problem or "no image series")
            )
            say(outcomes[case.name])
            continue
        tasks[case.name] = CaseTask(
            case.name,
            str(case.annotation),
            str(case.image_dir),
            str(out_root / case.name),
            str(region_map),
            opts,
        )
    suspects = _run_all(executor, list(tasks.values()), outcomes, say)
    # Each case whose worker died runs alone now, so one bad case cannot take others down.
    for task in suspects:
        again = _run_all(executor, [task], outcomes, say)
        if again:
            outcomes[task.name] = CaseOutcome(
                task.name,
                False,
                "the worker process died while converting this case "
                "(out of memory or a crash); try it alone with 'segmap convert'",
            )
            say(outcomes[task.name])
    ordered = [outcomes[c.name] for c in discovery.cases]
    result = BatchResult(ordered, time.perf_counter() - start, executor.description, discovery)
    return result


def _run_all(
    executor: Executor, tasks: list[CaseTask], outcomes: dict[str, CaseOutcome], say: ProgressHook
) -> list[CaseTask]:
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

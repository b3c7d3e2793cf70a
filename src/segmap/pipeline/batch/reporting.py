"""Reporting a batch: the summary a person reads and ``OUT/batch_report.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from segmap.pipeline.batch.running import BatchResult

REPORT_NAME = "batch_report.json"


def summary_table(result: BatchResult) -> str:
    """Lines for the terminal: totals, a table of the failed cases and why, then what the
    converted cases left out or decided (their reports' notes)."""
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
    for o in result.succeeded:
        lines.extend(f"  note {o.name}: {sentence}" for sentence in o.notes)
    return "\n".join(lines)


def write_batch_report(result: BatchResult, out_root: str | Path) -> Path:
    """Write ``OUT/batch_report.json`` (every case's outcome) atomically; returns its path."""
    path = Path(out_root) / REPORT_NAME
    temp = path.with_name(f".{REPORT_NAME}.{os.getpid()}.tmp")
    temp.write_text(
        json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    os.replace(temp, path)
    return path

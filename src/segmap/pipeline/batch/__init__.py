"""Many conversions at once: every RTSTRUCT and SEG under a folder tree, with its series.

Three steps, one module each: :mod:`.discovery` finds the cases (:func:`discover`),
:mod:`.running` converts them on an executor, carrying on past cases that fail
(:func:`run_batch`), and :mod:`.reporting` says how it went (:func:`summary_table`,
:func:`write_batch_report`).
"""

from segmap.pipeline.batch.discovery import (
    BatchCase,
    BatchError,
    Discovery,
    FoundSeries,
    case_name,
    discover,
)
from segmap.pipeline.batch.reporting import REPORT_NAME, summary_table, write_batch_report
from segmap.pipeline.batch.running import (
    BatchResult,
    CaseOutcome,
    CaseTask,
    run_batch,
    run_case,
)

__all__ = [
    "REPORT_NAME",
    "BatchCase",
    "BatchError",
    "BatchResult",
    "CaseOutcome",
    "CaseTask",
    "Discovery",
    "FoundSeries",
    "case_name",
    "discover",
    "run_batch",
    "run_case",
    "summary_table",
    "write_batch_report",
]

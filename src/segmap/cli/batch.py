"""The ``segmap batch`` sub-command: every annotation under a folder tree, converted.

Exit status: 0 when every case was converted, 1 when any failed (the summary says which
and why) or the inputs are unusable, 2 on usage errors. Heavy modules are imported in the
handler so that ``segmap --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segmap.cli.common import command
from segmap.cli.convert import OVERLAP_POLICIES, UNMATCHED_POLICIES, parse_spacing
from segmap.errors import SegmapError

PROG = "segmap batch"


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"workers must be a whole number of at least 1, got {text!r}"
        )
    return value


HELP = "convert every RTSTRUCT/SEG under a folder tree, in parallel"
DESCRIPTION = (
    "Find every ROI collection (RTSTRUCT or DICOM SEG) under --in and the image series "
    "each references, and convert them all with one region map into OUT/<path of the "
    "annotation without .dcm>/. Bad cases do not stop the batch; a summary at the end "
    "says which failed and why, and OUT/batch_report.json records every case. Runs on a "
    "local pool of worker processes, or on a Dask cluster with --scheduler."
)
EPILOG = (
    "examples:\n"
    "  segmap batch --map region2MaskValueMap.txt --in dicom/ --out masks/\n"
    "  segmap batch --map map.txt --in dicom/ --out masks/ --spacing 1,1,2.5 --workers 4\n"
    "  segmap batch --map map.txt --in /shared/dicom --out /shared/masks "
    "--scheduler tcp://head:8786"
)


def add_parser(subparsers: Any) -> None:
    """Add ``segmap batch``."""
    parser = command(subparsers, "batch", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    add_batch_arguments(parser)
    parser.set_defaults(handler=run_batch_command)


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``batch`` options to its parser."""
    p.add_argument(
        "--map",
        required=True,
        type=Path,
        metavar="MAP",
        help="region map file (region2MaskValueMap.txt)",
    )
    p.add_argument(
        "--in",
        dest="input",
        required=True,
        type=Path,
        metavar="TREE",
        help="folder tree holding the DICOM images and their RTSTRUCT/SEG files",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="TREE",
        help="output folder tree (created if needed)",
    )
    p.add_argument(
        "--spacing",
        type=parse_spacing,
        metavar="X,Y,Z",
        help="also resample image and mask to this voxel spacing in mm (columns, rows, slices)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="local worker processes (default: one per CPU core)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS "
        "(e.g. tcp://head:8786); workers must see --in and --out paths",
    )
    p.add_argument(
        "--overlap",
        choices=OVERLAP_POLICIES,
        default="order",
        help="overlapping regions: later map line wins (default) or refuse the case",
    )
    p.add_argument(
        "--unmatched",
        choices=UNMATCHED_POLICIES,
        default="skip",
        help="region names the map lacks: skip and report (default) or fail the case",
    )
    p.add_argument("--strict-names", action="store_true", help="match region names exactly")
    p.add_argument("--no-preview", action="store_true", help="do not draw preview.png")
    p.add_argument(
        "--fixup",
        action="store_true",
        help="repair uneven slice spacing or gaps instead of refusing the series",
    )
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")


def run_batch_command(args: argparse.Namespace) -> int:
    """Handle parsed ``batch`` arguments; returns the exit status."""
    from tqdm import tqdm

    from segmap.labelmap import read_region_map
    from segmap.pipeline.batch import discover, run_batch, summary_table, write_batch_report
    from segmap.pipeline.executors import make_executor

    try:
        region_map = read_region_map(args.map)
        print(f"{PROG}: searching {args.input} ...", file=sys.stderr, flush=True)
        found = discover(args.input)
        print(f"{PROG}: {found.describe()}", file=sys.stderr, flush=True)
        if not found.cases:
            print(
                f"{PROG}: error: no RTSTRUCT or SEG file under {args.input}; nothing to do",
                file=sys.stderr,
            )
            return 1
        executor = make_executor(args.workers, args.scheduler)
    except SegmapError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    options: dict[str, Any] = {
        "spacing": args.spacing,
        "overlap": args.overlap,
        "unmatched": args.unmatched,
        "strict_names": args.strict_names,
        "preview": not args.no_preview,
        "fixup": args.fixup,
    }
    print(
        f"{PROG}: converting with {len(region_map)} map regions on a {executor.description}",
        file=sys.stderr,
        flush=True,
    )
    bar = tqdm(
        total=len(found.cases),
        unit="case",
        file=sys.stderr,
        disable=args.no_progress,
        dynamic_ncols=True,
    )

    def tick(outcome: Any) -> None:
        bar.update(1)
        if not outcome.ok:
            bar.set_postfix_str(f"{outcome.name} failed", refresh=False)

    try:
        with executor:
            result = run_batch(found, args.map, args.out, executor, options, on_outcome=tick)
    finally:
        bar.close()
    report = write_batch_report(result, args.out)
    print(summary_table(result))
    print(f"every case's outcome: {report}")
    return 0 if not result.failed else 1

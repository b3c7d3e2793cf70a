"""The ``segmap convert`` sub-command: its arguments and its handler.

:func:`add_parser` registers the command and :func:`run_convert` handles it. This module
imports nothing heavy at import time, so that ``segmap --help`` stays instant; the
conversion machinery is imported by the handler.

Exit status: 0 on success, 1 when an input is bad (the message says which file and what
to do, no traceback), 2 on usage errors (argparse's convention).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmap.cli.common import command
from segmap.errors import SegmapError

if TYPE_CHECKING:
    from segmap.pipeline.convert import ConvertResult

PROG = "segmap convert"

INTERPOLATIONS = ("linear", "bspline")  # = pipeline.convert.INTERPOLATION_ORDERS (a test checks)
OVERLAP_POLICIES = ("order", "error")  # = masks.policies.OverlapPolicy (a test checks)
UNMATCHED_POLICIES = ("skip", "error")  # = masks.policies.UnmatchedPolicy (a test checks)

HELP = "one RTSTRUCT or SEG to a composite mask (NIfTI) with image, report and preview"
DESCRIPTION = (
    "Convert one ROI collection (RTSTRUCT or DICOM SEG) into a composite label mask on the\n"
    "grid of the image series it references, each region painted with its value from the\n"
    "region map (later map lines win where regions overlap).\n\n"
    "Writes to DIR: mask.nii.gz and report.json always; image.nii.gz, or with --spacing\n"
    "image_resampled.nii.gz and mask_resampled.nii.gz instead; preview.png unless\n"
    "--no-preview or --mask-only; with --seg also seg.dcm, the mask as a DICOM SEG.\n"
    "If anything fails, DIR is left as it was."
)
EPILOG = (
    "examples:\n"
    "  segmap convert --map region2MaskValueMap.txt --image scan/ --rois rtstruct.dcm --out out/\n"
    "  segmap convert --map map.txt --image scan/ --rois seg.dcm --out out/ --spacing 1,1,1\n"
    "  segmap convert --map map.txt --image scan/ --rois seg.dcm --out out/ --mask-only\n"
    "exit status: 0 done, 1 bad input (message says which file), 2 wrong usage"
)


def parse_spacing(text: str) -> tuple[float, float, float]:
    """``"X,Y,Z"`` (or one number for all three) -> spacing in mm; argparse type.

    Each number must lie in the sane range of :mod:`segmap.imaging.budget` (0.01 to
    100 mm); whether the grid fits the voxel budget depends on the scan and is checked
    by the conversion, before it allocates anything.
    """
    from segmap.imaging.budget import spacing_problem  # light: no NumPy

    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(
            f"spacing must be X,Y,Z in mm (three positive numbers, e.g. 1,1,2.5), got {text!r}"
        )
    problem = spacing_problem(values)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem} (got {text!r})")
    return (values[0], values[1], values[2])


def parse_threshold(text: str) -> float:
    """A FRACTIONAL SEG threshold, above 0 and at most 1; argparse type."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be above 0 and at most 1, got {text!r}")
    return value


def add_parser(subparsers: Any) -> None:
    """Add ``segmap convert``."""
    parser = command(subparsers, "convert", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    add_convert_arguments(parser)
    parser.set_defaults(handler=run_convert)


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``convert`` options to its (already created) parser."""
    p.add_argument(
        "--map",
        required=True,
        type=Path,
        metavar="MAP",
        help="region map file (region2MaskValueMap.txt, one Label=Value per line)",
    )
    p.add_argument(
        "--image",
        required=True,
        type=Path,
        metavar="SERIES_DIR",
        help="folder holding the referenced image series (it may hold others)",
    )
    p.add_argument(
        "--rois",
        required=True,
        type=Path,
        metavar="FILE",
        help="the ROI collection: an RTSTRUCT or a DICOM SEG file",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder (created if needed; untouched if the conversion fails)",
    )
    p.add_argument(
        "--spacing",
        type=parse_spacing,
        metavar="X,Y,Z",
        help="resample image and mask to this voxel spacing in mm, along the "
        "image's columns, rows and slices (one number: the same for all)",
    )
    p.add_argument(
        "--interp",
        choices=INTERPOLATIONS,
        default="linear",
        help="image interpolation for --spacing (default linear; the mask is always "
        "nearest neighbour)",
    )
    p.add_argument(
        "--overlap",
        choices=OVERLAP_POLICIES,
        default="order",
        help="overlapping regions: 'order' = the later map line wins (default), 'error' = refuse",
    )
    p.add_argument(
        "--unmatched",
        choices=UNMATCHED_POLICIES,
        default="skip",
        help="region names the map lacks: 'skip' and report them (default) or 'error'",
    )
    p.add_argument(
        "--strict-names",
        action="store_true",
        help="match region names exactly (default: ignore case, Unicode forms and extra spaces)",
    )
    p.add_argument(
        "--threshold",
        type=parse_threshold,
        default=0.5,
        metavar="F",
        help="FRACTIONAL SEG threshold, 0 < F <= 1 (default 0.5)",
    )
    p.add_argument(
        "--mask-only",
        action="store_true",
        help="write only mask.nii.gz and report.json; image pixels are not read",
    )
    p.add_argument("--no-preview", action="store_true", help="do not draw preview.png")
    p.add_argument(
        "--seg",
        action="store_true",
        help="also write seg.dcm: the mask as a DICOM SEG on the image series, one "
        "segment per map value, to view in OHIF (works with --mask-only)",
    )
    p.add_argument(
        "--fixup",
        action="store_true",
        help="place a series with uneven slice spacing or gaps on a regular grid "
        "(recorded in the report) instead of refusing it",
    )
    p.set_defaults(_convert_parser=p)


def run_convert(args: argparse.Namespace) -> int:
    """Handle parsed ``convert`` arguments; returns the exit status."""
    from segmap.pipeline.convert import ConvertOptions, convert

    if args.mask_only and args.spacing is not None:
        parser: argparse.ArgumentParser | None = getattr(args, "_convert_parser", None)
        if parser is not None:
            parser.print_usage(sys.stderr)
        print(
            f"{PROG}: error: --mask-only writes only the native mask; it cannot be "
            "combined with --spacing",
            file=sys.stderr,
        )
        return 2
    options = ConvertOptions(
        spacing=args.spacing,
        interp=args.interp,
        overlap=args.overlap,
        unmatched=args.unmatched,
        strict_names=args.strict_names,
        threshold=args.threshold,
        mask_only=args.mask_only,
        preview=not args.no_preview,
        fixup=args.fixup,
        write_seg=args.seg,
    )
    try:
        result = convert(args.map, args.image, args.rois, args.out, options)
    except SegmapError as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    print(summary(result))
    return 0


def summary(result: ConvertResult) -> str:
    """A few lines for the terminal: the files written, then the report's sentences
    (:meth:`~segmap.pipeline.report.ConvertReport.describe`) for what was painted and
    what was left out."""
    lines = [f"wrote {', '.join(sorted(result.files))} to {result.out_dir}"]
    lines.extend(f"  {sentence}" for sentence in result.report.describe(outputs=False))
    return "\n".join(lines)


def _one_line(message: str) -> str:
    """The message without blank lines; a multi-problem message keeps one problem a line."""
    return "\n".join(line.rstrip() for line in message.strip().splitlines() if line.strip())

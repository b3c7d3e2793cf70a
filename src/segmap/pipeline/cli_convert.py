"""The ``segmap convert`` sub-command: argument parsing and the handler.

Exit status: 0 on success, 1 when an input is bad (one line on stderr saying which file
and what to do, no traceback), 2 on usage errors (argparse's convention).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from segmap.errors import SegmapError
from segmap.masks.policies import OverlapPolicy, UnmatchedPolicy
from segmap.pipeline.convert import INTERPOLATION_ORDERS, ConvertOptions, ConvertResult, convert

PROG = "segmap convert"


def parse_spacing(text: str) -> tuple[float, float, float]:
    """``"X,Y,Z"`` (or one number for all three) -> spacing in mm; argparse type."""
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"spacing must be X,Y,Z in mm (three positive numbers, e.g. 1,1,2.5), got {text!r}"
        )
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


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert`` on an ``add_subparsers()`` object; returns its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "convert",
        help="one RTSTRUCT or SEG to a composite mask (NIfTI) with image, report, preview",
        description=(
            "Convert one ROI collection (RTSTRUCT or DICOM SEG) into a composite label mask on "
            "the grid of the image series it references, painting each region with its value "
            "from the region map. Writes mask.nii.gz and report.json; image.nii.gz (or, with "
            "--spacing, image_resampled.nii.gz and mask_resampled.nii.gz); preview.png."
        ),
    )
    p.add_argument("--map", required=True, type=Path, metavar="MAP",
                   help="region map file (region2MaskValueMap.txt, one Label=Value per line)")
    p.add_argument("--image", required=True, type=Path, metavar="SERIES_DIR",
                   help="folder holding the referenced image series (it may hold others)")
    p.add_argument("--rois", required=True, type=Path, metavar="FILE",
                   help="the ROI collection: an RTSTRUCT or a DICOM SEG file")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="output folder (created if needed; untouched if the conversion fails)")
    p.add_argument("--spacing", type=parse_spacing, metavar="X,Y,Z",
                   help="also resample image and mask to this voxel spacing in mm, along the "
                        "image's columns, rows and slices")
    p.add_argument("--interp", choices=sorted(INTERPOLATION_ORDERS), default="linear",
                   help="image interpolation for --spacing (default linear; the mask is always "
                        "nearest neighbour)")
    p.add_argument("--overlap", choices=[x.value for x in OverlapPolicy], default="order",
                   help="overlapping regions: 'order' = later map line wins (default), "
                        "'error' = refuse")
    p.add_argument("--unmatched", choices=[x.value for x in UnmatchedPolicy], default="skip",
                   help="region names the map lacks: 'skip' and report (default) or 'error'")
    p.add_argument("--strict-names", action="store_true",
                   help="match region names exactly (default: ignore case, accents' forms and "
                        "extra spaces)")
    p.add_argument("--threshold", type=parse_threshold, default=0.5, metavar="F",
                   help="FRACTIONAL SEG threshold, 0 < F <= 1 (default 0.5)")
    p.add_argument("--mask-only", action="store_true",
                   help="write only mask.nii.gz and report.json; image pixels are not read")
    p.add_argument("--no-preview", action="store_true", help="do not draw preview.png")
    p.add_argument("--fixup", action="store_true",
                   help="repair uneven slice spacing or gaps in the series (recorded in the "
                        "report) instead of refusing it")
    p.set_defaults(handler=run_convert, _convert_parser=p)
    return p


def run_convert(args: argparse.Namespace) -> int:
    """Handle parsed ``convert`` arguments; returns the exit status."""
    if args.mask_only and args.spacing is not None:
        args._convert_parser.error("--mask-only writes only the native mask; "
                                   "it cannot be combined with --spacing")
    options = ConvertOptions(
        spacing=args.spacing, interp=args.interp, overlap=args.overlap,
        unmatched=args.unmatched, strict_names=args.strict_names, threshold=args.threshold,
        mask_only=args.mask_only, preview=not args.no_preview, fixup=args.fixup,
    )
    try:
        result = convert(args.map, args.image, args.rois, args.out, options)
    except SegmapError as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {exc.filename or ''}: {exc.strerror or exc}".replace(": :", ":"),
              file=sys.stderr)
        return 1
    print(summary(result))
    return 0


def summary(result: ConvertResult) -> str:
    """A few lines for the terminal: what was written and what was left out."""
    r = result.report
    lines = [f"wrote {', '.join(sorted(result.files))} to {result.out_dir}"]
    for rec in r.regions:
        if rec.status == "unmatched":
            hint = f" (did you mean {', '.join(rec.suggestions)}?)" if rec.suggestions else ""
            lines.append(f"  skipped {rec.source} {rec.name!r}: no map label matches{hint}")
            continue
        extra = ""
        if rec.contours and rec.contours.get("skipped"):
            extra = f", {rec.contours['skipped']} contour(s) skipped"
        lines.append(f"  {rec.name!r} -> {rec.matched_label}={rec.value}: "
                     f"{rec.voxels} voxels, {rec.volume_mm3 / 1000:.2f} mL{extra}")
    if r.absent_labels:
        lines.append(f"  map labels absent from the annotation: {', '.join(r.absent_labels)}")
    for o in r.overlaps:
        lines.append(f"  overlap {o.first} / {o.second}: {o.voxels} voxels (painted {o.winner})")
    for w in r.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def _one_line(message: str) -> str:
    """The message without blank lines; a multi-problem message keeps one problem a line."""
    return "\n".join(line.rstrip() for line in message.strip().splitlines() if line.strip())

"""``segmap map check|show|export|import``: work with a region map file.

Handlers import the labelmap package when they run, so that building the parser (for
``segmap --help`` or any other command) does not import numpy.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmap.cli.common import command, err, needs_subcommand, out
from segmap.cli.newfile import write_new_file

if TYPE_CHECKING:
    from segmap.labelmap import RegionMap

DEFAULT_MAP_NAME = "region2MaskValueMap.txt"
# The same names as labelmap.formats.FORMATS (a test keeps them equal), listed here so
# that building the parser does not import numpy.
FORMAT_NAMES = ("monai", "nnunet", "msd", "slicer", "itksnap")
FORMATS_HELP = (
    "monai: MONAI label dictionary JSON; nnunet: nnU-Net v2 dataset.json labels; "
    "msd: Medical Segmentation Decathlon dataset.json labels; slicer: 3D Slicer colour "
    "table (.ctbl/.txt); itksnap: ITK-SNAP label description file"
)


def add_parser(subparsers: Any) -> None:
    """Add ``segmap map`` and its sub-commands."""
    group = command(
        subparsers,
        "map",
        help="check, show, export and import region maps (region2MaskValueMap.txt)",
        description=(
            "Work with a region map: the region2MaskValueMap.txt file that gives each "
            "region label its mask value, one Label=Value line per region.\n"
            "See docs/region-map.md for the rules."
        ),
    )
    group.set_defaults(handler=needs_subcommand(group))
    commands = group.add_subparsers(dest="map_command", metavar="MAP_COMMAND")

    check = command(
        commands,
        "check",
        help="validate a region map; list every problem",
        description=(
            "Validate a region map file. Prints one summary line and exits 0 when it is "
            "valid; prints every problem as FILE:LINE: message and exits 1 when not."
        ),
        epilog="example:\n  segmap map check region2MaskValueMap.txt",
    )
    check.add_argument("file", metavar="FILE", help="the region map file")
    check.set_defaults(handler=_cmd_map_check)

    show = command(
        commands,
        "show",
        help="print a region map as a table or JSON",
        description="Print the regions of a valid map: label, value and line, in file order.",
        epilog="examples:\n  segmap map show region2MaskValueMap.txt\n"
        "  segmap map show region2MaskValueMap.txt --json",
    )
    show.add_argument("file", metavar="FILE", help="the region map file")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(handler=_cmd_map_show)

    export = command(
        commands,
        "export",
        help="write a region map in another tool's label format",
        description=(
            "Write the map in another label format, to standard output or to -o OUT.\n"
            + FORMATS_HELP
        ),
        epilog="examples:\n  segmap map export region2MaskValueMap.txt --to nnunet -o labels.json\n"
        "  segmap map export region2MaskValueMap.txt --to slicer > organs.ctbl",
    )
    export.add_argument("file", metavar="FILE", help="the region map file")
    export.add_argument("--to", required=True, choices=FORMAT_NAMES, help="the format to write")
    export.add_argument(
        "-o", "--output", metavar="OUT", help="file to write (default: standard output)"
    )
    export.add_argument("--force", action="store_true", help="replace OUT if it exists")
    export.set_defaults(handler=_cmd_map_export)

    imp = command(
        commands,
        "import",
        help="make a region map from another tool's label file",
        description=("Read another tool's label file and write a region map.\n" + FORMATS_HELP),
        epilog="examples:\n  segmap map import dataset.json --from nnunet\n"
        "  segmap map import organs.ctbl --from slicer -o model-a/region2MaskValueMap.txt",
    )
    imp.add_argument("file", metavar="FILE", help="the label file to read")
    imp.add_argument(
        "--from", dest="from_", required=True, choices=FORMAT_NAMES, help="the format of FILE"
    )
    imp.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=DEFAULT_MAP_NAME,
        help=f"region map to write (default: {DEFAULT_MAP_NAME}; '-' for standard output)",
    )
    imp.add_argument("--force", action="store_true", help="replace OUT if it exists")
    imp.add_argument(
        "--plain",
        action="store_true",
        help="write only Label=Value lines (no comments keeping the file's colours)",
    )
    imp.set_defaults(handler=_cmd_map_import)


def _cmd_map_check(args: argparse.Namespace) -> int:
    from segmap.labelmap import RegionMapError, read_region_map

    try:
        region_map = read_region_map(args.file)
    except RegionMapError as exc:
        for line in exc.lines():
            out(line)
        err(f"{exc.summary}; fix them and check again")
        return 1
    out(f"{args.file}: valid region map, {_describe(region_map)}")
    return 0


def _describe(region_map: RegionMap) -> str:
    n = len(region_map)
    values = region_map.values
    text = (
        f"{n} region{'s' if n != 1 else ''}, values {min(values)}-{max(values)}, "
        f"mask type {region_map.dtype.name}"
    )
    shared = region_map.shared_values()
    if shared:
        merged = "; ".join(f"{v} = {' + '.join(labels)}" for v, labels in shared.items())
        text += f"; shared values (one class each): {merged}"
    return text


def _cmd_map_show(args: argparse.Namespace) -> int:
    from segmap.labelmap import read_region_map

    region_map = read_region_map(args.file)
    if args.json:
        data = region_map.to_dict()
        data["regions"] = [{"label": r.label, "value": r.value, "line": r.line} for r in region_map]
        data["shared_values"] = {str(v): list(ls) for v, ls in region_map.shared_values().items()}
        data["source"] = args.file
        out(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    rows = [("Label", "Value", "Line")] + [(r.label, str(r.value), str(r.line)) for r in region_map]
    label_width = max(_width(label) for label, _, _ in rows)
    value_width = max(len(v) for _, v, _ in rows)
    for label, value, line in rows:
        pad = " " * (label_width - _width(label))
        out(f"{label}{pad}  {value:>{value_width}}  {line:>4}")
    out(f"\n{_describe(region_map)}; sha256 {region_map.sha256[:12]}")
    return 0


def _width(text: str) -> int:
    # Wide (CJK) characters take two columns and combining marks none in a terminal.
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _cmd_map_export(args: argparse.Namespace) -> int:
    from segmap.labelmap import parse_region_map
    from segmap.labelmap.colour_comments import read_colour_comments
    from segmap.labelmap.formats import export_map
    from segmap.labelmap.parse import read_text_file

    text = read_text_file(args.file)
    region_map = parse_region_map(text, source=args.file)
    exported = export_map(region_map, args.to, read_colour_comments(text))
    if args.output in (None, "-"):
        sys.stdout.write(exported)
        return 0
    write_new_file(Path(args.output), exported, force=args.force)
    err(f"wrote {args.output}: {len(region_map)} regions as {args.to}")
    return 0


def _cmd_map_import(args: argparse.Namespace) -> int:
    from segmap.labelmap.formats import get_format, import_file

    imported = import_file(args.file, args.from_)
    if args.plain:
        text = imported.region_map.to_text()
    else:
        text = imported.to_map_text(source=Path(args.file).name)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    write_new_file(Path(args.output), text, force=args.force)
    title = get_format(args.from_).title
    err(f"wrote {args.output}: {_describe(imported.region_map)} (from {title} {args.file})")
    return 0

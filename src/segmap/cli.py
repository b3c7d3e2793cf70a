"""The ``segmap`` command line: a thin layer over the library.

Adding a command ``NAME``: write ``_add_NAME_parser(subparsers)``, which creates its parser
with :func:`_command` and sets ``handler=_cmd_NAME``, write ``_cmd_NAME(args) -> int``, and
list the adder in ``_COMMANDS``. Import heavy modules (numpy, pydicom, the server) inside
the handler, so that ``segmap --help`` stays instant.

Exit codes: 0 success; 1 bad input (any :class:`~segmap.errors.SegmapError`, printed as
its message, never a traceback) or an unexpected failure (one line saying it is a bug;
``SEGMAP_DEBUG=1`` shows the traceback); 2 wrong usage; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import secrets
import sys
import traceback
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmap import __version__
from segmap.datasets.command import add_dataset_parser
from segmap.errors import SegmapError

if TYPE_CHECKING:
    from segmap.labelmap import RegionMap

DEFAULT_MAP_NAME = "region2MaskValueMap.txt"
# The same names as labelmap.formats.FORMATS (a test keeps them equal), listed here so
# that building the parser does not import numpy.
_FORMAT_NAMES = ("monai", "nnunet", "msd", "slicer", "itksnap")
_FORMATS_HELP = (
    "monai: MONAI label dictionary JSON; nnunet: nnU-Net v2 dataset.json labels; "
    "msd: Medical Segmentation Decathlon dataset.json labels; slicer: 3D Slicer colour "
    "table (.ctbl/.txt); itksnap: ITK-SNAP label description file"
)

Handler = Callable[[argparse.Namespace], int]


class OutputError(SegmapError):
    """An output file that cannot or must not be written."""


# --- parser construction ----------------------------------------------------------------


def _command(
    subparsers: Any, name: str, *, help: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command parser with the shared conventions (``--version``, formatting)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_version(parser)
    return parser


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action="version", version=f"segmap {__version__}",
        help="print the segmap version and exit",
    )


def _group_needs_subcommand(parser: argparse.ArgumentParser) -> Handler:
    """Handler for a command group called without a sub-command: help, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _add_map_parser(subparsers: Any) -> None:
    group = _command(
        subparsers,
        "map",
        help="check, show, export and import region maps (region2MaskValueMap.txt)",
        description=(
            "Work with a region map: the region2MaskValueMap.txt file that gives each "
            "region label its mask value, one Label=Value line per region.\n"
            "See docs/region-map.md for the rules."
        ),
    )
    group.set_defaults(handler=_group_needs_subcommand(group))
    commands = group.add_subparsers(dest="map_command", metavar="MAP_COMMAND")

    check = _command(
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

    show = _command(
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

    export = _command(
        commands,
        "export",
        help="write a region map in another tool's label format",
        description=(
            "Write the map in another label format, to standard output or to -o OUT.\n"
            + _FORMATS_HELP
        ),
        epilog="examples:\n  segmap map export region2MaskValueMap.txt --to nnunet -o labels.json\n"
        "  segmap map export region2MaskValueMap.txt --to slicer > organs.ctbl",
    )
    export.add_argument("file", metavar="FILE", help="the region map file")
    export.add_argument("--to", required=True, choices=_FORMAT_NAMES, help="the format to write")
    export.add_argument(
        "-o", "--output", metavar="OUT", help="file to write (default: standard output)"
    )
    export.add_argument("--force", action="store_true", help="replace OUT if it exists")
    export.set_defaults(handler=_cmd_map_export)

    imp = _command(
        commands,
        "import",
        help="make a region map from another tool's label file",
        description=(
            "Read another tool's label file and write a region map.\n" + _FORMATS_HELP
        ),
        epilog="examples:\n  segmap map import dataset.json --from nnunet\n"
        "  segmap map import organs.ctbl --from slicer -o model-a/region2MaskValueMap.txt",
    )
    imp.add_argument("file", metavar="FILE", help="the label file to read")
    imp.add_argument("--from", dest="from_", required=True, choices=_FORMAT_NAMES,
                     help="the format of FILE")
    imp.add_argument(
        "-o", "--output", metavar="OUT", default=DEFAULT_MAP_NAME,
        help=f"region map to write (default: {DEFAULT_MAP_NAME}; '-' for standard output)",
    )
    imp.add_argument("--force", action="store_true", help="replace OUT if it exists")
    imp.add_argument(
        "--plain", action="store_true",
        help="write only Label=Value lines (no comments keeping the file's colours)",
    )
    imp.set_defaults(handler=_cmd_map_import)


def _add_convert_parser(subparsers: Any) -> None:
    from segmap.pipeline import cli_convert

    parser = _command(subparsers, "convert", help=cli_convert.HELP,
                      description=cli_convert.DESCRIPTION, epilog=cli_convert.EPILOG)
    cli_convert.add_convert_arguments(parser)
    parser.set_defaults(handler=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    from segmap.pipeline.cli_convert import run_convert

    return run_convert(args)


def _add_batch_parser(subparsers: Any) -> None:
    from segmap.pipeline import cli_batch

    parser = _command(subparsers, "batch", help=cli_batch.HELP,
                      description=cli_batch.DESCRIPTION, epilog=cli_batch.EPILOG)
    cli_batch.add_batch_arguments(parser)
    parser.set_defaults(handler=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from segmap.pipeline.cli_batch import run_batch_command

    return run_batch_command(args)


def _add_serve_parser(subparsers: Any) -> None:
    from segmap.server import cli_commands

    parser = _command(subparsers, "serve", help=cli_commands.SERVE_HELP,
                      description=cli_commands.SERVE_DESCRIPTION)
    cli_commands.add_serve_arguments(parser)
    parser.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from segmap.server.cli_commands import run_serve

    return run_serve(args)


def _add_users_parser(subparsers: Any) -> None:
    from segmap.server import cli_commands

    group = _command(subparsers, "users", help=cli_commands.USERS_HELP,
                     description=cli_commands.USERS_DESCRIPTION)
    group.set_defaults(handler=_group_needs_subcommand(group))
    cli_commands.add_users_commands(
        group.add_subparsers(dest="users_command", metavar="USERS_COMMAND"), _command
    )


_COMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_map_parser, _add_convert_parser, _add_batch_parser, _add_serve_parser,
    _add_users_parser, add_dataset_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``segmap`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="segmap",
        description=(
            "Turn the regions annotators draw in OHIF (RTSTRUCT, DICOM SEG) into "
            "training-ready label masks, one region map per model."
        ),
        epilog="Run 'segmap COMMAND --help' for the options of a command.",
    )
    _add_version(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    parser.set_defaults(handler=_group_needs_subcommand(parser))
    return parser


# --- running ------------------------------------------------------------------------------


def run() -> int:
    """Entry point of the ``segmap`` program: :func:`main`, then get out of the way.

    When the command is done the process only has to end. CPython's shutdown still runs
    several full garbage collections over every object alive -- NumPy's, pydicom's and
    nibabel's modules and their big tables -- about 60 ms, a tenth of a mask-only
    conversion. ``gc.freeze()`` moves those objects out of the collector's sight, so
    the shutdown skips them; everything else about ending (atexit handlers, flushing
    and closing of standard streams, joining threads) happens as usual, and every file
    the command wrote was closed before it returned. Only here, not in :func:`main`,
    which tests and other programs call in a process that goes on.
    """
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except SegmapError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err("segmap: interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`segmap map show ... | head`): not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last line of defence: no traceback for users
        if os.environ.get("SEGMAP_DEBUG") == "1":
            traceback.print_exc()
        else:
            _err(
                f"segmap: internal error ({type(exc).__name__}: {exc}). This is a bug in "
                f"segmap {__version__}; run again with SEGMAP_DEBUG=1 to see the traceback "
                "and please report it."
            )
        return 1


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


# --- map commands -------------------------------------------------------------------------


def _cmd_map_check(args: argparse.Namespace) -> int:
    from segmap.labelmap import RegionMapError, read_region_map

    try:
        region_map = read_region_map(args.file)
    except RegionMapError as exc:
        for line in exc.lines():
            _out(line)
        _err(f"{exc.summary}; fix them and check again")
        return 1
    _out(f"{args.file}: valid region map, {_describe(region_map)}")
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
        data["regions"] = [
            {"label": r.label, "value": r.value, "line": r.line} for r in region_map
        ]
        data["shared_values"] = {str(v): list(ls) for v, ls in region_map.shared_values().items()}
        data["source"] = args.file
        _out(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    rows = [("Label", "Value", "Line")] + [(r.label, str(r.value), str(r.line)) for r in region_map]
    label_width = max(_width(label) for label, _, _ in rows)
    value_width = max(len(v) for _, v, _ in rows)
    for label, value, line in rows:
        pad = " " * (label_width - _width(label))
        _out(f"{label}{pad}  {value:>{value_width}}  {line:>4}")
    _out(f"\n{_describe(region_map)}; sha256 {region_map.sha256[:12]}")
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
    _write_new_file(Path(args.output), exported, force=args.force)
    _err(f"wrote {args.output}: {len(region_map)} regions as {args.to}")
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
    _write_new_file(Path(args.output), text, force=args.force)
    title = get_format(args.from_).title
    _err(f"wrote {args.output}: {_describe(imported.region_map)} (from {title} {args.file})")
    return 0


# --- writing files ---------------------------------------------------------------------


def _write_new_file(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the
    whole new one, never a part. Without ``force`` an existing file is never replaced,
    even one created by someone else while we were writing.

    Raises:
        OutputError: ``path`` exists (without ``force``), is a folder, or cannot be written.
    """
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name with -o")
    if not force and path.exists():
        raise OutputError(_exists(path))
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")
    temp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never write through a file or link that appeared under our name.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _move_into_place(temp, path, force=force)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _move_into_place(temp: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(temp, path)
        return
    try:
        # A hard link fails if the name exists, closing the gap between check and write.
        os.link(temp, path)
    except FileExistsError:
        raise OutputError(_exists(path)) from None
    except OSError:
        # File systems without hard links: the existence check above has to do.
        if path.exists():
            raise OutputError(_exists(path)) from None
        os.replace(temp, path)


def _exists(path: Path) -> str:
    return f"{path} already exists; use --force to replace it, or -o to choose another name"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())

"""The ``segmap`` program: its parser, made from the command modules, and its entry point."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from segmap import __version__
from segmap.cli import archive, batch, convert, dataset, serve, users
from segmap.cli import map as map_command
from segmap.cli.common import Handler, add_version, err, needs_subcommand
from segmap.errors import SegmapError

COMMANDS: tuple[Callable[[Any], None], ...] = (
    map_command.add_parser,
    convert.add_parser,
    batch.add_parser,
    serve.add_parser,
    users.add_parser,
    dataset.add_dataset_parser,
    archive.add_parser,
)
"""Each adds one command to the ``segmap`` parser, in the order ``--help`` lists them."""


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
    add_version(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    parser.set_defaults(handler=needs_subcommand(parser))
    return parser


def run() -> int:
    """Entry point of the ``segmap`` program: :func:`main`, then get out of the way.

    When the command is done the process only has to end. CPython's shutdown still runs
    several full garbage collections over every object alive -- NumPy's, pydicom's and
    nibabel's modules and their big tables -- about 60 ms, a tenth of a mask-only
    conversion. ``gc.freeze()`` moves those objects out of the collector's sight, so
    the shutdown skips them; everything else about ending (atexit handlers, flushing
    and closing of standard streams, joining threads) happens as usual, and every file
    the command wrote was closed before it returned. Only here, not in :func:`main`,
    which tests and other programs call in a process that goes on; and not with
    ``SEGMAP_NO_SPEEDUPS=1`` (:mod:`segmap.pipeline.speedups`).
    """
    from segmap.pipeline.speedups import speedups_enabled

    code = main()
    if speedups_enabled():
        gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see :mod:`segmap.cli`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except SegmapError as exc:
        err(str(exc))
        return 1
    except KeyboardInterrupt:
        err("segmap: interrupted")
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
            err(
                f"segmap: internal error ({type(exc).__name__}: {exc}). This is a bug in "
                f"segmap {__version__}; run again with SEGMAP_DEBUG=1 to see the traceback "
                "and please report it."
            )
        return 1

"""What every ``segmap`` command shares: how its parser is made and how it prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from segmap import __version__

Handler = Callable[[argparse.Namespace], int]
"""A command's handler: parsed arguments in, exit status out."""


def command(
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
    add_version(parser)
    return parser


def add_version(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--version`` option every command has."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"segmap {__version__}",
        help="print the segmap version and exit",
    )


def needs_subcommand(parser: argparse.ArgumentParser) -> Handler:
    """Handler for a command group called without a sub-command: help, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def out(text: str) -> None:
    """Print ``text`` on standard output, ending it with one newline."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def err(text: str) -> None:
    """Print ``text`` on standard error, ending it with one newline."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")

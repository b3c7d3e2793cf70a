"""The ``segmap`` command line: a thin layer over the library.

One module per command: :mod:`.map` (``segmap map check|show|export|import``),
:mod:`.convert`, :mod:`.batch`, :mod:`.serve` and :mod:`.users`; :mod:`.main` builds the
parser from them and runs the handler; :mod:`.common` holds the conventions they share.

Adding a command ``NAME``: write ``segmap/cli/NAME.py`` with ``add_parser(subparsers)``,
which creates its parser with :func:`segmap.cli.common.command` and sets
``handler=...`` (a function ``(args) -> exit code``), and list it in
``segmap.cli.main.COMMANDS``. Import heavy modules (numpy, pydicom, the server) inside
the handler, so that ``segmap --help`` stays instant.

Exit codes: 0 success; 1 bad input (any :class:`~segmap.errors.SegmapError`, printed as
its message, never a traceback) or an unexpected failure (one line saying it is a bug;
``SEGMAP_DEBUG=1`` shows the traceback); 2 wrong usage; 130 interrupted.
"""

from segmap.cli.main import build_parser, main, run

__all__ = ["build_parser", "main", "run"]

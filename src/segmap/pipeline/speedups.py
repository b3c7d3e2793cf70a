"""The one switch that turns off a conversion's performance tricks: ``SEGMAP_NO_SPEEDUPS=1``.

The tricks make a command-line conversion fast but must never change its result:

* the RTSTRUCT is parsed in a forked child while this process reads the series headers
  (:mod:`segmap.pipeline.inputs`), with the heap frozen (``gc.freeze``) around the fork;
* the composite mask's memory is faulted in on a helper thread while regions are placed
  (:mod:`segmap.pipeline.convert`);
* output files are compressed on a background writer thread (:mod:`segmap.pipeline.writer`);
* the ``segmap`` program freezes the heap before the interpreter exits
  (:func:`segmap.cli.main.run`).

With ``SEGMAP_NO_SPEEDUPS=1`` in the environment each is skipped and the plain way taken:
the reads one after the other, a mask allocated by the painter, files written by the
converting thread, a normal exit. CI runs the conversion tests a second time so
(``make pytest-no-speedups``), so that correctness never depends on the tricks.

The variable is read here and nowhere else, each time it is asked (no state is kept).
"""

from __future__ import annotations

import os

NO_SPEEDUPS_ENV = "SEGMAP_NO_SPEEDUPS"
"""Environment variable: ``1`` turns the performance tricks off (empty or ``0``: on)."""


def speedups_enabled() -> bool:
    """False when ``SEGMAP_NO_SPEEDUPS`` is set to anything but empty or ``0``."""
    return os.environ.get(NO_SPEEDUPS_ENV, "").strip() in {"", "0"}

"""Problems found in a region map, and the errors that carry them to the user."""

from __future__ import annotations

from dataclasses import dataclass

from segmap.errors import SegmapError

_SHOWN_TEXT = 80  # a pasted CSV row can be kilobytes long; the start identifies the line
# How many problems an error lists. A wrong file given as a map (a CSV export, a log) can
# have a problem on each of 100,000 lines; every answer, page and terminal shows the
# first ones and a count of the rest, which is what someone fixing the file can use.
MAX_REPORTED = 50


def shorten(text: str, limit: int = _SHOWN_TEXT) -> str:
    """``text`` cut to ``limit`` characters with ``...`` when longer (for quoting input)."""
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class MapProblem:
    """One thing wrong with a region map.

    Attributes:
        line: 1-based line number in the source text (for maps built from pairs in code,
            the 1-based position of the pair); 0 when the problem concerns the whole map.
        text: the offending line as written, without its line ending ("" for line 0).
        message: a plain sentence saying what is wrong and how to fix it.
    """

    line: int
    text: str
    message: str

    @property
    def shown_text(self) -> str:
        """The line as quoted in messages and answers: at most 80 characters and ``...``."""
        return shorten(self.text)

    @property
    def detail(self) -> str:
        """The quoted line followed by the message, e.g. ``"Spleen=0": 0 is ...``."""
        if not self.text:
            return self.message
        return f'"{self.shown_text}": {self.message}'

    def __str__(self) -> str:
        if self.line == 0:
            return self.detail
        return f"line {self.line}: {self.detail}"


class RegionMapError(SegmapError):
    """A region map that breaks the rules: the first problems, and how many there are.

    ``problems`` holds the first ``MAX_REPORTED`` problems (in line order); ``total``
    counts every problem found and ``not_shown`` the ones left out, so a message, an API
    answer or a page stays small whatever file was given.
    """

    def __init__(self, problems: tuple[MapProblem, ...] | list[MapProblem], source: str) -> None:
        found = tuple(problems)
        self.total = len(found)
        self.problems: tuple[MapProblem, ...] = found[:MAX_REPORTED]
        self.source = source
        super().__init__("\n".join(self.lines()))

    @property
    def not_shown(self) -> int:
        """How many problems were found beyond the ones listed in ``problems``."""
        return self.total - len(self.problems)

    def lines(self) -> list[str]:
        """Each listed problem as ``SOURCE:LINE: "text": message`` (``SOURCE: message`` for
        line 0), then ``... and N more problems`` when some were left out."""
        out = []
        for p in self.problems:
            where = f"{self.source}:{p.line}" if p.line else self.source
            out.append(f"{where}: {p.detail}")
        if self.not_shown:
            out.append(more_problems(self.not_shown))
        return out

    @property
    def summary(self) -> str:
        """One line: how many problems, in which map."""
        n = self.total
        return f"{self.source}: {n} problem{'s' if n != 1 else ''} in the region map"


def more_problems(count: int) -> str:
    """The line that stands for ``count`` problems not listed."""
    return (
        f"... and {count} more problem{'s' if count != 1 else ''} not listed; fix these "
        "first (is this the right file?)"
    )


def first_problems(problems: list[str]) -> list[str]:
    """At most ``MAX_REPORTED`` problem sentences, then one that counts the rest."""
    if len(problems) <= MAX_REPORTED:
        return problems
    return [*problems[:MAX_REPORTED], more_problems(len(problems) - MAX_REPORTED)]


class RegionMapFileError(SegmapError):
    """A region map file that cannot be read as text at all (missing, folder, binary, empty)."""

    def __init__(self, message: str, path: str) -> None:
        self.path = path
        super().__init__(message)

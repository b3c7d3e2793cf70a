"""Problems found in a region map, and the errors that carry them to the user."""

from __future__ import annotations

from dataclasses import dataclass

from segmap.errors import SegmapError

_SHOWN_TEXT = 80  # a pasted CSV row can be kilobytes long; the start identifies the line


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
    def detail(self) -> str:
        """The quoted line followed by the message, e.g. ``"Spleen=0": 0 is ...``."""
        if not self.text:
            return self.message
        shown = self.text if len(self.text) <= _SHOWN_TEXT else self.text[:_SHOWN_TEXT] + "..."
        return f'"{shown}": {self.message}'

    def __str__(self) -> str:
        if self.line == 0:
            return self.detail
        return f"line {self.line}: {self.detail}"


class RegionMapError(SegmapError):
    """A region map that breaks the rules; every problem found is listed, not just the first."""

    def __init__(self, problems: tuple[MapProblem, ...] | list[MapProblem], source: str) -> None:
        self.problems: tuple[MapProblem, ...] = tuple(problems)
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Each problem as ``SOURCE:LINE: "text": message`` (``SOURCE: message`` for line 0)."""
        out = []
        for p in self.problems:
            where = f"{self.source}:{p.line}" if p.line else self.source
            out.append(f"{where}: {p.detail}")
        return out

    @property
    def summary(self) -> str:
        """One line: how many problems, in which map."""
        n = len(self.problems)
        return f"{self.source}: {n} problem{'s' if n != 1 else ''} in the region map"


class RegionMapFileError(SegmapError):
    """A region map file that cannot be read as text at all (missing, folder, binary, empty)."""

    def __init__(self, message: str, path: str) -> None:
        self.path = path
        super().__init__(message)

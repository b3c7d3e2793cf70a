"""Which conversions a dataset takes: all of them, or those a filter names.

A filter holds, per field, the values to keep; a value may be a shell-style pattern
(``PAT0*``, ``carol/*``), matched case-sensitively against the whole field. Fields left
empty keep everything. Within a field any value may match; across fields all must.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from segmap.datasets.errors import DatasetError
from segmap.datasets.sources import Conversion

FIELDS = ("subject", "session", "collection", "annotator")


@dataclass(frozen=True)
class CaseFilter:
    """Values (or patterns) to keep, per field; an empty field keeps all.

    ``collection`` also matches the annotation's SOPInstanceUID and SeriesInstanceUID;
    ``session`` also matches the scan's StudyInstanceUID.
    """

    subject: tuple[str, ...] = field(default=())
    session: tuple[str, ...] = field(default=())
    collection: tuple[str, ...] = field(default=())
    annotator: tuple[str, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        """True when the filter keeps everything."""
        return not any(getattr(self, f) for f in FIELDS)

    def keeps(self, c: Conversion) -> bool:
        """Whether conversion ``c`` passes every non-empty field."""
        candidates: dict[str, Sequence[str]] = {
            "subject": (c.subject,),
            "session": (c.session, c.study_instance_uid),
            "collection": (
                c.collection,
                c.annotation_sop_instance_uid,
                c.annotation_series_instance_uid,
            ),
            "annotator": (c.annotator,),
        }
        for name in FIELDS:
            patterns = getattr(self, name)
            if patterns and not any(
                fnmatchcase(value, p) for value in candidates[name] for p in patterns
            ):
                return False
        return True

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form: only the fields that are set."""
        return {f: list(getattr(self, f)) for f in FIELDS if getattr(self, f)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str = "filter") -> CaseFilter:
        """A filter from JSON (``{"subject": ["PAT01"], ...}``; a lone string is allowed).

        Raises:
            DatasetError: an unknown field or a value that is not text.
        """
        data = data or {}
        if not isinstance(data, Mapping):
            raise DatasetError(f"{where} must be an object with fields {', '.join(FIELDS)}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise DatasetError(
                f"{where}: unknown field(s) {', '.join(unknown)}; a filter has {', '.join(FIELDS)}"
            )
        values: dict[str, tuple[str, ...]] = {}
        for name in FIELDS:
            raw = data.get(name) or ()
            items = (raw,) if isinstance(raw, str) else raw
            if not isinstance(items, Iterable) or not all(isinstance(v, str) for v in items):
                raise DatasetError(f"{where}.{name} must be a string or a list of strings")
            values[name] = tuple(items)
        return cls(**values)


def select(conversions: Iterable[Conversion], case_filter: CaseFilter) -> list[Conversion]:
    """The conversions ``case_filter`` keeps, in their given order."""
    return [c for c in conversions if case_filter.keeps(c)]

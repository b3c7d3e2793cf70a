"""QIDO-RS query parameters (PS3.18 §8.3.4, §10.6.1) parsed into a typed :class:`Query`.

Keys are DICOM keywords (``PatientID``) or tags as eight hex digits (``00100020``), or
the query parameters ``limit``, ``offset``, ``includefield``, ``fuzzymatching``,
``emptyvaluematching`` and ``multiplevaluematching``. What each value means follows the
attribute's VR (PS3.4 §C.2.2.2):

- UI: a UID list, values separated by ``,`` or ``\\`` (repeating the key adds to it);
- PN: literal or wildcard (``*`` any run, ``?`` one character), case-insensitive (PS3.4
  allows it for PN); with ``fuzzymatching=true`` a name also matches where the value
  appears anywhere in it;
- other text (LO, SH, …): literal or wildcard, case-sensitive;
- CS: one code or a list (``CT,MR`` or ``CT\\MR``): any of them;
- DA: a date or a range ``a-b``, ``-b``, ``a-``; TM: a time or a range, where a partial
  time covers its whole precision (``10`` is 10:00:00 to 10:59:59.999999);
- IS, US: a whole number;
- an empty value (or ``*`` alone for text) is universal matching: no condition, the
  attribute is returned.

Errors name the key: an unknown key (neither a DICOM attribute nor a parameter), a
malformed value, or an attribute of a lower level than the search (``Modality`` on
``/studies``) is a :class:`~.errors.BadRequest` (400). A DICOM attribute segmap does not
match on (one outside :data:`.levels.MATCHABLE`, or a sequence path) is ignored as
PS3.18 §8.3 says, and listed in :attr:`Query.ignored` for a ``Warning`` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from segmap.server.dicomweb.errors import BadRequest
from segmap.server.dicomweb.levels import MATCHABLE, STORED, Attribute, Level, returned

_PARAMETERS = (
    "limit", "offset", "includefield", "fuzzymatching", "emptyvaluematching",
    "multiplevaluematching",
)  # fmt: skip
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_TIME = re.compile(r"([01][0-9]|2[0-3])(([0-5][0-9])(([0-5][0-9]|60)(\.[0-9]{1,6})?)?)?")
_TEXT_VRS = {"AE", "AS", "LO", "LT", "SH", "ST", "UC", "UT"}


@dataclass(frozen=True)
class UidList:
    """Match any of these UIDs."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Pattern:
    """Match a text value literally, or with ``*``/``?`` wildcards when ``wildcard``."""

    value: str
    wildcard: bool
    case_insensitive: bool = False


@dataclass(frozen=True)
class Range:
    """Match values from ``low`` to ``high`` inclusive (either open), as normalised text.

    Dates are ``YYYYMMDD``; times ``HHMMSS.ffffff`` (see :func:`normalise_time`), so
    comparing the strings compares the instants.
    """

    low: str | None
    high: str | None


@dataclass(frozen=True)
class Equals:
    """Match exactly this value (a date string or a whole number)."""

    value: str | int


@dataclass(frozen=True)
class AnyOf:
    """Match any of these codes (CS); a multi-valued attribute matches when any value does."""

    values: tuple[str, ...]


Condition = UidList | Pattern | Range | Equals | AnyOf


@dataclass(frozen=True)
class Match:
    """One matching key of a query."""

    attribute: Attribute
    condition: Condition


@dataclass(frozen=True)
class Query:
    """A parsed QIDO query at one level."""

    level: Level
    matches: tuple[Match, ...] = ()
    include: tuple[int, ...] = ()
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    empty_value_matching: bool = False
    ignored: tuple[str, ...] = field(default=())

    def return_tags(self, scope: Level | None = None) -> tuple[int, ...]:
        """Attributes each result carries: the level's defaults, the include fields and
        the matching keys (PS3.18 §10.6.3.3); with ``includefield=all`` every stored one."""
        tags = list(returned(self.level, scope))
        extra = [m.attribute.tag for m in self.matches] + list(self.include)
        if self.include_all:
            extra += [t for level in self.level.above for t in STORED[level]]
        tags.extend(t for t in extra if t not in tags)
        return tuple(tags)

    def warning(self) -> str | None:
        """A ``Warning`` header value naming the ignored keys, or None."""
        if not self.ignored:
            return None
        names = ", ".join(self.ignored)
        return f'299 segmap "The following query keys are not supported and were ignored: {names}"'


def parse_query(params: Iterable[tuple[str, str]], level: Level) -> Query:
    """Parse the query string's ``(key, value)`` pairs, in order, repeats allowed."""
    builder = _Builder(level)
    for key, value in params:
        builder.add(key, value)
    return builder.build()


def normalise_time(value: str) -> str:
    """A DICOM TM value as ``HHMMSS.ffffff`` (missing parts zero) for comparing as text.

    The indexer stores TM columns in this form so :class:`Range` comparisons hold;
    raises ``ValueError`` for a value that is not a TM.
    """
    return _time_bound(value.strip(), high=False)


class _Builder:
    def __init__(self, level: Level) -> None:
        self.level = level
        self.matches: dict[int, Match] = {}
        self.include: list[int] = []
        self.include_all = False
        self.ignored: list[str] = []
        self.options: dict[str, str] = {}

    def add(self, key: str, value: str) -> None:
        if key in _PARAMETERS:
            if key == "includefield":
                self._include(value)
            elif key in self.options:
                raise BadRequest(f"query parameter {key!r} is given twice")
            else:
                self.options[key] = value
            return
        tag = _attribute_tag(key, for_what="query key")
        if tag is None:
            self.ignored.append(key)
            return
        keyword = keyword_for_tag(tag)
        attribute = MATCHABLE.get(keyword)
        if attribute is None:
            self.ignored.append(key)
            return
        if attribute.level not in self.level.above:
            hint = " (on studies, use ModalitiesInStudy)" if keyword == "Modality" else ""
            raise BadRequest(
                f"query key {key!r}: {keyword} is a {attribute.level.value}-level attribute "
                f"and cannot be matched in a {self.level.value} search{hint}"
            )
        condition = _condition(key, attribute, value.strip())
        if condition is None:  # universal matching
            if attribute.tag not in self.include:
                self.include.append(attribute.tag)
            return
        previous = self.matches.get(attribute.tag)
        if previous is not None:
            if not (isinstance(previous.condition, UidList) and isinstance(condition, UidList)):
                raise BadRequest(f"query key {key!r} ({keyword}) is given twice")
            condition = UidList(previous.condition.values + condition.values)
        self.matches[attribute.tag] = Match(attribute, condition)

    def _include(self, value: str) -> None:
        for item in (v.strip() for v in value.split(",")):
            if item == "all":
                self.include_all = True
            elif item:
                tag = _attribute_tag(item, for_what="includefield", first_of_path=True)
                if tag is not None and tag not in self.include:
                    self.include.append(tag)
            else:
                raise BadRequest("includefield has an empty item; give tags or keywords")

    def _flag(self, name: str) -> bool:
        value = self.options.get(name, "false")
        if value.lower() not in ("true", "false"):
            raise BadRequest(f"{name} must be true or false, not {value!r}")
        return value.lower() == "true"

    def build(self) -> Query:
        fuzzy = self._flag("fuzzymatching")
        if fuzzy:  # applied at the end: the parameter may come after the names
            self.matches = {t: _refuzz(m) for t, m in self.matches.items()}
        self._flag("multiplevaluematching")  # accepted: lists always match any value
        return Query(
            level=self.level,
            matches=tuple(self.matches.values()),
            include=tuple(self.include),
            include_all=self.include_all,
            limit=_whole("limit", self.options.get("limit")),
            offset=_whole("offset", self.options.get("offset")) or 0,
            fuzzy=fuzzy,
            empty_value_matching=self._flag("emptyvaluematching"),
            ignored=tuple(self.ignored),
        )


def _attribute_tag(key: str, *, for_what: str, first_of_path: bool = False) -> int | None:
    """The tag a key names; None for a sequence path (not matched); 400 when unknown."""
    parts = key.split(".")
    tags = []
    for part in parts:
        tag = int(part, 16) if _HEX_TAG.fullmatch(part) else tag_for_keyword(part)
        if tag is None or (_HEX_TAG.fullmatch(part) and not _known(int(tag))):
            allowed = ", ".join(_PARAMETERS)
            raise BadRequest(
                f"unknown {for_what} {key!r}: {part!r} is not a DICOM keyword or tag"
                + (f" nor one of {allowed}" if for_what == "query key" else "")
            )
        tags.append(int(tag))
    if len(tags) > 1 and not first_of_path:
        return None
    return tags[0]


def _known(tag: int) -> bool:
    if tag >> 16 & 1:  # private tags are not in the dictionary; they are never matched
        return True
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True


def _condition(key: str, attribute: Attribute, value: str) -> Condition | None:
    vr = attribute.vr
    if value == "" or (value == "*" and vr not in ("DA", "TM", "UI", "IS", "US")):
        return None
    if vr == "UI":
        return _uids(key, value)
    if vr == "PN":
        return _text(key, value, case_insensitive=True)
    if vr in _TEXT_VRS:
        return _text(key, value)
    if vr == "CS":
        return _codes(key, value)
    if vr == "DA":
        return _date_range(key, value)
    if vr == "TM":
        return _time_range(key, value)
    if vr in ("IS", "US"):
        number = _whole(f"query key {key!r}", value)
        assert number is not None
        return Equals(number)
    raise BadRequest(f"query key {key!r}: matching on VR {vr} is not supported")


def _uids(key: str, value: str) -> UidList:
    values = tuple(v.strip() for v in re.split(r"[,\\]", value))
    for v in values:
        if len(v) > 64 or not _UID.fullmatch(v):
            raise BadRequest(f"query key {key!r}: {v!r} is not a UID (digits and dots)")
    return UidList(values)


def _text(key: str, value: str, *, case_insensitive: bool = False) -> Pattern:
    if "\\" in value:
        raise BadRequest(
            f"query key {key!r}: several values (\\) are only matched for UIDs and codes"
        )
    return Pattern(value, "*" in value or "?" in value, case_insensitive)


def _refuzz(match: Match) -> Match:
    c = match.condition
    if isinstance(c, Pattern) and c.case_insensitive and not c.wildcard:
        return Match(match.attribute, Pattern(f"*{c.value}*", True, True))
    return match


def _codes(key: str, value: str) -> AnyOf:
    values = tuple(v.strip() for v in re.split(r"[,\\]", value))
    for v in values:
        if not re.fullmatch(r"[A-Z0-9 _]{1,16}", v):
            raise BadRequest(
                f"query key {key!r}: {v!r} is not a code (upper-case letters, digits, _; "
                "no wildcards)"
            )
    return AnyOf(values)


def _split_range(key: str, value: str) -> tuple[str, str] | None:
    if value.count("-") > 1:
        raise BadRequest(f"query key {key!r}: {value!r} has more than one '-'")
    if "-" not in value:
        return None
    low, high = (part.strip() for part in value.split("-"))
    if not low and not high:
        raise BadRequest(f"query key {key!r}: a range needs a start or an end")
    return low, high


def _date_range(key: str, value: str) -> Range | Equals:
    def date(text: str) -> str:
        try:
            datetime.strptime(text, "%Y%m%d")
        except ValueError:
            raise BadRequest(
                f"query key {key!r}: {text!r} is not a date (YYYYMMDD, or a range "
                "YYYYMMDD-YYYYMMDD)"
            ) from None
        return text

    parts = _split_range(key, value)
    if parts is None:
        return Equals(date(value))
    low, high = (date(p) if p else None for p in parts)
    if low and high and low > high:
        raise BadRequest(f"query key {key!r}: the range {value!r} ends before it starts")
    return Range(low, high)


def _time_range(key: str, value: str) -> Range:
    def bound(text: str, high: bool) -> str:
        try:
            return _time_bound(text, high=high)
        except ValueError:
            raise BadRequest(
                f"query key {key!r}: {text!r} is not a time (HH, HHMM, HHMMSS or "
                "HHMMSS.ffffff, or a range of them)"
            ) from None

    parts = _split_range(key, value)
    if parts is None:
        return Range(bound(value, False), bound(value, True))
    low, high = (bound(p, i == 1) if p else None for i, p in enumerate(parts))
    if low and high and low > high:
        raise BadRequest(f"query key {key!r}: the range {value!r} ends before it starts")
    return Range(low, high)


def _time_bound(text: str, *, high: bool) -> str:
    match = _TIME.fullmatch(text.replace(":", ""))
    if match is None:
        raise ValueError(f"not a DICOM time: {text!r}")
    hh, mm, ss, frac = match.group(1), match.group(3), match.group(5), match.group(6)
    fill = "59" if high else "00"
    fraction = (frac or ".")[1:].ljust(6, "9" if high else "0")
    return f"{hh}{mm or fill}{ss or fill}.{fraction}"


def _whole(key: str, value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        raise BadRequest(f"{key} must be a whole number of 0 or more, not {value!r}")
    return int(text)

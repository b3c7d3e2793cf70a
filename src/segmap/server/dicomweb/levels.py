"""The three QIDO levels and, per level, the attributes segmap matches on and returns.

One place for these facts: the query parser (:mod:`.query`), the SQL matcher
(:mod:`.matching`) and the DICOM JSON builder (:mod:`.dicomjson`) all read them here.

- :data:`RETURNED` — what every result of a level carries by default (PS3.18 Tables
  10.6.3-3, -4 and -5). Specific Character Set is left out: DICOM JSON is UTF-8.
- :data:`MATCHABLE` — the attributes a query may match on at each level: PS3.18
  Table 10.6.1-5's required keys and the text attributes OHIF's worklist filters on
  (StudyDescription, SeriesDescription), plus a few dates. A query at a level may also
  match the attributes of the levels above it (``/series?PatientID=…``).
- :data:`STORED` — what the index keeps per level and ``includefield=all`` returns:
  the returned and matchable attributes and a few more that viewers show.

Tags are ints (``0x0020000D``); the VR and keyword come from pydicom's dictionary, so a
VR is never written down twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag, tag_for_keyword


class Level(enum.Enum):
    """A QIDO query level (the resource the search returns)."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"

    @property
    def above(self) -> tuple[Level, ...]:
        """This level and the levels above it, top first."""
        order = (Level.STUDY, Level.SERIES, Level.INSTANCE)
        return order[: order.index(self) + 1]


@dataclass(frozen=True)
class Attribute:
    """A DICOM attribute as the query layer sees it."""

    tag: int
    level: Level

    @property
    def keyword(self) -> str:
        return keyword_for_tag(self.tag)

    @property
    def vr(self) -> str:
        return dictionary_VR(self.tag)

    @property
    def multi_valued(self) -> bool:
        """True when the attribute may hold several values (e.g. ModalitiesInStudy)."""
        return dictionary_VM(self.tag) not in ("1", "")

    @property
    def hex(self) -> str:
        """The tag as DICOM JSON names it: eight upper-case hex digits."""
        return f"{self.tag:08X}"


def _tags(*keywords: str) -> tuple[int, ...]:
    tags = []
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:  # a typo here is a bug; fail at import, not at query time
            raise ValueError(f"unknown DICOM keyword {keyword!r}")
        tags.append(int(tag))
    return tuple(tags)


RETRIEVE_URL = 0x00081190
NUMBER_OF_STUDY_RELATED_SERIES = 0x00201206
NUMBER_OF_STUDY_RELATED_INSTANCES = 0x00201208
NUMBER_OF_SERIES_RELATED_INSTANCES = 0x00201209
MODALITIES_IN_STUDY = 0x00080061

RETURNED: dict[Level, tuple[int, ...]] = {
    Level.STUDY: _tags(
        "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability",
        "ModalitiesInStudy", "ReferringPhysicianName", "TimezoneOffsetFromUTC", "RetrieveURL",
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
        "StudyID", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: _tags(
        "Modality", "TimezoneOffsetFromUTC", "SeriesDescription", "RetrieveURL",
        "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
        "RequestAttributesSequence",
    ),
    Level.INSTANCE: _tags(
        "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "TimezoneOffsetFromUTC",
        "RetrieveURL", "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames",
    ),
}  # fmt: skip

_MATCHABLE_KEYWORDS: dict[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "StudyInstanceUID", "PatientName", "PatientID", "AccessionNumber", "StudyDate",
        "StudyTime", "ModalitiesInStudy", "ReferringPhysicianName", "StudyID",
        "StudyDescription", "PatientBirthDate", "PatientSex",
    ),
    Level.SERIES: (
        "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "SeriesDate",
        "SeriesTime", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    ),
    Level.INSTANCE: ("SOPInstanceUID", "SOPClassUID", "InstanceNumber"),
}  # fmt: skip

MATCHABLE: dict[str, Attribute] = {
    keyword: Attribute(int(tag_for_keyword(keyword) or 0), level)
    for level, keywords in _MATCHABLE_KEYWORDS.items()
    for keyword in keywords
}
"""Matchable attributes by keyword, each with the level it belongs to."""

_EXTRA_STORED: dict[Level, tuple[int, ...]] = {
    Level.STUDY: _tags("StudyDescription", "IssuerOfPatientID", "PatientAge"),
    Level.SERIES: _tags(
        "SeriesDate", "SeriesTime", "BodyPartExamined", "ProtocolName", "FrameOfReferenceUID",
    ),
    Level.INSTANCE: _tags("ImageType", "ContentDate", "ContentTime"),
}  # fmt: skip

COUNTS: dict[Level, tuple[int, ...]] = {
    Level.STUDY: (NUMBER_OF_STUDY_RELATED_SERIES, NUMBER_OF_STUDY_RELATED_INSTANCES),
    Level.SERIES: (NUMBER_OF_SERIES_RELATED_INSTANCES,),
    Level.INSTANCE: (),
}
"""Attributes the index computes (counts) rather than copies from a file."""

DERIVED: frozenset[int] = frozenset(
    {RETRIEVE_URL, MODALITIES_IN_STUDY, *(t for ts in COUNTS.values() for t in ts)}
)
"""Returned attributes that no instance holds: the index or the route supplies them."""


def _stored(level: Level) -> tuple[int, ...]:
    tags = set(RETURNED[level]) | set(_EXTRA_STORED[level])
    tags |= {a.tag for a in MATCHABLE.values() if a.level is level}
    return tuple(sorted(tags - DERIVED))


STORED: dict[Level, tuple[int, ...]] = {level: _stored(level) for level in Level}
"""Attributes copied from an instance into the index record of each level."""


UNIQUE_KEYS: dict[Level, int] = {
    Level.STUDY: MATCHABLE["StudyInstanceUID"].tag,
    Level.SERIES: MATCHABLE["SeriesInstanceUID"].tag,
    Level.INSTANCE: MATCHABLE["SOPInstanceUID"].tag,
}


def returned(level: Level, scope: Level | None = None) -> tuple[int, ...]:
    """Default result attributes of a search for ``level`` under ``scope``.

    ``scope`` is the deepest level named in the path: ``None`` for ``/series`` and
    ``/instances``, STUDY for ``/studies/{study}/series`` or ``…/instances``, SERIES for
    ``…/series/{series}/instances``. The levels between the scope and ``level`` add their
    attributes (PS3.18 §10.6.3.3: ``/series`` results carry the study's), and the unique
    keys of the levels above are always there, since clients file results under them.
    """
    above = level.above
    start = 0 if scope is None else above.index(scope) + 1
    tags: list[int] = [UNIQUE_KEYS[each] for each in above[:-1]]
    for each in above[start:]:
        tags.extend(t for t in RETURNED[each] if t not in tags)
    return tuple(tags)

"""QIDO query parsing: keys by keyword or tag, values by VR, errors that name the key."""

from __future__ import annotations

import pytest

from segmap.server.dicomweb.errors import BadRequest
from segmap.server.dicomweb.levels import MATCHABLE, RETURNED, Level, returned
from segmap.server.dicomweb.query import (
    AnyOf,
    Equals,
    Pattern,
    Range,
    UidList,
    normalise_time,
    parse_query,
)

PATIENT_ID = 0x00100020
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E


def _conditions(params: list[tuple[str, str]], level: Level = Level.STUDY) -> dict[str, object]:
    query = parse_query(params, level)
    return {m.attribute.keyword: m.condition for m in query.matches}


def test_ohif_worklist_query() -> None:
    """The study-list query OHIF 3.13 sends, key for key (reference notes §2A)."""
    params = [
        ("PatientName", "*doe*"), ("00100020", "*12*"), ("AccessionNumber", "*A1*"),
        ("StudyDescription", "*chest*"), ("ModalitiesInStudy", "CT,MR"), ("limit", "101"),
        ("offset", "0"), ("fuzzymatching", "false"),
        ("includefield", "00081030,00080060,00080090,00100030"),
        ("StudyDate", "20240101-20241231"),
    ]  # fmt: skip
    query = parse_query(params, Level.STUDY)
    got = {m.attribute.keyword: m.condition for m in query.matches}
    assert got == {
        "PatientName": Pattern("*doe*", wildcard=True, case_insensitive=True),
        "PatientID": Pattern("*12*", wildcard=True),
        "AccessionNumber": Pattern("*A1*", wildcard=True),
        "StudyDescription": Pattern("*chest*", wildcard=True),
        "ModalitiesInStudy": AnyOf(("CT", "MR")),
        "StudyDate": Range("20240101", "20241231"),
    }
    assert (query.limit, query.offset, query.fuzzy) == (101, 0, False)
    assert query.include == (0x00081030, 0x00080060, 0x00080090, 0x00100030)
    assert query.ignored == () and query.warning() is None


def test_patient_id_by_tag_or_keyword_is_the_same_key() -> None:
    by_tag = parse_query([("00100020", "P1")], Level.STUDY)
    by_keyword = parse_query([("PatientID", "P1")], Level.STUDY)
    assert by_tag.matches == by_keyword.matches
    assert by_tag.matches[0].attribute.tag == PATIENT_ID
    assert parse_query([("00101010", "x")], Level.STUDY).ignored == ("00101010",)  # PatientAge


def test_uid_lists() -> None:
    got = _conditions([("StudyInstanceUID", "1.2.3,1.2.4\\1.2.5"), ("StudyInstanceUID", "9.8")])
    assert got == {"StudyInstanceUID": UidList(("1.2.3", "1.2.4", "1.2.5", "9.8"))}
    with pytest.raises(BadRequest, match=r"'StudyInstanceUID'.*'1\.2\.\*' is not a UID"):
        parse_query([("StudyInstanceUID", "1.2.*")], Level.STUDY)
    with pytest.raises(BadRequest, match="'1.02' is not a UID"):
        parse_query([("StudyInstanceUID", "1.02")], Level.STUDY)


def test_dates_and_times() -> None:
    got = _conditions([
        ("StudyDate", "-20240301"), ("PatientBirthDate", "19700101"), ("StudyTime", "10-1130"),
    ])  # fmt: skip
    assert got["StudyDate"] == Range(None, "20240301")
    assert got["PatientBirthDate"] == Equals("19700101")
    assert got["StudyTime"] == Range("100000.000000", "113059.999999")
    single = _conditions([("StudyTime", "101502.5")])["StudyTime"]
    assert single == Range("101502.500000", "101502.599999")
    assert normalise_time("1015") == "101500.000000"
    assert normalise_time("10:15:02") == "101502.000000"  # the old ACR-NEMA form
    for bad in ("2024-13-01", "20240230", "2024010", "20240101-20230101", "-", "1-2-3"):
        with pytest.raises(BadRequest, match="StudyDate"):
            parse_query([("StudyDate", bad)], Level.STUDY)
    for bad in ("25", "1075", "abc"):
        with pytest.raises(BadRequest, match="'StudyTime'.*not a time"):
            parse_query([("StudyTime", bad)], Level.STUDY)


def test_series_level_keys_and_numbers() -> None:
    got = _conditions([("Modality", "SEG"), ("SeriesNumber", "3101"), ("SeriesDate", "20240101-")],
                      Level.SERIES)  # fmt: skip
    assert got == {
        "Modality": AnyOf(("SEG",)),
        "SeriesNumber": Equals(3101),
        "SeriesDate": Range("20240101", None),
    }
    with pytest.raises(BadRequest, match="'SeriesNumber'.*whole number"):
        parse_query([("SeriesNumber", "3.5")], Level.SERIES)
    # a series search may match on study attributes too
    assert _conditions([("PatientID", "P1")], Level.SERIES) == {"PatientID": Pattern("P1", False)}


def test_instance_level_sop_class() -> None:
    got = _conditions([("SOPClassUID", "1.2.840.10008.5.1.4.1.1.66.4")], Level.INSTANCE)
    assert got == {"SOPClassUID": UidList(("1.2.840.10008.5.1.4.1.1.66.4",))}


def test_lower_level_keys_are_refused_with_a_hint() -> None:
    with pytest.raises(BadRequest, match="'Modality'.*series-level.*ModalitiesInStudy"):
        parse_query([("Modality", "CT")], Level.STUDY)
    with pytest.raises(BadRequest, match="'00080016'.*instance-level"):
        parse_query([("00080016", "1.2")], Level.SERIES)


def test_unknown_and_malformed_keys_name_the_key() -> None:
    with pytest.raises(BadRequest, match="unknown query key 'PatientNam'.*limit, offset"):
        parse_query([("PatientNam", "x")], Level.STUDY)
    with pytest.raises(BadRequest, match="unknown query key '00100099'"):
        parse_query([("00100099", "x")], Level.STUDY)
    # a private tag is a DICOM tag: not matched, so ignored
    assert parse_query([("00091001", "x")], Level.STUDY).ignored == ("00091001",)
    with pytest.raises(BadRequest, match="limit must be a whole number.*'-1'"):
        parse_query([("limit", "-1")], Level.STUDY)
    with pytest.raises(BadRequest, match="offset must be a whole number.*'ten'"):
        parse_query([("offset", "ten")], Level.STUDY)
    with pytest.raises(BadRequest, match="fuzzymatching must be true or false"):
        parse_query([("fuzzymatching", "yes")], Level.STUDY)
    with pytest.raises(BadRequest, match="'limit' is given twice"):
        parse_query([("limit", "1"), ("limit", "2")], Level.STUDY)
    with pytest.raises(BadRequest, match="'PatientID'.*given twice"):
        parse_query([("PatientID", "a"), ("PatientID", "b")], Level.STUDY)
    with pytest.raises(BadRequest, match="'ModalitiesInStudy'.*'C\\*' is not a code"):
        parse_query([("ModalitiesInStudy", "C*")], Level.STUDY)
    with pytest.raises(BadRequest, match="'PatientName'.*several values"):
        parse_query([("PatientName", "A\\B")], Level.STUDY)
    with pytest.raises(BadRequest, match="unknown includefield 'Bogus'"):
        parse_query([("includefield", "Bogus")], Level.STUDY)


def test_attributes_segmap_does_not_match_are_ignored_with_a_warning() -> None:
    query = parse_query(
        [("InstitutionName", "X"), ("RequestAttributesSequence.ScheduledProcedureStepID", "1"),
         ("PatientID", "P1")],
        Level.SERIES,
    )  # fmt: skip
    assert [m.attribute.keyword for m in query.matches] == ["PatientID"]
    assert query.ignored == (
        "InstitutionName",
        "RequestAttributesSequence.ScheduledProcedureStepID",
    )
    warning = query.warning()
    assert warning is not None and warning.startswith("299 segmap ")
    assert "InstitutionName" in warning


def test_universal_matching_returns_the_attribute_without_a_condition() -> None:
    query = parse_query([("PatientName", ""), ("StudyDescription", "*"), ("AccessionNumber", "")],
                        Level.STUDY)  # fmt: skip
    assert query.matches == ()
    assert set(query.include) == {0x00100010, 0x00081030, 0x00080050}


def test_fuzzy_matching_widens_person_names_only() -> None:
    for params in ([("fuzzymatching", "true"), ("PatientName", "doe")],
                   [("PatientName", "doe"), ("fuzzymatching", "TRUE")]):  # fmt: skip
        query = parse_query([*params, ("PatientID", "P1")], Level.STUDY)
        got = {m.attribute.keyword: m.condition for m in query.matches}
        assert got["PatientName"] == Pattern("*doe*", True, True)
        assert got["PatientID"] == Pattern("P1", False)
        assert query.fuzzy


def test_include_fields_and_return_tags() -> None:
    query = parse_query(
        [("includefield", "StudyDescription,00180015"), ("includefield", "PatientAge"),
         ("SeriesDescription", "x*")],
        Level.SERIES,
    )  # fmt: skip
    assert query.include == (0x00081030, 0x00180015, 0x00101010)
    tags = query.return_tags(scope=Level.STUDY)
    assert tags[: len(returned(Level.SERIES, Level.STUDY))] == returned(Level.SERIES, Level.STUDY)
    assert {0x00081030, 0x00180015, 0x00101010, 0x0008103E} <= set(tags)
    everything = parse_query([("includefield", "all")], Level.SERIES)
    assert everything.include_all
    assert {0x00081030, 0x00180015} <= set(everything.return_tags())


def test_returned_attributes_per_scope() -> None:
    study = returned(Level.STUDY)
    assert study == RETURNED[Level.STUDY]
    assert 0x00201206 in study and 0x00201208 in study  # the counts
    series_in_study = returned(Level.SERIES, Level.STUDY)
    assert STUDY_UID in series_in_study and 0x00100010 not in series_in_study
    all_series = returned(Level.SERIES)
    assert 0x00100010 in all_series and 0x00201209 in all_series  # study attributes too
    instances_in_study = returned(Level.INSTANCE, Level.STUDY)
    assert SERIES_UID in instances_in_study and 0x00080060 in instances_in_study  # Modality
    assert 0x00100010 not in instances_in_study
    instances_in_series = returned(Level.INSTANCE, Level.SERIES)
    assert {STUDY_UID, SERIES_UID} <= set(instances_in_series)
    assert 0x00080060 not in instances_in_series
    assert all(a.level in Level for a in MATCHABLE.values())

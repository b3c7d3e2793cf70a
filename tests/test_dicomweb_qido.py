"""QIDO-RS through segmap's real server, driven by dicomweb-client, on SQLite and PostgreSQL.

Every level is searched with filters; the expected results, counts and attribute values
come from the files written and stored by the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from fastapi import Depends, Request, Response
from sqlalchemy import event
from sqlalchemy.engine.default import CACHE_HIT

from dicomweb_helpers import Stored, client_for, store_study
from imaging_data import multipart, write_study
from segmap.server.dicomweb.auth import dicomweb_principal
from segmap.server.dicomweb.levels import Level
from segmap.server.dicomweb.query import parse_query
from segmap.server.dicomweb.responses import DirectRoute
from segmap.server.dicomweb.search import KEPT_STATEMENTS, Scope, search
from segmap.server.web.path_check import refuse_unnameable_references
from server_fixtures import ThreadedServer, World

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture()
def stored(world: World, tmp_path: Path) -> Stored:
    found = store_study(world, tmp_path / "a")
    other = write_study(tmp_path / "b", seed=7, patient_id="OTHER", series_numbers=(4,))
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(other.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    return found


def _ds(results: list[dict[str, object]]) -> list[pydicom.Dataset]:
    return [pydicom.Dataset.from_json(r) for r in results]


def test_studies_match_and_count(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    client = client_for(threaded_server.url, world.h("collab"))
    first = pydicom.dcmread(stored.study.files[0], stop_before_pixels=True)
    everything = _ds(client.search_for_studies())
    assert sorted(d.PatientID for d in everything) == ["DW1", "OTHER"]
    [study] = [d for d in everything if d.PatientID == "DW1"]
    assert study.StudyInstanceUID == stored.study_uid
    assert study.NumberOfStudyRelatedSeries == 4  # two CT series, the SEG's and the RTSTRUCT's
    assert study.NumberOfStudyRelatedInstances == len(stored.study.files) + 2
    assert list(study.ModalitiesInStudy) == ["CT", "RTSTRUCT", "SEG"]
    assert study.PatientName == first.PatientName and study.StudyDate == first.StudyDate
    assert study.RetrieveURL.endswith(f"/dicomweb/projects/P/studies/{stored.study_uid}")

    name = str(first.PatientName)
    date = first.StudyDate
    one, both = ["DW1"], ["DW1", "OTHER"]
    cases: list[tuple[dict[str, object], list[str]]] = [
        ({"PatientID": "DW1"}, one),
        ({"00100020": "DW1"}, one),
        ({"PatientName": name[:-1].lower() + "?"}, one),  # Synthetic^DW?, any case
        ({"PatientName": "SYNTH*"}, both),
        ({"PatientName": "Nobody*"}, []),
        ({"StudyDate": f"{int(date) - 1}-{int(date) + 1}"}, both),  # the same date
        ({"StudyDate": f"-{int(date) - 1}"}, []),
        ({"StudyDate": "19000101-19000102"}, []),
        ({"ModalitiesInStudy": "SEG"}, one),
        ({"ModalitiesInStudy": "MR,RTSTRUCT"}, one),
        ({"ModalitiesInStudy": "CT"}, both),
        ({"ModalitiesInStudy": "MR"}, []),
        ({"StudyInstanceUID": f"1.2.3,{stored.study_uid}"}, one),
        ({"AccessionNumber": "A*"}, []),  # both have none
    ]
    for filters, expected in cases:
        found = _ds(client.search_for_studies(search_filters=filters))
        assert [d.PatientID for d in found] == expected, filters
    fuzzy = client.search_for_studies(fuzzymatching=True, search_filters={"PatientName": "dw"})
    assert [d.PatientID for d in _ds(fuzzy)] == one

    page1 = _ds(client.search_for_studies(limit=1))
    page2 = _ds(client.search_for_studies(limit=1, offset=1))
    assert len(page1) == len(page2) == 1
    assert {page1[0].PatientID, page2[0].PatientID} == {"DW1", "OTHER"}


def test_series_and_instances_match_and_count(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    client = client_for(threaded_server.url, world.h("member"))
    study = stored.study_uid
    seg = pydicom.dcmread(stored.seg, stop_before_pixels=True)
    series_frame_of_reference = pydicom.dcmread(stored.study.files[0]).FrameOfReferenceUID
    in_study = _ds(client.search_for_series(study))
    assert sorted(d.Modality for d in in_study) == ["CT", "CT", "RTSTRUCT", "SEG"]
    assert all("PatientID" not in d for d in in_study)  # scoped: no study attributes
    everywhere = _ds(client.search_for_series())
    assert len(everywhere) == 5 and all("PatientID" in d for d in everywhere)
    [seg_series] = _ds(client.search_for_series(study, search_filters={"Modality": "SEG"}))
    assert seg_series.SeriesInstanceUID == seg.SeriesInstanceUID
    assert seg_series.NumberOfSeriesRelatedInstances == 1
    [ct3] = _ds(client.search_for_series(search_filters={"Modality": "CT", "SeriesNumber": 3}))
    assert ct3.SeriesInstanceUID == stored.study.series[1].series_instance_uid
    assert ct3.NumberOfSeriesRelatedInstances == 4 and ct3.PatientID == "DW1"
    plain = _ds(client.search_for_series(study, search_filters={"SeriesNumber": 2}))
    assert "FrameOfReferenceUID" not in plain[0]
    [wider] = _ds(client.search_for_series(study, fields=["FrameOfReferenceUID"],
                                           search_filters={"SeriesNumber": 2}))  # fmt: skip
    assert wider.FrameOfReferenceUID == series_frame_of_reference
    described = _ds(
        client.search_for_series(search_filters={"SeriesDescription": "Synthetic CT ?"})
    )
    assert len(described) == 3  # series 2 and 3, and the other study's series 4

    series2 = stored.study.series[0]
    instances = _ds(client.search_for_instances(study, series2.series_instance_uid))
    truth = {}
    for path in series2.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        truth[ds.SOPInstanceUID] = int(ds.InstanceNumber)
    assert [d.SOPInstanceUID for d in instances] == sorted(truth, key=truth.__getitem__)
    assert all(d.Rows == 20 and d.Columns == 24 for d in instances)
    assert len(_ds(client.search_for_instances(study))) == len(stored.study.files) + 2
    [found] = _ds(client.search_for_instances(search_filters={"SOPClassUID": SEG_STORAGE}))
    assert found.SOPInstanceUID == seg.SOPInstanceUID and found.StudyInstanceUID == study
    assert found.NumberOfFrames == seg.NumberOfFrames
    some = _ds(client.search_for_instances(study, fields=["all"], limit=3, offset=2))
    assert len(some) == 3 and all("ImageType" in d or "SOPClassUID" in d for d in some)
    numbered = _ds(
        client.search_for_instances(search_filters={"InstanceNumber": 1, "Modality": "CT"})
    )
    assert len(numbered) == 3  # one per CT series, the other study's too


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/studies", {"PatientNam": "x"}, "PatientNam"),
        ("/studies", {"Modality": "CT"}, "ModalitiesInStudy"),
        ("/studies", {"StudyDate": "2024-13-01"}, "StudyDate"),
        ("/series", {"limit": "-1"}, "limit"),
        ("/instances", {"SOPInstanceUID": "1.2.x"}, "SOPInstanceUID"),
        ("/studies", {"includefield": "NoSuchKeyword"}, "NoSuchKeyword"),
    ],
)
def test_bad_query_keys_are_400_naming_the_key(
    world: World, threaded_server: ThreadedServer, path: str, params: dict[str, str], named: str
) -> None:
    r = requests.get(
        f"{threaded_server.url}/dicomweb/projects/P{path}",
        params=params,
        headers=world.h("member"),
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert named in r.json()["detail"]


def test_unsupported_keys_are_ignored_with_a_warning(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    r = requests.get(
        f"{threaded_server.url}/dicomweb/projects/P/studies",
        params={"InstitutionName": "x", "PatientID": "DW1"},
        headers=world.h("member"),
        timeout=30,
    )
    assert r.status_code == 200 and len(r.json()) == 1
    assert r.headers["content-type"] == "application/dicom+json"
    assert "InstitutionName" in r.headers["warning"]


def test_a_kept_search_statement_answers_each_query_with_its_own_values(
    world: World, stored: Stored
) -> None:
    """Searches on one connection keep the statement of each query shape and run it
    again for the next query of that shape: each answer still follows its own values."""
    root = "http://testserver/dicomweb/projects/P"
    date = pydicom.dcmread(stored.study.files[0], stop_before_pixels=True).StudyDate
    with world.api.app.state.database.engine.connect() as connection:
        # The start-up warm-up may have kept a few shapes on this pooled connection.
        before = set(connection.info.get(KEPT_STATEMENTS, ()))

        def patients(params: list[tuple[str, str]]) -> list[str]:
            query = parse_query(params, Level.STUDY)
            results = _ds(search(connection, "P", query, Scope(), root))
            return sorted(d.PatientID for d in results)

        assert patients([("PatientID", "DW1")]) == ["DW1"]
        assert patients([("PatientID", "OTHER")]) == ["OTHER"]
        assert patients([("PatientID", "NOBODY")]) == []
        # A case-insensitive wildcard, a multi-valued column behind an EXISTS, a range.
        assert patients([("PatientName", "synth*"), ("ModalitiesInStudy", "SEG")]) == ["DW1"]
        assert patients([("PatientName", "synth*"), ("ModalitiesInStudy", "CT")]) == [
            "DW1",
            "OTHER",
        ]
        assert patients([("PatientName", "nobody*"), ("ModalitiesInStudy", "CT")]) == []
        assert patients([("StudyDate", f"{date}-{date}")]) == ["DW1", "OTHER"]
        assert patients([("StudyDate", "19000101-19000102")]) == []
        # Case-sensitive wildcards (GLOB on SQLite, LIKE elsewhere) and pages.
        assert patients([("PatientID", "D*")]) == ["DW1"]
        assert patients([("PatientID", "d*")]) == []
        assert patients([("PatientID", "O?HER")]) == ["OTHER"]
        first = patients([("PatientID", "*"), ("limit", "1")])
        second = patients([("PatientID", "*"), ("limit", "1"), ("offset", "1")])
        assert sorted(first + second) == ["DW1", "OTHER"]
        # Six shapes were asked (``*`` alone matches everything: no condition; a page
        # with and without an offset are two): each statement was built once, so most
        # answers above came from a statement kept for another query's values.
        assert len(set(connection.info[KEPT_STATEMENTS]) - before) == 6


def test_the_first_search_after_start_up_runs_compiled_statements(world: World) -> None:
    """Start-up compiled the caller check and the usual searches, so the first study
    QIDO compiles nothing (compiling them took ~15 ms of the first request)."""
    engine = world.api.app.state.database.engine
    cache: dict[str, object] = {}

    def record(_conn: Any, _cursor: Any, statement: str, *rest: Any) -> None:
        if statement.startswith("SELECT"):  # not SQLite's BEGIN, which is plain text
            cache[statement] = rest[1].cache_hit  # rest: parameters, context, many

    event.listen(engine, "after_cursor_execute", record)
    try:
        r = world.client.get(
            "/dicomweb/projects/P/studies",
            params={"StudyInstanceUID": "1.2.3"},
            headers=world.h("member"),
        )
    finally:
        event.remove(engine, "after_cursor_execute", record)
    assert r.status_code == 200 and r.json() == []
    assert len(cache) == 2  # the caller with their role; the search (no rows: no counts)
    assert set(cache.values()) == {CACHE_HIT}, cache


def test_the_app_gives_every_route_only_the_path_check(world: World) -> None:
    """DirectRoute (the QIDO routes) calls the path check itself instead of solving the
    route's dependencies: any other dependency given to every route would be skipped."""
    dependencies = world.api.app.router.dependencies
    assert [d.dependency for d in dependencies] == [refuse_unnameable_references]


def test_a_search_route_still_refuses_paths_that_name_nothing_in_json(world: World) -> None:
    for path, status in (
        ("/dicomweb/projects/%EF%BC%91/studies", 404),  # a full-width digit
        ("/dicomweb/projects/P/studies/1.2%0A/series", 422),  # a line break in a UID
        ("/dicomweb/projects/P/studies/%FF/instances", 422),  # not UTF-8
    ):
        r = world.client.get(path, headers=world.h("owner"))
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["detail"]


def test_a_direct_route_refuses_an_endpoint_it_would_call_wrongly() -> None:
    async def with_query(request: Request, project: str, limit: int = 10) -> Response:
        raise AssertionError("never called")

    async def with_number(request: Request, project: int) -> Response:
        raise AssertionError("never called")

    async def with_dependency(
        request: Request, project: str, principal: Any = Depends(dicomweb_principal)
    ) -> Response:
        raise AssertionError("never called")

    async def without_request(project: str) -> Response:
        raise AssertionError("never called")

    for endpoint, named in (
        (with_query, "limit"),
        (with_number, "project"),
        (with_dependency, "principal"),
        (without_request, "no request parameter"),
    ):
        with pytest.raises(TypeError, match=named):
            DirectRoute("/x/{project}", endpoint)

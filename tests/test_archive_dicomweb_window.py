"""The ``dicomweb`` kind between full sweeps: QIDO with a SeriesDate window, against the
real Orthanc DICOMweb plugin.

The follower sweeps (a search without a date) once at start and then, with a sweep
interval far longer than the test, only searches ``SeriesDate`` from the newest date seen
less the one-day overlap. What the follower sends and what Orthanc answers are recorded
on the follower's own httpx client (a response hook on the real client, nothing stands
in for Orthanc), so the test sees that the windowed searches carried the date range, and
what each one found:

- a SEG stored after the sweep, dated after the cursor, is found by a windowed search;
- an RTSTRUCT dated the day before the cursor (inside the overlap) is found too, then
  seen again by every later search and imported once;
- a series dated 2099 is imported but does not move the cursor;
- one dated before the window is not found by windowed searches (Orthanc applied the
  range), and the full sweep of a restarted follower imports it.

SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from archive_helpers import (
    FAST,
    archive_state,
    collections,
    connect,
    fast_app,
    orthanc_server,
    wait_for,
)
from imaging_data import write_seg
from jobs_helpers import small_case
from segmap.server.archive import follower
from segmap.server.archive.clients import TIMEOUT_S, ArchiveClient, client_for
from segmap.server.settings import Settings
from segmap.testing.orthanc import OrthancServer
from server_fixtures import World
from test_archive_orthanc import SEG_LABELS

# One sweep at start, then only windowed searches for the rest of the test.
WINDOWED = replace(FAST, sweep_s=3600.0, overlap_days=1)


@dataclass(frozen=True)
class Search:
    """One QIDO series search the follower sent, and what Orthanc answered."""

    modality: str
    series_date: str | None  # the SeriesDate key sent; None: a full search
    includefield: list[str]
    found: list[str]  # SeriesInstanceUIDs answered
    offset: int = 0  # a search goes on, page by page, until a page brings nothing new


class QidoLog:
    """The searches of every DICOMweb client the followers make (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._searches: list[Search] = []

    def searches(self) -> list[Search]:
        """A copy of what was recorded so far, in order."""
        with self._lock:
            return list(self._searches)

    def record(self, response: httpx.Response) -> None:
        """httpx response hook: keep QIDO ``GET .../series?Modality=...`` searches."""
        request = response.request
        params = request.url.params
        if request.method != "GET" or not request.url.path.endswith("/series"):
            return
        if "Modality" not in params:
            return  # a lookup by SeriesInstanceUID, not a search
        response.read()
        rows = response.json() if response.status_code == 200 else []
        found = [str(r["0020000E"]["Value"][0]) for r in rows]
        search = Search(
            params["Modality"],
            params.get("SeriesDate"),
            params.get_list("includefield"),
            found,
            int(params.get("offset", "0")),
        )
        with self._lock:
            self._searches.append(search)

    def client_for(
        self, on_request: Callable[[httpx.Request], None] | None = None
    ) -> Callable[..., ArchiveClient]:
        """``clients.client_for`` whose DICOMweb clients record their searches here (and
        pass each request to ``on_request`` first, if given)."""

        def make(
            kind: str, url: str, username: str, password: str, timeout_s: float = TIMEOUT_S
        ) -> ArchiveClient:
            client = client_for(kind, url, username, password, timeout_s)
            hooks = client.http.client.event_hooks
            hooks["response"] = [*hooks.get("response", []), self.record]
            if on_request is not None:
                hooks["request"] = [*hooks.get("request", []), on_request]
            client.http.client.event_hooks = hooks
            return client

        return make


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    yield from fast_app(settings, WINDOWED)


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path)


@pytest.fixture()
def qido(monkeypatch: pytest.MonkeyPatch) -> QidoLog:
    log = QidoLog()
    monkeypatch.setattr(follower, "client_for", log.client_for())
    return log


def dated(source: Path, target: Path, series_date: str) -> tuple[Path, str]:
    """A copy of an annotation file as a new series (new UIDs) dated ``series_date``."""
    ds = pydicom.dcmread(source)
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDate = series_date
    ds.save_as(target)
    return target, str(ds.SeriesInstanceUID)


def first_finding(searches: list[Search], series_uid: str) -> Search:
    """The first recorded search whose answer held ``series_uid``."""
    return next(s for s in searches if series_uid in s.found)


def imported_series(world: World) -> list[str]:
    """SeriesInstanceUIDs of the project's ``imported`` events (one per import)."""
    return [
        e["series_instance_uid"] for e in archive_state(world)["recent"] if e["event"] == "imported"
    ]


def test_between_sweeps_the_series_date_window_finds_new_annotations(
    world: World, orthanc: OrthancServer, qido: QidoLog, tmp_path: Path
) -> None:
    case = small_case(tmp_path / "case", 61)
    first, first_uid = dated(case.rtstruct_path, tmp_path / "a.dcm", "20240510")
    orthanc.store_files([*case.series.files, first])
    body = {"kind": "dicomweb", "url": orthanc.dicomweb_url}
    connect(world, body)

    # The sweep at start imports it and sets the cursor from its SeriesDate.
    wait_for(
        "the sweep's import",
        lambda: (s := archive_state(world))["imported"] == 1 and s["cursor"] == "20240510",
    )
    sweep = [s for s in qido.searches() if s.series_date is None]
    # RTSTRUCT: the one series, then an empty page ends the search; SEG: an empty page.
    assert sorted((s.modality, s.offset, len(s.found)) for s in sweep) == [
        ("RTSTRUCT", 0, 1), ("RTSTRUCT", 1, 0), ("SEG", 0, 0)
    ]  # fmt: skip
    assert all("00080021" in s.includefield for s in sweep), sweep
    assert first_uid in next(s.found for s in sweep if s.modality == "RTSTRUCT")
    # Then windowed searches only: from the cursor less the overlap day.
    wait_for(
        "windowed searches of both modalities",
        lambda: (
            {s.modality for s in qido.searches() if s.series_date == "20240509-"}
            == {"SEG", "RTSTRUCT"}
        ),
    )

    # A SEG dated after the cursor: found by a windowed search, the cursor moves to it.
    seg, seg_uid = dated(
        write_seg(tmp_path / "seg-raw.dcm", case.series, SEG_LABELS), tmp_path / "c.dcm", "20240512"
    )
    orthanc.store_files([seg])
    wait_for(
        "the SEG",
        lambda: (s := archive_state(world))["imported"] == 2 and s["cursor"] == "20240512",
    )
    found = first_finding(qido.searches(), seg_uid)
    assert (found.modality, found.series_date) == ("SEG", "20240509-")

    # Dated 2099 (a typo): imported, but the cursor stays, so the window stays open.
    future, future_uid = dated(case.rtstruct_path, tmp_path / "f.dcm", "20990101")
    orthanc.store_files([future])
    wait_for("the 2099 series", lambda: archive_state(world)["imported"] == 3)
    assert first_finding(qido.searches(), future_uid).series_date == "20240511-"
    assert archive_state(world)["cursor"] == "20240512"

    # Dated the day before the cursor, stored late: inside the overlap, found and imported.
    late, late_uid = dated(case.rtstruct_path, tmp_path / "d.dcm", "20240511")
    orthanc.store_files([late])
    wait_for("the late series", lambda: archive_state(world)["imported"] == 4)
    assert first_finding(qido.searches(), late_uid).series_date == "20240511-"

    # Dated before the window: later windowed searches (the second one started after it was
    # in Orthanc) do not find it, and still find the late one, which is not imported again.
    old, old_uid = dated(case.rtstruct_path, tmp_path / "e.dcm", "20240505")
    orthanc.store_files([old])
    mark = len(qido.searches())
    after = wait_for(
        "two more RTSTRUCT searches",
        lambda: (
            (
                found := [
                    s for s in qido.searches()[mark:] if s.modality == "RTSTRUCT" and s.offset == 0
                ]
            )[1:]
            and found
        ),
    )
    for search in after:
        assert search.series_date == "20240511-"
        assert late_uid in search.found and old_uid not in search.found
    assert archive_state(world)["imported"] == 4
    assert [s for s in qido.searches() if s.series_date is None] == sweep  # no other sweep
    assert sorted(imported_series(world)) == sorted([first_uid, seg_uid, future_uid, late_uid])

    # A follower started again (settings saved) sweeps first: that finds the old one.
    connect(world, body)
    wait_for("the old series", lambda: archive_state(world)["imported"] == 5)
    assert first_finding(qido.searches(), old_uid).series_date is None
    state = archive_state(world)
    assert state["cursor"] == "20240512" and state["last_error"] is None
    uids = imported_series(world)
    assert sorted(uids) == sorted([first_uid, seg_uid, future_uid, late_uid, old_uid])
    assert len(collections(world)) == 5


def two_per_search(request: httpx.Request) -> None:
    """httpx request hook: Orthanc is asked for at most two series per search, whatever
    the follower asked for, so it answers as a server capping its answers does."""
    if request.url.path.endswith("/series") and "limit" in request.url.params:
        request.url = request.url.copy_set_param("limit", "2")


def test_a_server_answering_fewer_series_than_asked_is_searched_to_the_end(
    world: World, orthanc: OrthancServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = QidoLog()
    monkeypatch.setattr(follower, "client_for", log.client_for(two_per_search))
    case = small_case(tmp_path / "case", 61)
    copies = [dated(case.rtstruct_path, tmp_path / f"r{n}.dcm", f"2024051{n}") for n in range(5)]
    orthanc.store_files([*case.series.files, *(path for path, _ in copies)])
    connect(world, {"kind": "dicomweb", "url": orthanc.dicomweb_url})

    # The sweep at start finds all five though each answer held two: pages of 2, 2, 1,
    # then an empty one ends the search.
    wait_for("the five imports", lambda: archive_state(world)["imported"] == 5)
    assert sorted(imported_series(world)) == sorted(uid for _, uid in copies)
    sweep = [s for s in log.searches() if s.series_date is None and s.modality == "RTSTRUCT"]
    assert [(s.offset, len(s.found)) for s in sweep[:4]] == [(0, 2), (2, 2), (4, 1), (5, 0)]

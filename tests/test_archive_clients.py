"""The archive clients' file retrieval against a real Orthanc, and the multipart splitter.

Orthanc deflates what it sends whenever the client offers gzip (its default
``HttpCompressionEnabled``), which costs far more CPU than the bytes cost on a LAN: the
clients ask for files uncompressed. Orthanc's instances are fetched a few at a time and
WADO-RS answers are split as they arrive; either way every stored file must come back
byte for byte, and a fetch failing midway must leave nothing staged.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from archive_helpers import orthanc_server
from jobs_helpers import small_case
from segmap import testing as syn
from segmap.server.archive.clients import (
    FETCH_WORKERS,
    ArchiveAnswerError,
    DicomwebClient,
    OrthancClient,
)
from segmap.server.archive.importer import ImportTarget, _receive
from segmap.server.archive.wado_parts import iter_multipart, split_multipart
from segmap.server.db.accounts import User
from segmap.server.dicomweb.multipart import OutgoingPart, multipart_body
from segmap.server.web.auth import principal_of
from segmap.testing.orthanc import OrthancServer
from server_fixtures import World


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path)


@pytest.fixture()
def stored(tmp_path: Path, orthanc: OrthancServer) -> tuple[syn.SyntheticCase, list[str]]:
    """A small CT (more instances than the fetchers, so they overlap) stored in Orthanc."""
    case = small_case(tmp_path / "case", 3, size=(48, 40, 3 * FETCH_WORKERS))
    return case, orthanc.store_files(list(case.series.files))


def _digests(files: list[bytes]) -> list[str]:
    return sorted(hashlib.sha256(f).hexdigest() for f in files)


def _uids(case: syn.SyntheticCase) -> tuple[str, str]:
    ds = pydicom.dcmread(case.series.files[0], stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def test_orthanc_files_come_whole_and_uncompressed(
    orthanc: OrthancServer, stored: tuple[syn.SyntheticCase, list[str]]
) -> None:
    case, ids = stored
    # Orthanc compresses for a client offering gzip (httpx's default): what is avoided.
    plain = httpx.get(f"{orthanc.url}/instances/{ids[0]}/file")
    assert plain.headers.get("content-encoding") == "gzip"

    encodings: list[str] = []

    def seen(answer: httpx.Response) -> None:
        if answer.request.url.path.endswith("/file"):
            encodings.append(answer.headers.get("content-encoding", "identity"))

    client = OrthancClient(orthanc.url)
    client.http.client.event_hooks["response"] = [seen]
    try:
        files = list(client.series_files(*_uids(case)))
    finally:
        client.close()
    assert _digests(files) == _digests([p.read_bytes() for p in case.series.files])
    assert encodings == ["identity"] * len(case.series.files)


def test_orthanc_files_come_in_the_order_asked(
    orthanc: OrthancServer, stored: tuple[syn.SyntheticCase, list[str]]
) -> None:
    _case, ids = stored
    wanted = list(reversed(ids))
    client = OrthancClient(orthanc.url)
    try:
        files = list(client.instance_files(wanted))
    finally:
        client.close()
    sops = [
        str(pydicom.dcmread(io.BytesIO(f), stop_before_pixels=True).SOPInstanceUID) for f in files
    ]
    tags = [orthanc.get_json(f"/instances/{i}/simplified-tags") for i in wanted]
    assert sops == [t["SOPInstanceUID"] for t in tags]


def test_a_file_missing_midway_fails_the_fetch_and_leaves_nothing_staged(
    world: World, orthanc: OrthancServer, stored: tuple[syn.SyntheticCase, list[str]]
) -> None:
    _case, ids = stored
    app: Any = world.api.client.app
    with app.state.database.session() as db:
        owner = db.query(User).filter_by(username="owner").one()
        principal = principal_of(owner, "archive")
    target = ImportTarget(
        app.state.database,
        app.state.storage,
        app.state.imaging_events,
        "P",
        principal,
        64 * 1024 * 1024,
    )
    gone = "00000000-00000000-00000000-00000000-00000000"
    asked = [*ids[:5], gone, *ids[5:]]
    client = OrthancClient(orthanc.url)
    try:
        with pytest.raises(ArchiveAnswerError, match=f"instance {gone} could not be read"):
            _receive(target, client.instance_files(asked), 1)
    finally:
        client.close()
    assert list(Path(app.state.storage.staging).iterdir()) == []


def test_wado_rs_series_is_split_as_it_arrives_into_the_stored_files(
    orthanc: OrthancServer, stored: tuple[syn.SyntheticCase, list[str]]
) -> None:
    case, _ids = stored
    client = DicomwebClient(orthanc.dicomweb_url)
    try:
        files = list(client.series_files(*_uids(case)))
    finally:
        client.close()
    assert _digests(files) == _digests([p.read_bytes() for p in case.series.files])


BOUNDARY = "b0undary"
BODIES = [
    b"first",
    b"",  # an empty part
    b"holds --b0undary and \r\n--b0undar but no delimiter",
    bytes(range(256)) * 40,
]


def _body() -> bytes:
    parts = [OutgoingPart("application/dicom", b) for b in BODIES]
    # A preamble before the first delimiter is allowed and ignored (RFC 2046).
    return b"a preamble\r\n" + b"".join(multipart_body(parts, BOUNDARY))


KIND = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'


@pytest.mark.parametrize("size", [1, 2, 7, 13, 4096, 10**7])
def test_multipart_parts_are_found_however_the_body_is_cut(size: int) -> None:
    body = _body()
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    assert list(iter_multipart(KIND, chunks)) == BODIES


def test_a_body_without_its_closing_delimiter_gives_the_parts_it_holds() -> None:
    body = _body()
    cut = body[: body.rindex(f"--{BOUNDARY}--".encode())]
    assert list(split_multipart(KIND, cut)) == BODIES


def test_an_answer_without_a_boundary_is_refused_saying_so() -> None:
    with pytest.raises(ArchiveAnswerError, match="not multipart/related with a boundary"):
        list(split_multipart("application/dicom", _body()))

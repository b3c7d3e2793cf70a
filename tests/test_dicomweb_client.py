"""The building blocks behind real HTTP, driven by dicomweb-client.

A small FastAPI app written here (not segmap's routes, which come later) wires the
blocks the way the routes will: STOW through the multipart reader and the frame index,
QIDO through the query parser, the SQL matcher and the QIDO result builder, WADO through
Accept negotiation, the frame reader, the multipart writer and the metadata builder.
dicomweb-client, over uvicorn on loopback, checks each answer; the truths are the files
written and pydicom's decoding of them.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import uvicorn
from dicomweb_client.api import DICOMwebClient
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydicom.uid import RLELossless
from requests import HTTPError
from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, select
from sqlalchemy.pool import StaticPool

from segmap.imaging.frame_index import FrameIndex, index_frames
from segmap.imaging.frame_read import read_frame, to_uncompressed
from segmap.server.dicomweb.accept import Resource, negotiate
from segmap.server.dicomweb.dicomjson import instance_metadata, level_record, qido_result
from segmap.server.dicomweb.errors import DicomwebError
from segmap.server.dicomweb.levels import NUMBER_OF_STUDY_RELATED_INSTANCES, Level
from segmap.server.dicomweb.matching import conditions
from segmap.server.dicomweb.multipart import OutgoingPart, multipart_body, new_boundary, read_parts
from segmap.server.dicomweb.query import parse_query
from segmap.testing import axial_grid, write_ct_series


@dataclass
class Archive:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    indexes: dict[str, FrameIndex] = field(default_factory=dict)
    accepts: list[str] = field(default_factory=list)


def _harness(archive: Archive) -> FastAPI:
    metadata = MetaData()
    studies = Table("studies", metadata, Column("uid", String, primary_key=True),
                    Column("patient_id", String), Column("record", Text))  # fmt: skip
    engine = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )  # one in-memory database for every thread
    metadata.create_all(engine)
    app = FastAPI()

    @app.exception_handler(DicomwebError)
    async def refused(_request: Request, exc: DicomwebError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.post("/studies")
    async def stow(request: Request) -> JSONResponse:
        refs = []
        async for part in read_parts(request.stream(), request.headers.get("content-type")):
            with part:
                ds = pydicom.dcmread(part.file)
                path = archive.folder / f"{ds.SOPInstanceUID}.dcm"
                part.file.seek(0)
                with path.open("wb") as out:
                    shutil.copyfileobj(part.file, out)
            archive.files[ds.SOPInstanceUID] = path
            archive.indexes[ds.SOPInstanceUID] = index_frames(path)
            with engine.begin() as conn:
                known = select(studies.c.uid).where(studies.c.uid == ds.StudyInstanceUID)
                if conn.execute(known).first() is None:
                    record = level_record(ds, Level.STUDY)
                    conn.execute(studies.insert().values(uid=ds.StudyInstanceUID,
                                 patient_id=ds.PatientID, record=json.dumps(record)))  # fmt: skip
            refs.append({"00081150": {"vr": "UI", "Value": [ds.SOPClassUID]},
                         "00081155": {"vr": "UI", "Value": [ds.SOPInstanceUID]}})  # fmt: skip
        return JSONResponse({"00081199": {"vr": "SQ", "Value": refs}},
                            media_type="application/dicom+json")  # fmt: skip

    @app.get("/studies")
    def search(request: Request) -> JSONResponse:
        query = parse_query(request.query_params.multi_items(), Level.STUDY)
        where = conditions(query, {"StudyInstanceUID": studies.c.uid,
                                   "PatientID": studies.c.patient_id})  # fmt: skip
        with engine.connect() as conn:
            rows = conn.execute(select(studies.c.record).where(*where)).all()
        results = [
            qido_result([json.loads(r[0])], query.return_tags(),
                        counts={NUMBER_OF_STUDY_RELATED_INSTANCES: len(archive.files)})
            for r in rows
        ]  # fmt: skip
        return JSONResponse(results, media_type="application/dicom+json")

    base = "/studies/{study}/series/{series}/instances/{sop}"

    @app.get(base + "/frames/{numbers}")
    def frames(request: Request, sop: str, numbers: str) -> StreamingResponse:
        archive.accepts.append(request.headers.get("accept", ""))
        index = archive.indexes[sop]
        choice = negotiate(request.headers.get("accept"), Resource.FRAMES,
                           stored_syntax=index.transfer_syntax_uid)  # fmt: skip
        boundary = new_boundary()

        def parts() -> Iterator[OutgoingPart]:
            with archive.files[sop].open("rb") as fp:
                for n in (int(x) for x in numbers.split(",")):
                    frame = read_frame(fp, index, n)
                    body = to_uncompressed(index, frame) if choice.transcode else frame
                    yield OutgoingPart(choice.part_content_type, body)

        return StreamingResponse(multipart_body(parts(), boundary),
                                 media_type=choice.content_type(boundary))  # fmt: skip

    @app.get(base)
    def instance(request: Request, sop: str) -> StreamingResponse:
        choice = negotiate(request.headers.get("accept"), Resource.INSTANCES,
                           stored_syntax=archive.indexes[sop].transfer_syntax_uid,
                           can_transcode=False)  # fmt: skip
        boundary = new_boundary()
        part = OutgoingPart(choice.part_content_type, archive.files[sop].read_bytes())
        return StreamingResponse(multipart_body([part], boundary),
                                 media_type=choice.content_type(boundary))  # fmt: skip

    @app.get(base + "/metadata")
    def meta(request: Request, sop: str) -> Response:
        negotiate(request.headers.get("accept"), Resource.METADATA)
        ds = pydicom.dcmread(archive.files[sop], defer_size=1024)
        body = [instance_metadata(ds, str(request.url).removesuffix("/metadata"))]
        return JSONResponse(body, media_type="application/dicom+json")

    return app


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[DICOMwebClient, Archive]]:
    archive = Archive(tmp_path / "archive")
    archive.folder.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_harness(archive), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # wait for the condition, not a fixed time
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield DICOMwebClient(url=f"http://127.0.0.1:{port}"), archive
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _series(tmp_path: Path, syntax: str) -> list[pydicom.Dataset]:
    grid = axial_grid((64, 48, 3), (0.8, 0.8, 2.5))
    volume = np.random.default_rng(11).integers(-1000, 1500, grid.array_shape).astype(float)
    written = write_ct_series(tmp_path / syntax, grid, volume, shuffle=False,
                              transfer_syntax=syntax)  # fmt: skip
    return [pydicom.dcmread(f) for f in written.files]


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, RLELossless])
def test_store_search_and_retrieve(served: tuple[DICOMwebClient, Archive], tmp_path: Path,
                                   syntax: str) -> None:  # fmt: skip
    client, archive = served
    datasets = _series(tmp_path, syntax)
    answer = client.store_instances(datasets)
    assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [
        d.SOPInstanceUID for d in datasets
    ]
    first = datasets[0]
    study, series, sop = first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID

    found = client.search_for_studies(search_filters={"PatientID": first.PatientID})
    assert len(found) == 1
    result = pydicom.Dataset.from_json(found[0])
    assert result.StudyInstanceUID == study and result.NumberOfStudyRelatedInstances == 3
    assert client.search_for_studies(search_filters={"StudyInstanceUID": "1.2.3"}) == []

    truth = first.pixel_array.astype("<u2").tobytes()
    as_stored = client.retrieve_instance_frames(
        study, series, sop, [1], media_types=(("application/octet-stream", "*"),)
    )
    stored_frame = next(iter(pydicom.encaps.generate_frames(first.PixelData, number_of_frames=1))) \
        if first.file_meta.TransferSyntaxUID.is_encapsulated else first.PixelData  # fmt: skip
    assert as_stored == [stored_frame]
    uncompressed = client.retrieve_instance_frames(
        study, series, sop, [1], media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),)
    )
    assert uncompressed == [truth]
    assert any("transfer-syntax=*" in a for a in archive.accepts)

    retrieved = client.retrieve_instance(study, series, sop)
    assert retrieved.SOPInstanceUID == sop
    assert retrieved.file_meta.TransferSyntaxUID == syntax  # the stored bytes, as stored
    assert np.array_equal(retrieved.pixel_array, first.pixel_array)

    meta = client.retrieve_instance_metadata(study, series, sop)
    assert meta["7FE00010"]["BulkDataURI"].endswith(f"/instances/{sop}/bulk/7FE00010")
    uris: list[str] = []
    back = pydicom.Dataset.from_json(meta, bulk_data_uri_handler=lambda u: uris.append(u) or b"")
    assert back.Rows == 48 and uris == [meta["7FE00010"]["BulkDataURI"]]


def test_errors_reach_the_client_as_4xx(served: tuple[DICOMwebClient, Archive],
                                        tmp_path: Path) -> None:  # fmt: skip
    client, _ = served
    first = _series(tmp_path, RLELossless)[0]
    client.store_instances([first])
    with pytest.raises(HTTPError) as refused:
        client.search_for_studies(search_filters={"PatientNam": "x"})
    assert refused.value.response.status_code == 400
    assert "PatientNam" in refused.value.response.json()["detail"]
    with pytest.raises(HTTPError) as not_acceptable:
        client.retrieve_instance_frames(
            first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID, [1],
            media_types=(("image/jls", "1.2.840.10008.1.2.4.80"),),
        )  # fmt: skip
    assert not_acceptable.value.response.status_code == 406
    assert "RLE Lossless" in not_acceptable.value.response.json()["detail"]

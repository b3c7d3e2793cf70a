"""WADO-RS through segmap's real server, driven by dicomweb-client, on SQLite and PostgreSQL.

Bytes retrieved are compared with the files stored, metadata is read back by pydicom's
``Dataset.from_json``, frames are compared with pydicom's decoding of the stored files,
rendered frames with a windowing computed here from PS3.3's formula.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.pixels import pack_bits

from dicomweb_helpers import Stored, client_for, raw_instances, store_study
from server_fixtures import ThreadedServer, World


@pytest.fixture()
def stored(world: World, tmp_path: Path) -> Stored:
    return store_study(world, tmp_path / "a")


def _uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def _collect(uris: list[str]) -> Callable[[str], bytes]:
    def handler(uri: str) -> bytes:
        uris.append(uri)
        return b""

    return handler


def test_instances_series_and_study_come_back_byte_for_byte(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    client = client_for(threaded_server.url, world.h("collab"))
    root = f"{threaded_server.url}/dicomweb/projects/P"
    for sop, path in stored.files.items():
        study, series, _ = _uids(path)
        url = f"{root}/studies/{study}/series/{series}/instances/{sop}"
        assert raw_instances(client, url) == [path.read_bytes()], path.name
    series2 = stored.study.series[0]
    parts = raw_instances(
        client, f"{root}/studies/{stored.study_uid}/series/{series2.series_instance_uid}"
    )
    assert sorted(parts) == sorted(p.read_bytes() for p in series2.files)
    everything = raw_instances(client, f"{root}/studies/{stored.study_uid}")
    assert sorted(everything) == sorted(p.read_bytes() for p in stored.files.values())

    study, series, sop = _uids(stored.study.series[1].files[0])
    ds = client.retrieve_instance(study, series, sop)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless  # as stored
    truth = pydicom.dcmread(stored.study.series[1].files[0])
    assert np.array_equal(ds.pixel_array, truth.pixel_array)
    assert len(client.retrieve_series(study, series)) == 4


def test_metadata_reads_back_with_bulk_data_uris(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    client = client_for(threaded_server.url, world.h("member"))
    series = stored.study.series[0]
    truths = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in series.files}
    metadata = client.retrieve_series_metadata(stored.study_uid, series.series_instance_uid)
    assert len(metadata) == len(series.files)
    for item in metadata:
        uris: list[str] = []
        back = pydicom.Dataset.from_json(item, bulk_data_uri_handler=_collect(uris))
        truth = truths[back.SOPInstanceUID]
        assert back.ImagePositionPatient == truth.ImagePositionPatient
        assert back.PixelSpacing == truth.PixelSpacing and back.Rows == truth.Rows
        assert back.PatientName == truth.PatientName
        [uri] = uris
        assert uri.endswith(f"/instances/{back.SOPInstanceUID}/bulk/7FE00010")
        assert uri.startswith(threaded_server.url + "/dicomweb/projects/P/studies/")
        assert client.retrieve_bulkdata(uri) == [truth.PixelData]
    study_meta = client.retrieve_study_metadata(stored.study_uid)
    assert len(study_meta) == len(stored.files)
    seg = pydicom.dcmread(stored.seg)
    seg_meta = client.retrieve_instance_metadata(*_uids(stored.seg))
    back = pydicom.Dataset.from_json(seg_meta, bulk_data_uri_handler=lambda u: b"")
    labels = [s.SegmentLabel for s in back.SegmentSequence]
    assert labels == [s.SegmentLabel for s in seg.SegmentSequence] == ["Liver", "Spleen"]


def test_frames_equal_pydicoms_decoding(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    client = client_for(threaded_server.url, world.h("member"))
    for written in stored.study.series:
        for path in written.files[:2]:
            truth = pydicom.dcmread(path)
            study, series, sop = _uids(path)
            pixels = truth.pixel_array.astype("<u2").tobytes()
            assert client.retrieve_instance_frames(study, series, sop, [1]) == [pixels]
            as_stored = client.retrieve_instance_frames(
                study, series, sop, [1], media_types=(("application/octet-stream", "*"),)
            )
            if truth.file_meta.TransferSyntaxUID.is_encapsulated:
                assert as_stored == list(generate_frames(truth.PixelData, number_of_frames=1))
            else:
                assert as_stored == [truth.PixelData]
    seg = pydicom.dcmread(stored.seg)
    seg_frames = client.retrieve_instance_frames(*_uids(stored.seg), [1, 2, 3])
    assert seg_frames == [pack_bits(seg.pixel_array[k], pad=False) for k in range(3)]


@pytest.mark.parametrize(
    "accept",
    [
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
        "multipart/related; type=application/octet-stream; transfer-syntax=*",
        "multipart/related; type=application/octet-stream",
        "*/*",
    ],
)
def test_frame_accept_headers_quoted_or_not(
    world: World, threaded_server: ThreadedServer, stored: Stored, accept: str
) -> None:
    path = stored.study.series[0].files[0]
    study, series, sop = _uids(path)
    root = f"{threaded_server.url}/dicomweb/projects/P"
    url = f"{root}/studies/{study}/series/{series}/instances/{sop}/frames/1"
    r = requests.get(url, headers={**world.h("member"), "Accept": accept}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    assert pydicom.dcmread(path).PixelData in r.content


def test_rendered_frames_are_windowed_pngs(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    client = client_for(threaded_server.url, world.h("member"))
    path = stored.study.series[1].files[0]  # RLE: decoded before rendering
    truth = pydicom.dcmread(path)
    hu = truth.pixel_array * float(truth.RescaleSlope) + float(truth.RescaleIntercept)
    center, width = float(truth.WindowCenter), float(truth.WindowWidth)
    expected = np.clip(np.rint(((hu - (center - 0.5)) / (width - 1) + 0.5) * 255), 0, 255)
    png = client.retrieve_instance_rendered(*_uids(path), media_types=("image/png",))
    assert png.startswith(b"\x89PNG")
    image = np.asarray(Image.open(io.BytesIO(png)))
    assert image.shape == truth.pixel_array.shape
    assert np.array_equal(image, expected.astype(np.uint8))
    frame = client.retrieve_instance_frames_rendered(*_uids(path), [1], media_types=("image/png",))
    assert frame == png
    narrow = client.retrieve_instance_frames_rendered(
        *_uids(path), [1], media_types=("image/png",), params={"window": "0,100"}
    )
    manual = np.clip(np.rint(((hu + 0.5) / 99 + 0.5) * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(narrow))), manual)


def test_unknown_uids_and_frameless_instances_are_404_saying_which(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    root = f"{threaded_server.url}/dicomweb/projects/P"
    study, series, sop = _uids(stored.study.files[0])
    h = world.h("member")
    rt = _uids(stored.rtstruct)
    cases = [
        (f"{root}/studies/1.2.3", "1.2.3"),
        (f"{root}/studies/{study}/series/1.2.4/metadata", "1.2.4"),
        (f"{root}/studies/{study}/series/{series}/instances/1.2.5", "1.2.5"),
        (f"{root}/studies/{study}/series/{series}/instances/{sop}/frames/2", "frame 2"),
        (f"{root}/studies/{rt[0]}/series/{rt[1]}/instances/{rt[2]}/frames/1", "no Pixel Data"),
        (f"{root}/nothing/here", "/dicomweb/projects/{project}"),
    ]  # fmt: skip
    for url, named in cases:
        r = requests.get(url, headers=h, timeout=30)
        assert r.status_code == 404, (url, r.text)
        assert named in r.json()["detail"], url
    bad = requests.get(
        f"{root}/studies/{study}/series/{series}/instances/{sop}/frames/1,x", headers=h, timeout=30
    )
    assert bad.status_code == 400 and "1,x" in bad.json()["detail"]

"""Zip and parsing bombs sent to the session upload, through the real app (issue 9, point 1).

Each bomb is refused quickly with a reason, leaves no staging file, and the work it caused
is bounded: the test measures the bytes this process wrote (``/proc/self/io``, the app
runs in-process) and the write calls it made, not the wall-clock time. Defaults come
from ``Settings`` so the bounds follow them.

The 2 GiB bombs are put together from deflate segments (see ``_repeated_zip``): asking
``zipfile`` to deflate 2 GiB of zeros takes about 20 s on a small machine, while the
archive it would write is the same ~2 MB.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydicom
import pytest
from sqlalchemy import func, select

from imaging_data import write_study
from segmap.server.db.imaging import Instance
from segmap.server.settings import Settings
from server_fixtures import ThreadedServer, World

SESSIONS = "/api/v1/projects/P/sessions"
MAX_UPLOAD = 256 * 1024 * 1024  # well above every bound asserted below
GIB2 = 2 * 1024**3
DEFAULTS = Settings(data_dir=Path("unused"))


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """SQLite, and a per-file limit far above what a refused bomb may write."""
    return Settings(data_dir=tmp_path / "data", max_upload_bytes=MAX_UPLOAD)


# --------------------------------------------------------------------------- measuring


def _io() -> dict[str, int]:
    """This process's I/O counters (Linux): ``wchar`` bytes written, ``syscw`` write calls."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        pytest.skip("/proc/self/io is not readable here: cannot measure bytes written")
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _post_zip(world: World, body: bytes, name: str) -> tuple[Any, dict[str, int]]:
    """POST a zip as the raw body; the answer and the I/O it cost beyond the body itself."""
    before = _io()
    r = world.client.post(
        SESSIONS,
        content=body,
        headers={**world.h("owner"), "Content-Type": "application/zip"},
        params={"name": name},
    )
    after = _io()
    return r, {k: after[k] - before[k] for k in ("wchar", "syscw")}


def _staging_files(world: World) -> list[Path]:
    root = world.api.app.state.storage.root / "staging"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def _instances(world: World) -> int:
    with world.api.app.state.database.session() as db:
        return int(db.scalar(select(func.count()).select_from(Instance)) or 0)


# --------------------------------------------------------------------------- bombs


def _segment(data: bytes) -> bytes:
    """``data`` as byte-aligned, non-final raw deflate blocks that refer to nothing before
    them, so copies of a segment can follow each other in one deflate stream."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)


def _repeated_zip(path: Path, name: str, head: bytes, block: bytes, count: int) -> Path:
    """A zip of one deflated entry ``head + block * count``, written from segments.

    Local header, data, central directory and end record as APPNOTE 4.3 lays them out;
    sizes under 4 GiB need no zip64 fields. The CRC is computed over the real bytes, so
    ``zipfile`` unpacks the entry without complaint.
    """
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    stream_head, stream_block, end = _segment(head), _segment(block), b"\x03\x00"
    packed = len(stream_head) + count * len(stream_block) + len(end)
    size = len(head) + count * len(block)
    raw_name = name.encode()
    common = (20, 0, 8, 0, 0x21, crc, packed, size, len(raw_name), 0)  # v2.0, deflate
    with open(path, "wb") as f:
        f.write(struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", *common) + raw_name)
        f.write(stream_head)
        for _ in range(count):
            f.write(stream_block)
        f.write(end)
        directory_at = f.tell()
        f.write(
            struct.pack("<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", 20, *common, 0, 0, 0, 0, 0) + raw_name
        )
        directory_size = f.tell() - directory_at
        f.write(
            struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 1, 1, directory_size, directory_at, 0)
        )
    with zipfile.ZipFile(path) as check:  # the test's own bomb must be a valid zip
        [info] = check.infolist()
        assert (info.file_size, info.compress_size) == (size, packed)
    return path


@pytest.fixture(scope="module")
def slice_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One small, valid CT slice."""
    study = write_study(tmp_path_factory.mktemp("slice"), seed=91, patient_id="BOMB", slices=1)
    return study.files[0].read_bytes()


@pytest.fixture(scope="module")
def preamble_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """~2 MB zip: one entry of a DICOM preamble and 'DICM', then 2 GiB of zeros."""
    folder = tmp_path_factory.mktemp("bombs")
    path = _repeated_zip(
        folder / "preamble.zip", "bomb.dcm", bytes(128) + b"DICM", bytes(1 << 20), GIB2 >> 20
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def header_bomb(tmp_path_factory: pytest.TempPathFactory, slice_bytes: bytes) -> bytes:
    """~2 MB zip: a real slice's header whose PixelData says 2 GiB, then 2 GiB of zeros."""
    ds = pydicom.dcmread(io.BytesIO(slice_bytes))
    del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    implicit = ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    tag = struct.pack("<HH", 0x7FE0, 0x0010)
    element = tag + (b"" if implicit else b"OW\x00\x00") + struct.pack("<L", GIB2)
    path = _repeated_zip(
        tmp_path_factory.mktemp("bombs") / "header.zip",
        "slice.dcm",
        out.getvalue() + element,
        bytes(1 << 20),
        GIB2 >> 20,
    )
    return path.read_bytes()


# --------------------------------------------------------------------------- tests


def test_preamble_then_2gib_of_zeros_is_refused_from_its_header(
    world: World, preamble_bomb: bytes
) -> None:
    assert len(preamble_bomb) < 3 * 1024 * 1024
    r, cost = _post_zip(world, preamble_bomb, "bomb.zip")
    assert r.status_code == 422, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "bomb.zip/bomb.dcm"
    assert "file meta" in refused["reason"] and "DICOM" in refused["reason"]
    # Nothing but the archive itself was written: the entry was judged from its prefix.
    assert cost["wchar"] < len(preamble_bomb) + 4 * 1024 * 1024, cost
    assert _staging_files(world) == []
    assert _instances(world) == 0


def test_a_zip_of_plain_zeros_is_refused_without_unpacking(world: World) -> None:
    body = io.BytesIO()
    with (
        zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.bin", "w") as entry,
    ):
        for _ in range(200):  # 200 MiB, under the per-file limit: only the prefix counts
            entry.write(bytes(1 << 20))
    r, cost = _post_zip(world, body.getvalue(), "zeros.zip")
    assert r.status_code == 422, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "zeros.zip/zeros.bin"
    assert "not a DICOM file" in refused["reason"]
    assert cost["wchar"] < len(body.getvalue()) + 4 * 1024 * 1024, cost
    assert _staging_files(world) == []


def test_a_valid_header_over_2gib_of_zeros_stops_at_the_compression_ratio(
    world: World, header_bomb: bytes
) -> None:
    r, cost = _post_zip(world, header_bomb, "header.zip")
    assert r.status_code == 422, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "header.zip/slice.dcm"
    assert f"more than {DEFAULTS.zip_max_ratio} times" in refused["reason"], refused
    # Unpacking stopped soon after the ratio's grace, far from 2 GiB (or the 256 MiB limit).
    bound = len(header_bomb) + DEFAULTS.zip_ratio_grace_bytes + 8 * 1024 * 1024
    assert cost["wchar"] < bound, cost
    assert _staging_files(world) == []
    assert _instances(world) == 0


def test_the_ratio_also_caps_the_archive_as_a_whole(world: World, slice_bytes: bytes) -> None:
    """Entries each under the grace, together far over the ratio: the rest is not unpacked."""
    ds = pydicom.dcmread(io.BytesIO(slice_bytes))
    body = io.BytesIO()
    entry_size = 4 * 1024 * 1024
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n in range(40):  # 160 MiB of zero-padded slices in a zip of ~200 kB
            ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.9.{n + 1}"
            one = io.BytesIO()
            ds.save_as(one)
            archive.writestr(f"s{n:02d}.dcm", one.getvalue() + bytes(entry_size))
    r, cost = _post_zip(world, body.getvalue(), "padded.zip")
    reasons = [x["reason"] for x in r.json()["rejected"]]
    assert any("the archive unpacks to more than" in x for x in reasons), reasons
    allowed = max(DEFAULTS.zip_ratio_grace_bytes, DEFAULTS.zip_max_ratio * len(body.getvalue()))
    assert cost["wchar"] < len(body.getvalue()) + allowed + 2 * entry_size, cost
    assert _staging_files(world) == []


def test_a_zip_of_100k_entries_is_refused_before_any_is_unpacked(world: World) -> None:
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_STORED) as archive:
        for n in range(100_000):
            archive.writestr(f"f{n:06d}.dcm", b"x")
    r, cost = _post_zip(world, body.getvalue(), "many.zip")
    assert r.status_code == 422, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "many.zip"
    assert f"more than the limit of {DEFAULTS.zip_max_entries}" in refused["reason"]
    # No entry was staged: a handful of writes (the archive, the database), not 100,000.
    assert cost["syscw"] < 2_000, cost
    assert cost["wchar"] < len(body.getvalue()) + 1024 * 1024, cost
    assert _staging_files(world) == []


def test_an_answer_names_the_first_hundred_refused_files_and_counts_them_all(
    world: World,
) -> None:
    # 1,000 entries that are not DICOM: the answer stays small (it once listed every one,
    # megabytes for a zip at the entry limit) but still says how many were refused.
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_STORED) as archive:
        for n in range(1_000):
            archive.writestr(f"junk/f{n:04d}.txt", b"not a DICOM file")
    r, _cost = _post_zip(world, body.getvalue(), "junk.zip")
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["rejected_count"] == 1_000
    assert len(answer["rejected"]) == 100
    assert answer["rejected"][0]["file"].endswith("f0000.txt")
    assert answer["rejected"][99]["file"].endswith("f0099.txt")
    assert "and 995 more refused" in answer["detail"]
    assert len(r.content) < 40_000


def test_a_nested_zip_entry_is_refused_from_its_first_bytes(
    world: World, slice_bytes: bytes
) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.dcm", slice_bytes)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner.zip", inner.getvalue())
        archive.writestr("slice.dcm", slice_bytes)
    r, _cost = _post_zip(world, outer.getvalue(), "outer.zip")
    assert r.status_code == 201, r.text
    assert [(x["file"], "zip inside a zip" in x["reason"]) for x in r.json()["rejected"]] == [
        ("outer.zip/inner.zip", True)
    ]


def _peak_rss_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)
    except OSError:
        pytest.skip("/proc/self/clear_refs is not writable here: cannot measure peak memory")


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def test_a_deflated_data_set_that_inflates_to_512_mib_is_refused_in_bounded_memory(
    world: World, slice_bytes: bytes, tmp_path: Path
) -> None:
    """pydicom inflates a Deflated Explicit VR data set in memory whole before reading it."""
    ds = pydicom.dcmread(io.BytesIO(slice_bytes))
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    written = out.getvalue()
    group_length = pydicom.dcmread(io.BytesIO(written)).file_meta.FileMetaInformationGroupLength
    meta_end = 132 + 12 + int(group_length)
    data_set = zlib.decompress(written[meta_end:], -zlib.MAX_WBITS)
    pixels = struct.pack("<HH", 0x7FE0, 0x0010) + b"OW\x00\x00" + struct.pack("<L", 512 << 20)
    bomb = tmp_path / "deflated.dcm"
    with open(bomb, "wb") as f:
        f.write(written[:meta_end] + _segment(data_set + pixels))
        block = _segment(bytes(1 << 20))
        for _ in range(512):
            f.write(block)
        f.write(b"\x03\x00")
    assert bomb.stat().st_size < 1024 * 1024
    _peak_rss_reset()
    before = _peak_rss()
    r = world.client.post(
        SESSIONS,
        files=[("files", ("deflated.dcm", bomb.read_bytes(), "application/dicom"))],
        headers=world.h("owner"),
    )
    grown = _peak_rss() - before
    assert r.status_code == 422, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "deflated.dcm"
    assert "inflates to more than" in refused["reason"], refused
    assert grown < 128 * 1024 * 1024, grown
    assert _staging_files(world) == []


# --------------------------------------------------------------------------- disconnects


def _wait_until(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _raw_post(server: ThreadedServer, world: World, body: bytes, declared: int) -> socket.socket:
    parts = urlsplit(server.url)
    head = (
        f"POST {SESSIONS}?name=study.zip HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: {world.h('owner')['Authorization']}\r\n"
        f"Content-Length: {declared}\r\nContent-Type: application/zip\r\n\r\n"
    ).encode()
    s = socket.create_connection((parts.hostname, parts.port))
    s.sendall(head + body)
    return s


def test_a_client_that_goes_away_stops_the_unpacking(
    world: World,
    threaded_server: ThreadedServer,
    slice_bytes: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries = 1500
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n in range(entries):
            archive.writestr(f"copy{n:04d}.dcm", slice_bytes)
    data = body.getvalue()
    caplog.set_level(logging.INFO, logger="segmap")

    # Gone half-way through the body: the partial archive is discarded.
    s = _raw_post(threaded_server, world, data[: len(data) // 2], len(data))
    assert _wait_until(lambda: len(_staging_files(world)) == 1)
    s.close()
    assert _wait_until(lambda: _staging_files(world) == [])

    # Gone after the whole body, while the server unpacks: the worker stops.
    s = _raw_post(threaded_server, world, data, len(data))
    assert _wait_until(lambda: len(_staging_files(world)) > 1)  # unpacking has begun
    s.close()
    # The upload's own line (the half-sent body above logged the generic disconnect one).
    stops = "stopped after"
    assert _wait_until(lambda: any(stops in r.getMessage() for r in caplog.records))
    assert _wait_until(lambda: _staging_files(world) == [])
    [stopped] = [r for r in caplog.records if stops in r.getMessage()]
    done = re.search(r"after (\d+) files?", stopped.getMessage())
    assert done is not None and int(done.group(1)) < entries, stopped.getMessage()
    assert _instances(world) == 0
    # The service is free for the next upload.
    r = world.client.post(
        SESSIONS,
        content=slice_bytes,
        headers={**world.h("owner"), "Content-Type": "application/dicom"},
    )
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- settings


def test_the_bounds_are_settings_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_bytes: bytes
) -> None:
    from fastapi.testclient import TestClient

    from segmap.server.app import create_app
    from server_fixtures import Api

    monkeypatch.setenv("SEGMAP_ZIP_MAX_ENTRIES", "3")
    monkeypatch.setenv("SEGMAP_ZIP_MAX_RATIO", "20")
    monkeypatch.setenv("SEGMAP_ZIP_RATIO_GRACE_BYTES", "65536")
    monkeypatch.setenv("SEGMAP_MAX_UNZIPPED_BYTES", "9000000")
    monkeypatch.setenv("SEGMAP_DICOM_PROBE_BYTES", "4096")
    settings = Settings.from_env(tmp_path / "data")
    assert (
        settings.zip_max_entries,
        settings.zip_max_ratio,
        settings.zip_ratio_grace_bytes,
        settings.effective_max_unzipped_bytes,
        settings.dicom_probe_bytes,
    ) == (3, 20, 65536, 9000000, 4096)
    app = create_app(settings)
    with TestClient(app) as client:
        headers = Api.auth(Api(client, app).make_user("owner"))
        client.post("/api/v1/projects", json={"id": "P", "name": "P"}, headers=headers)
        body = io.BytesIO()
        with zipfile.ZipFile(body, "w") as archive:
            for n in range(4):
                archive.writestr(f"s{n}.dcm", slice_bytes)
        r = client.post(
            SESSIONS,
            content=body.getvalue(),
            headers={**headers, "Content-Type": "application/zip"},
        )
        assert r.status_code == 422, r.text
        assert "more than the limit of 3 files" in r.json()["rejected"][0]["reason"]
    app.state.database.dispose()


def test_a_bound_that_is_not_a_number_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    env["SEGMAP_ZIP_MAX_RATIO"] = "lots"
    done = subprocess.run(
        [sys.executable, "-m", "segmap.cli", "serve", "--data", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "segmap serve: SEGMAP_ZIP_MAX_RATIO='lots' is not a whole number of unpacked bytes "
        "per compressed byte"
    ], done.stderr

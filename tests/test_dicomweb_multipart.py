"""multipart/related: STOW bodies as dicomweb-client and OHIF write them, and WADO bodies
read back by our reader and by dicomweb-client's decoder."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from segmap.server.dicomweb.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from segmap.server.dicomweb.multipart import (
    OutgoingPart,
    ReceivedPart,
    amultipart_body,
    multipart_body,
    new_boundary,
    parse_content_type,
    read_parts,
)

T = TypeVar("T")
STOW_TYPE = 'multipart/related; type="application/dicom"; boundary="{b}"'


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a fresh event loop in a thread: other tests may leave one running here."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _read(body: bytes, content_type: str, size: int = 65536, **kw: object) -> list[ReceivedPart]:
    async def run() -> list[ReceivedPart]:
        return [p async for p in read_parts(_chunks(body, size), content_type, **kw)]  # type: ignore[arg-type]

    return _run(run())


def _payloads(n: int = 3, size: int = 5000) -> list[bytes]:
    # random bytes that include CR, LF and dashes, the boundary's neighbours
    return [os.urandom(size) + b"\r\n--\r\n" + bytes([i]) * 17 for i in range(n)]


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
def test_dicomweb_client_stow_body(size: int) -> None:
    payloads = _payloads(3, 3000 if size == 1 else 20000)
    content_type = STOW_TYPE.format(b="0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1")
    body = DICOMwebClient._encode_multipart_message(payloads, content_type)
    assert body.startswith(b"\r\n--")  # the client's leading CRLF
    parts = _read(body, content_type, size)
    assert [p.read() for p in parts] == payloads
    assert [p.number for p in parts] == [1, 2, 3]
    assert {p.content_type for p in parts} == {"application/dicom"}
    for p in parts:
        p.close()


def test_ohif_style_and_unquoted_boundary_preamble_epilogue() -> None:
    data = _payloads(2)
    head = b"\r\n--abc\r\nContent-Type: application/dicom\r\n\r\n"
    ohif = head + data[0] + head + data[1] + b"\r\n--abc--"  # no CRLF after the close
    assert [p.read() for p in _read(ohif, STOW_TYPE.format(b="abc"))] == data
    plain = (b"This is a preamble.\r\nIt has lines.\r\n--abc\r\n"
             b"Content-Type: application/dicom\r\nContent-Location: /x/1\r\n\r\n" + data[0]
             + b"\r\n--abc--\r\nan epilogue, ignored\r\n")  # fmt: skip
    parts = _read(plain, "multipart/related; type=application/dicom; boundary=abc", 10)
    assert [p.read() for p in parts] == data[:1]
    assert parts[0].headers == {"content-type": "application/dicom", "content-location": "/x/1"}


def test_a_body_without_its_closing_boundary_is_refused(tmp_path: Path) -> None:
    data = _payloads(2)
    body = DICOMwebClient._encode_multipart_message(data, STOW_TYPE.format(b="zz"))
    for cut in (body[:-4], body[:-2000]):  # no closing boundary / cut inside the last part
        with pytest.raises(BadRequest, match="without its closing boundary --zz--"):
            _read(cut, STOW_TYPE.format(b="zz"), spool_dir=str(tmp_path), spool_bytes=100)
    with pytest.raises(BadRequest, match="no boundary --zz found"):
        _read(b"nothing here", STOW_TYPE.format(b="zz"))
    with pytest.raises(BadRequest, match="malformed"):
        _read(
            b"--zz\r\nContent-Type application/dicom\r\n\r\nx\r\n--zz--", STOW_TYPE.format(b="zz")
        )


def test_large_parts_are_spooled_to_disk() -> None:
    data = [os.urandom(300_000), b"small"]
    content_type = STOW_TYPE.format(b="q1")
    body = DICOMwebClient._encode_multipart_message(data, content_type)
    parts = _read(body, content_type, 8192, spool_bytes=100_000)
    assert parts[0].file._rolled  # type: ignore[attr-defined]  # on disk
    assert not parts[1].file._rolled  # type: ignore[attr-defined]
    assert hashlib.sha256(parts[0].read()).digest() == hashlib.sha256(data[0]).digest()


def test_limits() -> None:
    data = [b"a" * 10, b"b" * 5000, b"c"]
    content_type = STOW_TYPE.format(b="lim")
    body = DICOMwebClient._encode_multipart_message(data, content_type)
    with pytest.raises(PayloadTooLarge, match="part 2 is larger than 4096"):
        _read(body, content_type, max_part_bytes=4096)
    with pytest.raises(PayloadTooLarge, match="more than 2 parts"):
        _read(body, content_type, max_parts=2)


def test_content_type_checks() -> None:
    with pytest.raises(UnsupportedMediaType, match="multipart/related"):
        parse_content_type("multipart/form-data; boundary=x")
    with pytest.raises(UnsupportedMediaType):
        parse_content_type(None)
    with pytest.raises(BadRequest, match="no boundary"):
        parse_content_type('multipart/related; type="application/dicom"')
    related = parse_content_type('Multipart/Related; type="application/DICOM"; boundary="a b"')
    assert (related.boundary, related.type) == (b"a b", "application/dicom")


def _body(parts: Iterable[OutgoingPart], boundary: str) -> bytes:
    return b"".join(multipart_body(parts, boundary))


def test_writer_output_read_by_dicomweb_client_and_by_us() -> None:
    boundary = new_boundary()
    frames = _payloads(3)
    ts = "1.2.840.10008.1.2.1"
    parts = [OutgoingPart(f"application/octet-stream; transfer-syntax={ts}", f) for f in frames[:2]]
    chunked = [frames[2][:100], frames[2][100:]]  # a body given in chunks
    parts.append(OutgoingPart(f"application/octet-stream; transfer-syntax={ts}", chunked, "/f/3"))
    body = _body(parts, boundary)
    content_type = f'multipart/related; type="application/octet-stream"; boundary={boundary}'
    response = requests.Response()
    response.status_code = 200
    response.headers["content-type"] = content_type
    response._content = body
    client = DICOMwebClient(url="http://127.0.0.1:9/unused")
    assert list(client._decode_multipart_message(response, stream=False)) == frames
    ours = _read(body, content_type, 333)
    assert [p.read() for p in ours] == frames
    assert ours[0].headers["content-type"] == f"application/octet-stream; transfer-syntax={ts}"
    assert ours[0].headers["content-length"] == str(len(frames[0]))
    assert ours[2].headers["content-location"] == "/f/3" and "content-length" not in ours[2].headers
    assert (
        b"\r\nContent-Type: application/octet-stream; transfer-syntax=" in body
    )  # OHIF's spelling
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())


def test_async_writer_matches_the_sync_one() -> None:
    boundary = "b0"
    parts = [OutgoingPart("application/dicom", p) for p in _payloads(2)]

    async def produce() -> AsyncIterator[OutgoingPart]:
        for p in parts:
            yield p

    async def collect() -> bytes:
        return b"".join([c async for c in amultipart_body(produce(), boundary)])

    assert _run(collect()) == _body(parts, boundary)
    assert _body([], boundary) == b"--b0--\r\n"

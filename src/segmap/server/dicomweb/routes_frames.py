"""WADO-RS routes for parts of an instance: frames, bulk data, rendered images.

Frames are read at the byte ranges indexed when the instance was stored — the file is
never parsed to serve one — and decoded one at a time only when the client asks for
uncompressed frames of a compressed instance. Bulk data of Pixel Data negotiates like
frames (native: the whole value in one part; encapsulated: one part per frame); other
bulk values are read with pydicom. Rendered images: :mod:`.rendered`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pydicom
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from segmap.imaging.frame_index import FrameIndex
from segmap.imaging.frame_read import read_frame, read_frame_uncompressed, to_uncompressed
from segmap.server.dicomweb.accept import Choice, Resource, negotiate
from segmap.server.dicomweb.auth import project_reading
from segmap.server.dicomweb.bulkdata import find_element, parse_bulk_path
from segmap.server.dicomweb.dicomjson import PIXEL_DATA_TAGS
from segmap.server.dicomweb.errors import BadRequest, NotAcceptable, NotFoundError
from segmap.server.dicomweb.multipart import OutgoingPart, multipart_body, new_boundary
from segmap.server.dicomweb.rendered import parse_window, render
from segmap.server.dicomweb.responses import PREFIX, DicomwebRoute
from segmap.server.dicomweb.retrieve import Located, frame_numbers, locate
from segmap.server.dicomweb.routes_wado import INSTANCE
from segmap.server.storage import CHUNK, Storage
from segmap.server.web.deps import get_storage

router = APIRouter(prefix=PREFIX, route_class=DicomwebRoute, tags=["DICOMweb"])

_PIXEL_DATA = 0x7FE00010


def _one(request: Request, project: str, study: str, series: str, sop: str) -> Located:
    with project_reading(request, project) as (db, access):
        return locate(db, access.project.id, study, series, sop, with_frames=True)[0]


def _frame_bytes(fp: object, index: FrameIndex, number: int, choice: Choice) -> bytes:
    frame = read_frame(fp, index, number)  # type: ignore[arg-type]
    return to_uncompressed(index, frame) if choice.transcode else frame


def _answer(parts: list[OutgoingPart] | Iterator[OutgoingPart], choice: Choice) -> Response:
    """One part's body alone when single-part was asked, else a multipart answer."""
    if not choice.multipart:
        part = next(iter(parts))
        return Response(bytes(part.body), media_type=choice.part_content_type)  # type: ignore[arg-type]
    boundary = new_boundary()
    body = multipart_body(parts, boundary)
    if isinstance(parts, list):  # already in memory: one write, with its length
        return Response(b"".join(body), media_type=choice.content_type(boundary))
    return StreamingResponse(body, media_type=choice.content_type(boundary))


@router.get(INSTANCE + "/frames/{frames}", name="dicomweb_frames")
def retrieve_frames(
    request: Request,
    project: str,
    study: str,
    series: str,
    instance: str,
    frames: str,
) -> Response:
    """WADO-RS: frames of an instance, as stored or uncompressed (see the Accept rules)."""
    storage = get_storage(request)
    found = _one(request, project, study, series, instance)
    index = found.frames()
    numbers = frame_numbers(frames, index.number_of_frames)
    choice = negotiate(
        request.headers.get("accept"), Resource.FRAMES, stored_syntax=index.transfer_syntax_uid
    )
    if not choice.multipart and len(numbers) > 1:
        raise NotAcceptable("a single-part answer holds one frame; ask multipart/related")
    if len(numbers) == 1:
        with storage.open(found.storage_key) as fp:
            body = _frame_bytes(fp, index, numbers[0], choice)
        return _answer([OutgoingPart(choice.part_content_type, body)], choice)

    def parts() -> Iterator[OutgoingPart]:
        with storage.open(found.storage_key) as fp:
            for n in numbers:
                yield OutgoingPart(choice.part_content_type, _frame_bytes(fp, index, n, choice))

    return _answer(parts(), choice)


@router.get(INSTANCE + "/bulk/{path:path}", name="dicomweb_bulk")
def retrieve_bulk(
    request: Request,
    project: str,
    study: str,
    series: str,
    instance: str,
    path: str,
) -> Response:
    """WADO-RS: a bulk value named by a Bulk Data URI of the instance's metadata."""
    storage = get_storage(request)
    found = _one(request, project, study, series, instance)
    steps = parse_bulk_path(path)
    accept = request.headers.get("accept")
    if steps == (_PIXEL_DATA,):
        return _pixel_bulk(storage, found, accept)
    if steps[-1] in PIXEL_DATA_TAGS:
        raise NotFoundError(f"instance {instance} has no bulk value {path}")
    choice = negotiate(accept, Resource.BULKDATA)
    with storage.open(found.storage_key) as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True)
        try:
            value = find_element(ds, steps).value
        except LookupError as exc:
            raise NotFoundError(f"instance {instance}: {exc}") from None
    if not isinstance(value, bytes | bytearray):
        raise NotFoundError(f"element {path} of instance {instance} is not a binary value")
    return _answer([OutgoingPart(choice.part_content_type, bytes(value))], choice)


def _pixel_bulk(storage: Storage, found: Located, accept: str | None) -> Response:
    index = found.frames()
    choice = negotiate(accept, Resource.FRAMES, stored_syntax=index.transfer_syntax_uid)
    if index.encapsulated:

        def frames() -> Iterator[OutgoingPart]:
            with storage.open(found.storage_key) as fp:
                for n in range(1, index.number_of_frames + 1):
                    yield OutgoingPart(choice.part_content_type, _frame_bytes(fp, index, n, choice))

        if not choice.multipart and index.number_of_frames > 1:
            raise NotAcceptable("this Pixel Data holds several frames; ask multipart/related")
        return _answer(frames(), choice)
    if choice.transcode:  # big endian: swapped as a whole (bounded by the stored size)
        with storage.open(found.storage_key) as fp:
            fp.seek(index.value_offset)
            value = to_uncompressed(index, fp.read(index.value_length))
        return _answer([OutgoingPart(choice.part_content_type, value)], choice)
    part = OutgoingPart(
        choice.part_content_type,
        _range(storage, found.storage_key, index.value_offset, index.value_length),
        length=index.value_length,
    )
    if not choice.multipart:
        return StreamingResponse(part.body, media_type=choice.part_content_type)  # type: ignore[arg-type]
    return _answer(iter([part]), choice)


def _range(storage: Storage, key: str, offset: int, length: int) -> Iterator[bytes]:
    with storage.open(key) as fp:
        fp.seek(offset)
        left = length
        while left > 0:
            chunk = fp.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.get(INSTANCE + "/rendered", name="dicomweb_instance_rendered")
def instance_rendered(
    request: Request,
    project: str,
    study: str,
    series: str,
    instance: str,
) -> Response:
    """WADO-RS: the instance rendered (its first frame) as PNG or JPEG."""
    storage = get_storage(request)
    found = _one(request, project, study, series, instance)
    return _rendered(request, storage, found, "1")


@router.get(INSTANCE + "/frames/{frames}/rendered", name="dicomweb_frame_rendered")
def frame_rendered(
    request: Request,
    project: str,
    study: str,
    series: str,
    instance: str,
    frames: str,
) -> Response:
    """WADO-RS: one frame rendered as PNG or JPEG."""
    storage = get_storage(request)
    found = _one(request, project, study, series, instance)
    return _rendered(request, storage, found, frames)


def _rendered(request: Request, storage: Storage, found: Located, frames: str) -> Response:
    index = found.frames()
    numbers = frame_numbers(frames, index.number_of_frames)
    if len(numbers) != 1:
        raise BadRequest("a rendered answer is one frame; ask /frames/{n}/rendered per frame")
    choice = negotiate(request.headers.get("accept"), Resource.RENDERED)
    window = parse_window(request.query_params.get("window"))
    with storage.open(found.storage_key) as fp:
        header = pydicom.dcmread(fp, stop_before_pixels=True)
        frame = read_frame_uncompressed(fp, index, numbers[0])
    return Response(
        render(frame, index, header, choice.media_type, window), media_type=choice.media_type
    )

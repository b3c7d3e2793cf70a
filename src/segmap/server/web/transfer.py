"""Moving file bytes over HTTP: raw request bodies into staging, stored files out.

Every upload and download of the API goes through here, so the size limit, the batching
of writes and the download headers are the same for model files, DICOM sessions, ROI
collections and derived resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from segmap.server.errors import PayloadTooLarge, ServiceError
from segmap.server.storage import StagedFile, StagingWriter, Storage, iter_file

# Gathering the request body into pieces this big before writing keeps the number of
# thread hand-offs per upload small.
WRITE_BATCH_BYTES = 1024 * 1024
# Bytes a raw body must have before ``sniff`` judges it (a DICOM preamble and 'DICM').
SNIFF_BYTES = 132


@dataclass(frozen=True)
class IncomingFile:
    """One uploaded file received in full: the name the user gave it and its staged bytes."""

    name: str
    staged: StagedFile


@dataclass(frozen=True)
class Rejection:
    """A file of an upload that was not stored, and why (a sentence the user can act on)."""

    file: str
    reason: str


def refuse_declared_oversize(request: Request, limit: int) -> None:
    """Raise 413 before reading a body whose ``Content-Length`` is over ``limit`` bytes.

    A body without the header is still capped while it streams (by the staging writer).
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the upload is {declared} bytes, larger than the limit of {limit} bytes; "
            "ask the administrator to raise --max-upload-bytes"
        )


Sniff = Callable[[bytes], None]
"""Judges the first bytes of a body (at least ``SNIFF_BYTES`` unless the body is shorter)
and raises a ``ServiceError`` to refuse it before the rest is written."""


async def receive_body(
    request: Request, writer: StagingWriter, sniff: Sniff | None = None
) -> bytes:
    """Stream the raw request body into ``writer`` in batches of about 1 MB.

    Returns the last, not yet written, batch: the caller writes it in the same worker
    call that finishes the file, which saves a thread hand-off per upload. On any
    failure (client gone, over the limit, refused by ``sniff``) the staged bytes are
    discarded. A body refused by ``sniff`` is read to its end (up to the writer's
    limit) without being written, so the client gets the answer rather than a reset.
    """
    try:
        pending: list[bytes] = []
        size = 0
        received = 0
        stream = request.stream()
        async for chunk in stream:
            received += len(chunk)
            pending.append(chunk)
            size += len(chunk)
            if sniff is not None and received >= SNIFF_BYTES:
                _judge(sniff, b"".join(pending))
                sniff = None
            if size >= WRITE_BATCH_BYTES:
                await run_in_threadpool(writer.write, b"".join(pending))
                pending, size = [], 0
        if sniff is not None:
            _judge(sniff, b"".join(pending))
    except _Refused as refused:
        writer.discard()
        await _drain(stream, received, writer.max_bytes)
        raise refused.error from None
    except BaseException:
        writer.discard()
        raise
    return b"".join(pending)


class _Refused(Exception):
    def __init__(self, error: ServiceError) -> None:
        self.error = error


def _judge(sniff: Sniff, first: bytes) -> None:
    try:
        sniff(first)
    except ServiceError as exc:
        raise _Refused(exc) from None


async def _drain(stream: AsyncIterator[bytes], received: int, limit: int) -> None:
    """Read and drop the rest of a refused body, at most up to ``limit`` bytes."""
    with contextlib.suppress(Exception):
        async for chunk in stream:
            received += len(chunk)
            if received > limit:
                return


async def stage_body(
    request: Request, storage: Storage, limit: int, sniff: Sniff | None = None
) -> StagedFile:
    """Stream the raw request body into one staging file (413 past ``limit`` bytes).

    ``sniff`` (optional) judges the first bytes; what it raises is the answer.
    """
    refuse_declared_oversize(request, limit)
    writer = await run_in_threadpool(storage.stage, limit)
    tail = await receive_body(request, writer, sniff)

    def finish() -> StagedFile:
        try:
            writer.write(tail)
            return writer.finish()
        except BaseException:
            writer.discard()
            raise

    return await run_in_threadpool(finish)


class ClientGone(ServiceError):
    """The client closed the connection before its request was done (nobody reads this)."""

    status_code = 400


@contextlib.asynccontextmanager
async def watch_client(request: Request) -> AsyncIterator[Callable[[], None]]:
    """While the block runs, listen for the client going away; yields a check for threads.

    For work done in a worker thread after the body was read: the check is cheap (an
    event) and raises :class:`ClientGone` once the client has disconnected, so the
    work can stop and clean up. Only use it after the body has been read in full.
    """
    gone = threading.Event()

    async def listen() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    def check() -> None:
        if gone.is_set():
            raise ClientGone("the client closed the connection before the upload was stored")

    task = asyncio.create_task(listen())
    try:
        yield check
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# Characters no download name keeps: path separators, what Windows refuses in names, and
# (below) control and format characters, which could hide or reorder what a user reads.
_UNSAFE_IN_FILENAMES = frozenset('/\\:*?"<>|')
MAX_FILENAME_CHARS = 200


def safe_filename(name: str, max_chars: int = MAX_FILENAME_CHARS) -> str:
    """``name`` as a file name any browser and file system keeps as it is.

    NFC-normalised; separators, reserved and invisible characters become ``_``; leading
    dots and spaces go (no hidden or relative names); past ``max_chars`` the middle is
    cut so the end (the extension, ``.nii.gz``) stays. Never empty.
    """
    text = unicodedata.normalize("NFC", name)
    kept = "".join(
        "_"
        if c in _UNSAFE_IN_FILENAMES or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        else c
        for c in text
    )
    kept = kept.strip().lstrip(".").strip() or "download"
    if len(kept) > max_chars:
        tail = max_chars // 3
        kept = kept[: max_chars - tail - 1].rstrip() + "_" + kept[-tail:].lstrip()
    return kept


def content_disposition(name: str) -> str:
    """An ``attachment`` header naming ``name`` (made safe) for every client.

    ``filename`` is an ASCII stand-in for old clients (other characters become ``_``);
    ``filename*`` (RFC 5987, UTF-8, percent-encoded) carries the real name, and browsers
    prefer it.
    """
    name = safe_filename(name)
    ascii_name = "".join(c if " " <= c <= "~" else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def guess_media_type(name: str) -> str:
    """The media type a file's name suggests (``.nii.gz`` is gzip), else octet-stream."""
    media, encoding = mimetypes.guess_type(name)
    if encoding == "gzip":
        return "application/gzip"
    return media or "application/octet-stream"


def download_response(
    name: str, size: int, sha256: str, handle: BinaryIO, media_type: str
) -> StreamingResponse:
    """Stream an open stored file as an attachment, with its size and SHA-256 as ETag."""
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": content_disposition(name),
        "ETag": f'"{sha256}"',
        "X-Content-SHA256": sha256,
        # Never let a browser run an uploaded .html or .svg as a page of this site.
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(iter_file(handle), media_type=media_type, headers=headers)

"""Moving file bytes over HTTP: raw request bodies into staging, stored files out.

Every upload and download of the API goes through here, so the size limit, the batching
of writes and the download headers are the same for model files, DICOM sessions, ROI
collections and derived resources.
"""

from __future__ import annotations

import mimetypes
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from segmap.server.errors import PayloadTooLarge
from segmap.server.storage import StagedFile, StagingWriter, Storage, iter_file

# Gathering the request body into pieces this big before writing keeps the number of
# thread hand-offs per upload small.
WRITE_BATCH_BYTES = 1024 * 1024


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


async def receive_body(request: Request, writer: StagingWriter) -> bytes:
    """Stream the raw request body into ``writer`` in batches of about 1 MB.

    Returns the last, not yet written, batch: the caller writes it in the same worker
    call that finishes the file, which saves a thread hand-off per upload. On any
    failure (client gone, over the limit) the staged bytes are discarded.
    """
    try:
        pending: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_BATCH_BYTES:
                await run_in_threadpool(writer.write, b"".join(pending))
                pending, size = [], 0
    except BaseException:
        writer.discard()
        raise
    return b"".join(pending)


async def stage_body(request: Request, storage: Storage, limit: int) -> StagedFile:
    """Stream the raw request body into one staging file (413 past ``limit`` bytes)."""
    refuse_declared_oversize(request, limit)
    writer = await run_in_threadpool(storage.stage, limit)
    tail = await receive_body(request, writer)

    def finish() -> StagedFile:
        try:
            writer.write(tail)
            return writer.finish()
        except BaseException:
            writer.discard()
            raise

    return await run_in_threadpool(finish)


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

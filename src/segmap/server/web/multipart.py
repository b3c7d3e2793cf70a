"""Receive a multipart/form-data body file by file, straight into staging files.

Starlette's form parser keeps every file part under 1 MB in memory until the whole
request has arrived, so an upload of a thousand CT slices would sit in memory. Here the
``python-multipart`` streaming parser feeds each file part into its own
``StagingWriter`` as the bytes arrive (disk writes batched and run off the event loop).
Non-file fields are read up to a small size and otherwise ignored.

A file part can be judged from its first bytes (``sniff``) before anything of it is
written; a refused part is skipped and named in ``rejected``. A body that ends before
its closing boundary (``--BOUNDARY--``) is refused as a whole, with every staged file
of it removed: it was cut short, so none of its parts can be trusted to be complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from segmap.server.errors import PayloadTooLarge, Unprocessable
from segmap.server.storage import StagingWriter, Storage
from segmap.server.web.transfer import IncomingFile, Rejection

_WRITE_BATCH = 1024 * 1024
_MAX_FIELD_BYTES = 64 * 1024
SNIFF_BYTES = 132  # a DICOM preamble and 'DICM'; also covers a zip's signature

PartSniff = Callable[[bytes], "str | None"]
"""Why a file part is refused, from its first ``SNIFF_BYTES`` (fewer when it is shorter),
or None to receive it."""


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    filename: str | None = None
    writer: StagingWriter | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_size: int = 0
    field_size: int = 0
    refused: str | None = None
    sniffed: bool = False


@dataclass
class Received:
    """Files received in full, and the ones refused on the way (e.g. too large)."""

    files: list[IncomingFile] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class _Events:
    """Collects the parser's callbacks; the async loop acts on them between chunks."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, bytes]] = []
        self._name = b""
        self._value = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": lambda: self.queue.append(("begin", b"")),
            "on_part_data": lambda d, s, e: self.queue.append(("data", bytes(d[s:e]))),
            "on_part_end": lambda: self.queue.append(("end", b"")),
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.queue.append(("headers", b"")),
        }

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self.queue.append(("header", self._name.lower() + b"\x00" + self._value))
        self._name, self._value = b"", b""


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a Content-Type header; ``Unprocessable`` when absent."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Unprocessable("send the files as multipart/form-data with a boundary")
    return boundary


@dataclass(frozen=True)
class _Rules:
    storage: Storage
    limit: int
    sniff: PartSniff | None


async def receive_files(
    stream: AsyncIterator[bytes],
    content_type: str,
    storage: Storage,
    max_file_bytes: int,
    sniff: PartSniff | None = None,
) -> Received:
    """Read the whole body; every file part becomes a staged file (the caller owns them).

    A part larger than ``max_file_bytes``, or refused by ``sniff``, is named in
    ``rejected`` and the rest still received. A body without its closing boundary is
    ``Unprocessable``. On any error every staged file is discarded and the error
    propagates.
    """
    boundary = boundary_of(content_type)
    events = _Events()
    parser = MultipartParser(boundary, events.callbacks())  # type: ignore[arg-type]
    received = Received()
    rules = _Rules(storage, max_file_bytes, sniff)
    part = _Part()
    try:
        async for chunk in stream:
            try:
                parser.write(chunk)
            except Exception as exc:
                raise Unprocessable(f"the multipart body is malformed ({exc})") from None
            part = await _apply(events, part, received, rules)
        try:
            parser.finalize()
        except Exception as exc:
            raise Unprocessable(f"the multipart body ends too early ({exc})") from None
        part = await _apply(events, part, received, rules)
        if parser.state != MultipartState.END:
            raise Unprocessable(_unterminated(boundary, received, part))
    except BaseException:
        if part.writer is not None:
            part.writer.discard()
        for item in received.files:
            storage.discard(item.staged)
        raise
    return received


def _unterminated(boundary: bytes, received: Received, part: _Part) -> str:
    where = f" inside the part of file {part.filename!r}" if part.filename else ""
    done = f" after {len(received.files)} complete file part(s)" if received.files else ""
    return (
        f"the multipart body ends{where}{done} without its closing boundary "
        f"'--{boundary.decode('latin-1')}--': the upload was cut short or built wrongly, "
        "so nothing of it was kept; send it again"
    )


async def _apply(events: _Events, part: _Part, received: Received, rules: _Rules) -> _Part:
    queue, events.queue = events.queue, []
    for kind, data in queue:
        if kind == "begin":
            part = _Part()
        elif kind == "header":
            name, _, value = data.partition(b"\x00")
            part.headers.append((name, value))
        elif kind == "headers":
            part.filename = _filename(part.headers)
            if part.filename is not None and rules.sniff is None:
                part.writer = await run_in_threadpool(rules.storage.stage, rules.limit)
        elif kind == "data":
            await _data(part, data, rules)
        elif kind == "end":
            await _end(part, received, rules)
    if part.pending_size >= _WRITE_BATCH:
        await _flush(part, rules)
    return part


def _filename(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"content-disposition":
            _kind, options = parse_options_header(value)
            raw = options.get(b"filename")
            if raw is None:
                return None
            text = raw.decode("utf-8", errors="replace").strip()
            return text or "(unnamed file)"
    return None


async def _data(part: _Part, data: bytes, rules: _Rules) -> None:
    if part.filename is None:
        part.field_size += len(data)
        if part.field_size > _MAX_FIELD_BYTES:
            raise Unprocessable("a form field is too large; send files as file parts")
        return
    if part.refused is not None:
        return
    part.pending.append(data)
    part.pending_size += len(data)
    if not part.sniffed and rules.sniff is not None and part.pending_size >= SNIFF_BYTES:
        await _sniff(part, rules)
    if part.pending_size >= _WRITE_BATCH:
        await _flush(part, rules)


async def _sniff(part: _Part, rules: _Rules) -> None:
    """Judge the part from its first bytes; open its staging file only if it passes."""
    assert rules.sniff is not None
    part.sniffed = True
    reason = rules.sniff(b"".join(part.pending)[:SNIFF_BYTES])
    if reason is not None:
        part.refused = reason
        part.pending, part.pending_size = [], 0
        return
    part.writer = await run_in_threadpool(rules.storage.stage, rules.limit)


async def _flush(part: _Part, rules: _Rules) -> None:
    if part.writer is None or not part.pending:
        return
    data = b"".join(part.pending)
    part.pending, part.pending_size = [], 0
    try:
        await run_in_threadpool(part.writer.write, data)
    except PayloadTooLarge:
        part.writer = None  # the writer discarded its file
        part.refused = f"larger than the upload limit of {rules.limit} bytes per file"


async def _end(part: _Part, received: Received, rules: _Rules) -> None:
    if part.filename is None:
        return
    if not part.sniffed and rules.sniff is not None and part.refused is None:
        await _sniff(part, rules)  # a part shorter than the sniff
    await _flush(part, rules)
    if part.refused is not None or part.writer is None:
        received.rejected.append(Rejection(part.filename, part.refused or "not received"))
        return
    staged = await run_in_threadpool(part.writer.finish)
    part.writer = None
    received.files.append(IncomingFile(part.filename, staged))

"""``multipart/related`` bodies: read STOW-RS requests as they arrive, write WADO-RS answers.

Reading: the boundary comes from the Content-Type (quoted or not); a preamble or a
leading CRLF before the first boundary is skipped; each part's headers are kept and its
bytes go into a file of the caller's (:func:`read_parts_into`: STOW-RS writes each part
straight into its staging file) or, by default (:func:`read_parts`), a
:class:`tempfile.SpooledTemporaryFile` that moves to disk past ``spool_bytes``, so
memory stays bounded whatever the body's size. Parts are yielded as they complete.
The parsing is python-multipart's streaming ``MultipartParser`` (also what
``segmap.server.multipart_stream`` uses for form uploads); it wants the body to start
at the first boundary, so the preamble is cut here first, and it does not itself
complain when the closing boundary never comes, so that is checked here too.

Writing: :func:`multipart_body` yields the bytes of a body part by part (each part's
body may itself be an iterable of chunks, e.g. a file read in blocks), with the
``Content-Type`` (including ``transfer-syntax``) OHIF's parser needs spelled exactly so.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field
from typing import IO, Any, Generic, Protocol, TypeVar

import anyio.to_thread
from python_multipart.multipart import MultipartParser, parse_options_header

from segmap.server.dicomweb.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

SPOOL_BYTES = 8 * 1024 * 1024
"""A part stays in memory up to this size, then is written to a temporary file."""

_PREAMBLE_LIMIT = 64 * 1024  # a longer preamble is not a DICOMweb client's
_WRITE_BATCH = 1024 * 1024


@dataclass(frozen=True)
class RelatedType:
    """The parameters of a ``multipart/related`` Content-Type."""

    boundary: bytes
    type: str | None
    start: str | None = None


def parse_content_type(header: str | None) -> RelatedType:
    """Read a request's Content-Type: 415 unless multipart/related, 400 without a boundary."""
    kind, params = parse_options_header(header or "")
    if kind.decode("latin-1").lower() != "multipart/related":
        raise UnsupportedMediaType(
            f'send the instances as multipart/related; type="application/dicom", not {header!r}'
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest(f"the multipart/related Content-Type has no boundary: {header!r}")
    related = params.get(b"type")
    start = params.get(b"start")
    return RelatedType(
        boundary=boundary,
        type=related.decode("latin-1").lower() if related else None,
        start=start.decode("latin-1") if start else None,
    )


class PartFile(Protocol):
    """Where a part's bytes go as they arrive (written from a worker thread)."""

    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


F = TypeVar("F", bound=PartFile)


@dataclass
class ReceivedPart(Generic[F]):
    """One part of a request body; the caller closes it (or uses ``with``)."""

    number: int  # 1-based, in body order
    headers: dict[str, str]  # names in lower case
    file: F
    size: int = 0

    @property
    def content_type(self) -> str:
        """The part's media type, lower case, without parameters ('' when absent)."""
        kind, _ = parse_options_header(self.headers.get("content-type", ""))
        return str(kind.decode("latin-1").lower())

    def read(self: ReceivedPart[IO[bytes]]) -> bytes:
        """The part's bytes (of a part read into a file that can be read back)."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ReceivedPart[F]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass
class _State(Generic[F]):
    parts_done: list[ReceivedPart[F]] = field(default_factory=list)
    current: ReceivedPart[F] | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_size: int = 0
    header_name: bytes = b""
    header_value: bytes = b""
    ended: bool = False
    count: int = 0


async def read_parts(
    chunks: AsyncIterable[bytes],
    content_type: str | None,
    *,
    spool_bytes: int = SPOOL_BYTES,
    max_part_bytes: int | None = None,
    max_parts: int | None = None,
    spool_dir: str | None = None,
) -> AsyncGenerator[ReceivedPart[IO[bytes]], None]:
    """:func:`read_parts_into` spooled files (in memory up to ``spool_bytes``, then in
    ``spool_dir``), each rewound to its start when yielded."""

    def spooled() -> IO[bytes]:
        return tempfile.SpooledTemporaryFile(spool_bytes, dir=spool_dir)  # noqa: SIM115

    parts = read_parts_into(
        chunks, content_type, spooled, max_part_bytes=max_part_bytes, max_parts=max_parts
    )
    async with contextlib.aclosing(parts):
        async for part in parts:
            part.file.seek(0)
            yield part


async def read_parts_into(
    chunks: AsyncIterable[bytes],
    content_type: str | None,
    open_file: Callable[[], F],
    *,
    max_part_bytes: int | None = None,
    max_parts: int | None = None,
) -> AsyncGenerator[ReceivedPart[F], None]:
    """Yield the parts of a ``multipart/related`` body as each one completes, its bytes
    written into a file from ``open_file()`` (one per part, written from a worker thread).

    Errors (:class:`BadRequest` for a malformed or unfinished body,
    :class:`PayloadTooLarge` for a part over ``max_part_bytes`` or more than
    ``max_parts`` parts) close every part not yet yielded.
    """
    boundary = parse_content_type(content_type).boundary
    state: _State[F] = _State()
    events: list[tuple[str, Any]] = []
    parser = MultipartParser(boundary, _callbacks(events, state))  # type: ignore[arg-type]
    head = bytearray()
    started = False
    try:
        async for chunk in chunks:
            if not started:
                head += chunk
                body = _after_preamble(head, boundary)
                if body is None:
                    continue
                started, chunk = True, body
            _write(parser, chunk)
            await _apply(events, state, open_file, max_part_bytes, max_parts)
            while state.parts_done:  # popped one by one: the rest stay ours to close
                yield state.parts_done.pop(0)
        if not started:
            raise BadRequest(f"the body holds no part: no boundary --{boundary.decode()} found")
        parser.finalize()
        await _apply(events, state, open_file, max_part_bytes, max_parts)
        if not state.ended:
            raise BadRequest(
                f"the multipart body ends without its closing boundary --{boundary.decode()}--"
                " (was the upload cut short?)"
            )
        while state.parts_done:
            yield state.parts_done.pop(0)
    finally:
        for part in state.parts_done:
            part.close()
        if state.current is not None:
            state.current.close()


def _after_preamble(head: bytearray, boundary: bytes) -> bytes | None:
    """The body from its first boundary on, once found; None while more is needed."""
    marker = b"--" + boundary
    if head.startswith(marker):
        return bytes(head)
    at = head.find(b"\r\n" + marker)
    if at >= 0:
        return bytes(head[at + 2 :])
    if len(head) > _PREAMBLE_LIMIT:
        raise BadRequest(f"no boundary --{boundary.decode()} in the first {_PREAMBLE_LIMIT} bytes")
    return None


def _write(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except Exception as exc:  # python-multipart raises its own error types
        raise BadRequest(f"the multipart body is malformed ({exc})") from None


def _callbacks(events: list[tuple[str, Any]], state: _State[Any]) -> dict[str, Any]:
    def header_field(data: bytes, start: int, end: int) -> None:
        state.header_name += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def header_end() -> None:
        events.append(("header", (state.header_name, state.header_value)))
        state.header_name, state.header_value = b"", b""

    return {
        "on_part_begin": lambda: events.append(("begin", None)),
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
        "on_part_data": lambda d, s, e: events.append(("data", bytes(d[s:e]))),
        "on_part_end": lambda: events.append(("end", None)),
        "on_end": lambda: events.append(("finished", None)),
    }


async def _apply(
    events: list[tuple[str, Any]],
    state: _State[F],
    open_file: Callable[[], F],
    max_part_bytes: int | None,
    max_parts: int | None,
) -> None:
    queue = events[:]
    events.clear()
    for kind, value in queue:
        if kind == "begin":
            state.count += 1
            if max_parts is not None and state.count > max_parts:
                raise PayloadTooLarge(f"the body holds more than {max_parts} parts")
            # closed by ReceivedPart.close, by the caller or by read_parts on an error
            state.current = ReceivedPart(state.count, {}, open_file())
        elif kind == "header" and state.current is not None:
            name, text = value
            state.current.headers[name.decode("latin-1").strip().lower()] = text.decode(
                "latin-1"
            ).strip()
        elif kind == "data" and state.current is not None:
            state.current.size += len(value)
            if max_part_bytes is not None and state.current.size > max_part_bytes:
                raise PayloadTooLarge(
                    f"part {state.current.number} is larger than {max_part_bytes} bytes"
                )
            state.pending.append(value)
            state.pending_size += len(value)
            if state.pending_size >= _WRITE_BATCH:
                await _flush(state)
        elif kind == "end" and state.current is not None:
            _write_rest(state)
            state.parts_done.append(state.current)
            state.current = None
        elif kind == "finished":
            state.ended = True
    if state.pending_size >= _WRITE_BATCH:
        await _flush(state)


async def _flush(state: _State[Any]) -> None:
    """Write the part's pending bytes (a batch of :data:`_WRITE_BATCH`) from a thread."""
    if state.current is None or not state.pending:
        return
    data = b"".join(state.pending)
    state.pending, state.pending_size = [], 0
    await anyio.to_thread.run_sync(state.current.file.write, data)  # may be a disk write


def _write_rest(state: _State[Any]) -> None:
    """Write a finished part's last bytes, less than a batch, here: handing them to a
    thread cost more than writing them (into the page cache or memory)."""
    if state.current is not None and state.pending:
        data = b"".join(state.pending)
        state.pending, state.pending_size = [], 0
        state.current.file.write(data)


# --- writing -------------------------------------------------------------------------


def new_boundary() -> str:
    """A boundary that cannot occur in DICOM data by chance (a random UUID)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class OutgoingPart:
    """One part of a response: its Content-Type and its bytes (or chunks of them)."""

    content_type: str
    body: bytes | Iterable[bytes]
    location: str | None = None  # Content-Location, e.g. the instance's URL
    length: int | None = None  # Content-Length of a body given as chunks, when known


def multipart_body(parts: Iterable[OutgoingPart], boundary: str) -> Iterator[bytes]:
    """The body of a ``multipart/related`` response, part by part, closing boundary last."""
    for part in parts:
        yield from _part_chunks(part, boundary)
    yield f"--{boundary}--\r\n".encode("ascii")


async def amultipart_body(
    parts: AsyncIterable[OutgoingPart], boundary: str
) -> AsyncIterator[bytes]:
    """:func:`multipart_body` for parts produced asynchronously (e.g. read in a thread)."""
    async for part in parts:
        for chunk in _part_chunks(part, boundary):
            yield chunk
    yield f"--{boundary}--\r\n".encode("ascii")


def _part_chunks(part: OutgoingPart, boundary: str) -> Iterator[bytes]:
    yield _part_head(part, boundary)
    if isinstance(part.body, bytes | bytearray | memoryview):
        yield bytes(part.body)
    else:
        yield from part.body
    yield b"\r\n"


def _part_head(part: OutgoingPart, boundary: str) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {part.content_type}"]
    if isinstance(part.body, bytes | bytearray | memoryview):
        lines.append(f"Content-Length: {len(part.body)}")
    elif part.length is not None:
        lines.append(f"Content-Length: {part.length}")
    if part.location is not None:
        lines.append(f"Content-Location: {part.location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

"""The files of a WADO-RS ``multipart/related`` answer, split out as the answer arrives.

Our own, beside :mod:`segmap.server.dicomweb.multipart` (python-multipart, for bodies
sent to segmap): an archive's answer is read here chunk by chunk from httpx and each
part handed on as soon as its closing delimiter has come, holding only the part being
received, with nothing but the boundary to know.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from segmap.server.archive.errors import ArchiveAnswerError


def split_multipart(content_type: str, body: bytes) -> Iterator[bytes]:
    """The bodies of a ``multipart/related`` answer held whole, in order."""
    return iter_multipart(content_type, (body,))


def iter_multipart(content_type: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The bodies of a ``multipart/related`` answer arriving in ``chunks``, each yielded
    once its closing delimiter has arrived; only the part being received is held.

    A part is what lies between two delimiters (CRLF ``--boundary``, RFC 2046 §5.1.1;
    the first may open the body without the CRLF), less its header lines. A body that
    ends without the closing delimiter gives what it holds of its last part.
    """
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ArchiveAnswerError(
            f"the WADO-RS answer is {content_type or 'untyped'}, "
            "not multipart/related with a boundary"
        )
    delimiter = b"\r\n--" + match.group(1).encode("latin-1")
    buffer = bytearray(b"\r\n")  # so that a delimiter opening the body is found too
    in_part = False  # past the first delimiter: the buffer starts with a part
    scan = 0  # where the next delimiter may start (what comes before was searched)
    for chunk in chunks:
        buffer += chunk
        while (at := buffer.find(delimiter, scan)) >= 0:
            after = at + len(delimiter)
            if len(buffer) < after + 2:
                scan = at  # whether it closes the body ("--") is still to come
                break
            if in_part and (body := _part_body(buffer, at)) is not None:
                yield body
            if buffer[after : after + 2] == b"--":
                return
            del buffer[:after]  # the part's headers start with the rest of this line
            in_part, scan = True, 0
        else:
            scan = max(scan, len(buffer) - len(delimiter) + 1)
    if in_part:
        end = len(buffer) - 2 if buffer.endswith(b"\r\n") else len(buffer)
        if (body := _part_body(buffer, end)) is not None:
            yield body


def _part_body(buffer: bytearray, end: int) -> bytes | None:
    """The bytes after a part's header lines up to ``end``; None without a blank line."""
    head_end = buffer.find(b"\r\n\r\n", 0, end)
    return None if head_end < 0 else bytes(buffer[head_end + 4 : end])

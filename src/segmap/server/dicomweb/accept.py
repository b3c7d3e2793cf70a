"""WADO-RS content negotiation: an Accept header and a stored instance → what to send.

The Accept header is parsed here (RFC 9110 §12.5.1 lists of media ranges with quoted or
unquoted parameters and q-values; nothing in segmap's stack parses Accept lists with
DICOM's ``type`` and ``transfer-syntax`` parameters). Ranges are tried best q first, in
the order given among equals; the first one segmap can satisfy wins, else a 406 says
what was asked and what can be sent.

Rules (PS3.18 §8.7, Tables 8.7.3-2..5):

- Frames and pixel bulk data: ``application/octet-stream`` without ``transfer-syntax``
  means uncompressed Explicit VR Little Endian (decoded if stored compressed);
  ``transfer-syntax=*`` means "as stored" (native frames are always sent little
  endian); an ``image/jls``-style type gets the stored bytes when the stored syntax is
  that type's (its default syntax when none is named). No compressed-to-compressed
  transcoding. ``*/*`` or no Accept: the default, uncompressed.
- Instances (``application/dicom``): sent as stored when no transfer syntax, ``*`` or
  the stored one is asked for. PS3.18 makes Explicit VR Little Endian the default when
  none is named; segmap deliberately keeps the stored bytes instead (OHIF asks without
  one and reads any syntax), and transcodes only when Explicit VR Little Endian is named.
- Metadata: DICOM JSON (``application/dicom+json``, also ``application/json``); XML is
  not offered. Rendered: PNG by default, JPEG when asked.

``type`` and ``transfer-syntax`` are read whether quoted or not (OHIF sends both forms).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from pydicom.uid import UID

from segmap.server.dicomweb.errors import BadRequest, NotAcceptable

UNCOMPRESSED = "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
_NATIVE = {"1.2.840.10008.1.2", UNCOMPRESSED, "1.2.840.10008.1.2.2"}
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
OCTET_STREAM = "application/octet-stream"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"

COMPRESSED_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.50",
                   "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "image/x-dicom-rle": ("1.2.840.10008.1.2.5",),  # the name before PS3.18 2019
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                   "1.2.840.10008.1.2.4.203"),
}  # fmt: skip
"""Media types of compressed frames and their transfer syntaxes, the default first."""

_RANGE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*")


class Resource(enum.Enum):
    """What is being retrieved."""

    INSTANCES = "instances"  # study, series or instance: Part-10 files
    FRAMES = "frames"
    BULKDATA = "bulkdata"  # a non-pixel bulk value (pixel bulk data negotiates as FRAMES)
    METADATA = "metadata"
    RENDERED = "rendered"


@dataclass(frozen=True)
class MediaRange:
    """One element of an Accept header."""

    media_type: str  # lower case, e.g. "multipart/related", "*/*"
    params: dict[str, str] = field(default_factory=dict)  # names lower case, values unquoted
    q: float = 1.0


@dataclass(frozen=True)
class Choice:
    """What to send: the media type of the body (or of each part when ``multipart``)."""

    media_type: str
    transfer_syntax: str | None
    multipart: bool
    transcode: bool = False  # the stored bytes must be decoded or converted first

    @property
    def part_content_type(self) -> str:
        """``Content-Type`` of the body, or of each part of a multipart body."""
        if self.transfer_syntax is None:
            return self.media_type
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"

    def content_type(self, boundary: str | None = None) -> str:
        """The response's ``Content-Type`` header (``boundary`` for multipart)."""
        if not self.multipart:
            return self.part_content_type
        ts = f"; transfer-syntax={self.transfer_syntax}" if self.transfer_syntax else ""
        return f'multipart/related; type="{self.media_type}"{ts}; boundary={boundary}'


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, best q first; none given means ``*/*``."""
    if header is None or not header.strip():
        return [MediaRange("*/*")]
    ranges = []
    for index, text in enumerate(_split(header, ",")):
        if not text.strip():
            continue
        head, *parameters = _split(text, ";")
        media_type = head.strip().lower()
        if not _RANGE.fullmatch(media_type):
            raise BadRequest(f"Accept: {head.strip()!r} is not a media type")
        params: dict[str, str] = {}
        for parameter in parameters:
            name, value = _parameter(parameter, header)
            params[name] = value
        q = _quality(params.pop("q", "1"), header)
        ranges.append((q, index, MediaRange(media_type, params, q)))
    ranges.sort(key=lambda item: (-item[0], item[1]))
    return [r for q, _, r in ranges if q > 0]


def negotiate(
    accept: str | None,
    resource: Resource,
    *,
    stored_syntax: str | None = None,
    can_transcode: bool = True,
) -> Choice:
    """Choose what to send for ``resource``; :class:`NotAcceptable` when nothing fits.

    ``stored_syntax`` is the instance's transfer syntax (for INSTANCES and FRAMES);
    ``can_transcode`` whether the caller can decode (frames) or re-encode (instances).
    """
    ranges = parse_accept(accept)
    for r in ranges:
        choice = _choose(r, resource, stored_syntax, can_transcode)
        if choice is not None:
            return choice
    asked = accept if accept else "(none)"
    raise NotAcceptable(f"cannot send {resource.value} as asked (Accept: {asked}); "
                        + _offer(resource, stored_syntax, can_transcode))  # fmt: skip


def _choose(r: MediaRange, resource: Resource, stored: str | None, can: bool) -> Choice | None:
    multipart = r.media_type == "multipart/related"
    inner = r.params.get("type", "").lower() if multipart else r.media_type
    ts = r.params.get("transfer-syntax")
    if resource is Resource.METADATA:
        ok = inner in ("", DICOM_JSON, "application/json", "application/*", "*/*")
        return Choice(DICOM_JSON, None, False) if ok and not multipart else None
    if resource is Resource.RENDERED:
        if inner in ("image/png", "image/*", "*/*"):
            return Choice("image/png", None, False)
        return Choice("image/jpeg", None, False) if inner == "image/jpeg" else None
    if r.media_type == "*/*":
        inner, multipart = "", True
    elif multipart and inner == "*/*":  # dicomweb-client's default: any type of part
        inner = ""
    if resource is Resource.INSTANCES:
        return _instance(inner or DICOM, ts, multipart, stored, can)
    if resource is Resource.BULKDATA:
        ok = inner in ("", OCTET_STREAM) and ts in (None, "*", UNCOMPRESSED)
        return Choice(OCTET_STREAM, None, multipart) if ok else None
    return _frames(inner or OCTET_STREAM, ts, multipart, stored, can)


def _instance(
    inner: str, ts: str | None, multipart: bool, stored: str | None, can: bool
) -> Choice | None:
    if inner != DICOM or stored is None:
        return None
    if ts in (None, "*", stored):
        return Choice(DICOM, stored, multipart)
    if ts == UNCOMPRESSED and can:
        return Choice(DICOM, UNCOMPRESSED, multipart, transcode=True)
    return None


def _frames(
    inner: str, ts: str | None, multipart: bool, stored: str | None, can: bool
) -> Choice | None:
    if stored is None:
        return None
    native = stored in _NATIVE
    if inner == OCTET_STREAM:
        if native and ts in (None, "*", UNCOMPRESSED):
            return Choice(OCTET_STREAM, UNCOMPRESSED, multipart, transcode=stored == _BIG_ENDIAN)
        if not native and ts in ("*", stored):
            return Choice(OCTET_STREAM, stored, multipart)
        if not native and ts in (None, UNCOMPRESSED) and can:
            return Choice(OCTET_STREAM, UNCOMPRESSED, multipart, transcode=True)
        return None
    if inner == "image/*":
        media = _media_type_of(stored)
        return Choice(media, stored, multipart) if media and ts in (None, "*", stored) else None
    syntaxes = COMPRESSED_MEDIA_TYPES.get(inner)
    if not syntaxes or stored not in syntaxes:
        return None
    if ts == "*" or ts == stored or (ts is None and stored == syntaxes[0]):
        return Choice(inner, stored, multipart)
    return None


def _media_type_of(syntax: str) -> str | None:
    return next((m for m, s in COMPRESSED_MEDIA_TYPES.items() if syntax in s), None)


def _offer(resource: Resource, stored: str | None, can: bool) -> str:
    if resource is Resource.METADATA:
        return "metadata is sent as application/dicom+json"
    if resource is Resource.RENDERED:
        return "rendered images are sent as image/png or image/jpeg"
    if resource is Resource.BULKDATA:
        return "bulk data is sent as application/octet-stream"
    name = f"{UID(stored).name} ({stored})" if stored else "unknown"
    if resource is Resource.INSTANCES:
        extra = f" or transfer-syntax={UNCOMPRESSED}" if can and stored != UNCOMPRESSED else ""
        return f"instances are sent as application/dicom as stored, {name}{extra}"
    if stored in _NATIVE:
        return f"these frames are sent as {OCTET_STREAM}; transfer-syntax={UNCOMPRESSED}"
    media = _media_type_of(stored or "") or OCTET_STREAM
    uncompressed = f", or decoded ({OCTET_STREAM}; transfer-syntax={UNCOMPRESSED})" if can else ""
    return f"these frames are stored as {name}: sent as stored ({media}){uncompressed}"


def _split(text: str, separator: str) -> list[str]:
    """Split at ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise BadRequest(f"Accept: unbalanced quotes in {text!r}")
    parts.append("".join(current))
    return parts


def _parameter(text: str, header: str) -> tuple[str, str]:
    match = _TOKEN.match(text)
    if match is None:
        raise BadRequest(f"Accept: {text.strip()!r} is not a name=value parameter in {header!r}")
    value = text[match.end() :].strip()
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return match.group(1).lower(), value


def _quality(text: str, header: str) -> float:
    try:
        q = float(text)
    except ValueError:
        q = -1.0
    if not 0.0 <= q <= 1.0:
        raise BadRequest(f"Accept: q={text!r} is not a number from 0 to 1 in {header!r}")
    return q

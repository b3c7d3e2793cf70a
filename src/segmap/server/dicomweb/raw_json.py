"""DICOM JSON (PS3.18 Annex F) of one element, read straight from its raw value bytes.

Why our own, beside pydicom's ``DataElement.to_json_dict``: pydicom encodes an element
only after converting its raw bytes into its value types (``PersonName``, ``DSfloat``,
``IS``, ``UID``, ``MultiValue``), each one validated on the way. For the hundred-odd
small elements of an image header that conversion was most of the DICOM JSON's cost,
which the index makes for every stored instance (:mod:`.stored_metadata`): about a
third of STOW-RS's CPU per CT slice. The JSON needs none of those objects, so
:func:`element_json` reads the common cases from the bytes directly, following the
rules pydicom applies when it reads a value (``pydicom.values``: which padding is
dropped, how multiple values split, how numbers parse), so the output is pydicom's.

It answers ``None`` — the caller then uses pydicom's encoder — for everything it does
not read exactly as pydicom would: an element pydicom has already converted, a value
left unread (``defer_size``), implicit VR whose dictionary VR is ambiguous or unknown,
``UN`` (pydicom may replace it with the dictionary's VR), sequences, big endian, a
Specific Character Set other than the default repertoire, Latin-1 or UTF-8 for the
text VRs it affects, person names with ideographic or phonetic groups, an empty value
among several, numbers that do not parse. Tests compare the two encoders, element by
element, on real and generated files.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

JsonElement = dict[str, Any]

_CHARSETS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
"""Python codec of each Specific Character Set handled here (pydicom's default
repertoire is decoded as Latin-1, ``iso8859``, as are ASCII values)."""

_STRINGS = frozenset({"AS", "CS", "DA", "DT", "TM"})  # pydicom.values.convert_string
_TEXTS = frozenset({"SH", "LO", "UC"})  # convert_text: character set, each value rstripped
_SINGLE_TEXTS = frozenset({"ST", "LT", "UT"})  # convert_single_string: no splitting
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_SKIP = object()  # a value this module leaves to pydicom


def character_set_codec(specific_character_set: object) -> str | None:
    """The codec for text values under ``specific_character_set`` (the (0008,0005)
    value, or None when absent); None when this module leaves such text to pydicom."""
    if specific_character_set is None:
        return _CHARSETS[""]
    if isinstance(specific_character_set, str):
        return _CHARSETS.get(specific_character_set.strip())
    return None  # several values: code extensions, pydicom's business


def element_json(element: object, codec: str | None) -> JsonElement | None:
    """The DICOM JSON of ``element`` if it is a raw element read here (module doc), with
    text decoded by ``codec`` (:func:`character_set_codec`); else None.

    Binary values are always written inline: the caller decides beforehand which ones
    are bulk data.
    """
    if not isinstance(element, RawDataElement) or not element.is_little_endian:
        return None
    vr = element.VR or _implicit_vr(element.tag)
    data = element.value
    if vr is None or data is None:
        return None
    if not data:
        return {"vr": vr} if vr in _NUMBERS or vr in _READERS or vr in _BINARY else None
    if vr in _BINARY:
        return {"vr": vr, "InlineBinary": base64.b64encode(data).decode("ascii")}
    if vr in _NUMBERS:
        return _numbers(vr, data)
    reader = _READERS.get(vr)
    if reader is None:
        return None
    if vr in _TEXTS or vr in _SINGLE_TEXTS or vr == "PN":
        if codec is None:
            return None
        value = reader(data, codec)
    else:
        value = reader(data, "latin_1")
    if value is _SKIP:
        return None
    return {"vr": vr, "Value": value} if value else {"vr": vr}


def _implicit_vr(tag: int) -> str | None:
    if tag >> 16 & 1:  # private: pydicom looks at the private creator
        return None
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return None if " or " in vr else vr


def _numbers(vr: str, data: bytes) -> JsonElement | None:
    code = _NUMBERS[vr]
    size = struct.calcsize(code)
    if len(data) % size:
        return None
    return {"vr": vr, "Value": list(struct.unpack(f"<{len(data) // size}{code}", data))}


def _decoded(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _split(text: str) -> list[str] | None:
    """pydicom's ``multi_string``: trailing spaces and NULs off the whole, then split;
    None when there is no value or an empty one among several."""
    items = text.rstrip(" \x00").split("\\")
    if items == [""]:
        return []
    return None if "" in items else items


def _strings(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    items = None if text is None else _split(text)
    return _SKIP if items is None else items


def _ui(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    items = None if text is None else _split(text.rstrip("\x00 "))
    return _SKIP if items is None else items


def _ae(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    if text is None:
        return _SKIP
    items = [item.strip() for item in text.split("\\")]
    if items == [""]:
        return []
    return _SKIP if "" in items else items


def _ds(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    items = None if text is None else _split(text.strip())
    if items is None:
        return _SKIP
    try:
        numbers = [float(item) for item in items]
    except ValueError:
        return _SKIP
    if not all(math.isfinite(n) for n in numbers):
        return _SKIP  # not a DS value; what pydicom makes of it is its own
    return numbers


def _is(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    items = None if text is None else _split(text)
    if items is None or not all(_INTEGER.fullmatch(item) for item in items):
        return _SKIP
    return [int(item) for item in items]


def _texts(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    if text is None:
        return _SKIP
    items = [item.rstrip("\x00 ") for item in text.split("\\")]
    if items == [""]:
        return []
    return _SKIP if "" in items else items


def _single_text(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    if text is None:
        return _SKIP
    text = text.rstrip("\x00 ")
    return [text] if text else []


def _ur(data: bytes, codec: str) -> Any:
    text = _decoded(data, codec)
    if text is None:
        return _SKIP
    text = text.rstrip()
    return [text] if text else []


def _pn(data: bytes, codec: str) -> Any:
    if b"=" in data:
        return _SKIP  # ideographic or phonetic groups: pydicom decodes each group
    text = _decoded(data.rstrip(b"\x00 "), codec)
    if text is None:
        return _SKIP
    items = text.split("\\")
    if items == [""]:
        return []
    if "" in items:
        return _SKIP
    return [{"Alphabetic": item} for item in items]


def _at(data: bytes, codec: str) -> Any:
    if len(data) % 4:
        return _SKIP
    halves = struct.unpack(f"<{len(data) // 2}H", data)
    return [f"{halves[i]:04X}{halves[i + 1]:04X}" for i in range(0, len(halves), 2)]


_READERS = {
    **dict.fromkeys(_STRINGS, _strings),
    **dict.fromkeys(_TEXTS, _texts),
    **dict.fromkeys(_SINGLE_TEXTS, _single_text),
    "AE": _ae,
    "UI": _ui,
    "DS": _ds,
    "IS": _is,
    "UR": _ur,
    "PN": _pn,
    "AT": _at,
}

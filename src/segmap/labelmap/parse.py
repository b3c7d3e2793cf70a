"""Reading ``region2MaskValueMap.txt``: from text, from bytes (uploads) and from a file."""

from __future__ import annotations

import os
from pathlib import Path

from segmap.labelmap.model import Region, RegionMap
from segmap.labelmap.problems import MapProblem, RegionMapError, RegionMapFileError
from segmap.labelmap.rules import (
    duplicate_problems,
    invisible_character,
    label_problem,
    parse_value,
)

# A map of all 65535 values with long labels stays under 8 MB; anything larger is
# certainly some other file given by mistake, and reading it whole would waste memory.
MAX_MAP_BYTES = 8 * 1024 * 1024

_MAP = "region map"
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_NO_REGIONS = "the file has no region lines; write one Label=Value line per region, e.g. Liver=10"


def _split_lines(text: str) -> list[str]:
    # Only LF, CRLF and (for old Mac files with no LF at all) CR end a line:
    # str.splitlines() would also split at U+2028, U+0085 and others a label may hold.
    if "\n" not in text:
        return text.split("\r")
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def parse_region_map(text: str, *, source: str = "<text>") -> RegionMap:
    """Parse region map text (rules in ``docs/region-map.md``).

    Args:
        text: the whole file as text; a leading BOM is ignored.
        source: how problems name the input (usually the file path).

    Raises:
        RegionMapError: listing every problem found, each with its 1-based line.
    """
    text = text.removeprefix("\ufeff")
    problems: list[MapProblem] = []
    regions: list[Region] = []
    labelled: list[tuple[int, str]] = []  # (line, label) of lines whose label is valid
    raw_of: list[str] = []
    saw_region_line = False
    for number, raw in enumerate(_split_lines(text), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        saw_region_line = True
        if message := invisible_character(raw):
            problems.append(MapProblem(number, raw, message))
            continue
        if "=" not in raw:
            problems.append(MapProblem(number, raw, _no_equals_message(stripped)))
            continue
        label_text, _, value_text = raw.rpartition("=")
        label = label_text.strip()
        if message := label_problem(label):
            problems.append(MapProblem(number, raw, message))
        else:
            labelled.append((number, label))
            raw_of.append(raw)
        value, message = parse_value(value_text.strip())
        if message:
            problems.append(MapProblem(number, raw, message))
        elif value is not None and not label_problem(label):
            regions.append(Region(label, value, number))
    for index, message in duplicate_problems(labelled).items():
        problems.append(MapProblem(labelled[index][0], raw_of[index], message))
    if not saw_region_line:
        problems.append(MapProblem(0, "", _NO_REGIONS))
    if problems:
        problems.sort(key=lambda p: p.line)
        raise RegionMapError(problems, source=source)
    return RegionMap(tuple(regions))


def _no_equals_message(stripped: str) -> str:
    hint = 'a region line is Label=Value, e.g. Liver=10; start a comment line with "#"'
    for separator in (":", "\t", ",", ";"):
        if separator in stripped:
            return f'there is no "=" (found "{separator}" instead?); {hint}'
    return f'there is no "="; {hint}'


def decode_text(data: bytes, *, source: str, what: str = _MAP) -> str:
    """The text of a small UTF-8 file, BOM removed.

    Raises:
        RegionMapFileError: empty, UTF-16, binary (a NUL byte) or not UTF-8; one sentence
            naming ``source`` and saying what to do.
    """
    if len(data) > MAX_MAP_BYTES and what == _MAP:
        raise RegionMapFileError(
            f"{source} is {len(data)} bytes, too large to be a {what} "
            f"(limit {MAX_MAP_BYTES} bytes)",
            source,
        )
    if data.startswith(_UTF16_BOMS):
        raise RegionMapFileError(
            f"{source} is saved as UTF-16; save it again as UTF-8 text", source
        )
    body = data.removeprefix(_UTF8_BOM)
    if not body.strip():
        hint = "; a region map needs one Label=Value line per region" if what == _MAP else ""
        raise RegionMapFileError(f"{source} is empty{hint}", source)
    if b"\x00" in body:
        raise RegionMapFileError(f"{source} is a binary file, not a {what} text file", source)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise RegionMapFileError(
            f"{source} is not UTF-8 text (undecodable byte 0x{body[exc.start]:02X} on line "
            f"{line}); save it again as UTF-8",
            source,
        ) from None


def decode_region_map_bytes(data: bytes, *, source: str) -> RegionMap:
    """Decode the bytes of an uploaded or read file and parse them.

    Accepts UTF-8 with or without a BOM. Refuses, with one sentence naming ``source``:
    an empty file, UTF-16 (Windows "Unicode"), a binary file (any NUL byte) and bytes
    that are not UTF-8.

    Raises:
        RegionMapFileError: the bytes are not a text file at all.
        RegionMapError: the text breaks the region map rules.
    """
    return parse_region_map(decode_text(data, source=source), source=source)


def read_region_map(path: str | os.PathLike[str]) -> RegionMap:
    """Read and parse a region map file.

    Raises:
        RegionMapFileError: the path is missing, a folder, unreadable, too large,
            binary, not UTF-8 or empty (one sentence naming the path).
        RegionMapError: the text breaks the region map rules.
    """
    return parse_region_map(read_text_file(path), source=os.fspath(path))


def read_text_file(
    path: str | os.PathLike[str], *, what: str = _MAP, limit: int = MAX_MAP_BYTES
) -> str:
    """The text of a small UTF-8 file (BOM removed), every failure one sentence.

    Raises:
        RegionMapFileError: missing, a folder, unreadable, too large, empty, binary or
            not UTF-8.
    """
    name = os.fspath(path)
    return decode_text(read_small_file(Path(name), limit, what=what), source=name, what=what)


def read_small_file(path: Path, limit: int, *, what: str) -> bytes:
    """Read a whole file no larger than ``limit`` bytes, turning OS errors into sentences.

    Raises:
        RegionMapFileError: missing, a folder, unreadable or larger than ``limit``.
    """
    name = str(path)
    try:
        if path.is_dir():
            raise RegionMapFileError(f"{name} is a folder, not a {what} file", name)
        size = path.stat().st_size
        if size > limit:
            raise RegionMapFileError(
                f"{name} is {size} bytes, too large to be a {what} (limit {limit} bytes)", name
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise RegionMapFileError(f"{name} does not exist", name) from None
    except PermissionError:
        raise RegionMapFileError(f"{name} cannot be read: permission denied", name) from None
    except OSError as exc:
        raise RegionMapFileError(f"{name} cannot be read: {exc.strerror or exc}", name) from None

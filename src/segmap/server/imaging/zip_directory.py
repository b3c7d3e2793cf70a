"""How many entries a zip archive lists, counted with bounded reads before it is opened.

``zipfile.ZipFile`` reads the whole central directory into ``ZipInfo`` objects as it
opens an archive, so its memory grows with whatever the archive lists. The count is
checked here first: the end record is found in the archive's last 64 KiB (zip64 end
records followed), the directory's size is capped, and then its records are walked one
by one — their number, not the end record's claim, is what counts — stopping at the first
past the limit. Layout: PKWARE APPNOTE 6.3, sections 4.3.12-4.3.16.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_END = struct.Struct("<4sHHHHLLH")  # end of central directory record
_END_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator
_LOCATOR_SIG = b"PK\x06\x07"
_END64 = struct.Struct("<4sQHHLLQQQQ")  # zip64 end of central directory record
_END64_SIG = b"PK\x06\x06"
_RECORD = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header
_RECORD_SIG = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF
# Directory bytes allowed per entry: a record is 46 bytes plus its name, extra fields
# and comment, about 100-200 bytes from ordinary zip tools.
DIRECTORY_BYTES_PER_ENTRY = 1024


class ZipDirectoryError(Exception):
    """The archive cannot be opened within the limits; ``str()`` is the reason for the user."""


def check_directory(fp: BinaryIO, size: int, max_entries: int) -> int:
    """Count the entries ``fp`` (a zip of ``size`` bytes) lists; raise past ``max_entries``.

    Raises :class:`ZipDirectoryError` when the archive lists more entries than allowed,
    when its directory is larger than ``max_entries`` records may be, or when no end
    record is found. Returns the count.
    """
    claimed, directory_size, directory_start = _directory_of(fp, size)
    if claimed > max_entries:
        raise ZipDirectoryError(_too_many(max_entries, f"{claimed} entries"))
    allowed = max(1024 * 1024, max_entries * DIRECTORY_BYTES_PER_ENTRY)
    if directory_size > allowed:
        raise ZipDirectoryError(
            f"the zip's directory is {directory_size} bytes, more than {allowed} bytes "
            f"({max_entries} entries with names of ordinary length); split it into several "
            "uploads"
        )
    fp.seek(directory_start)
    count, walked = 0, 0
    while walked + _RECORD.size <= directory_size:
        record = fp.read(_RECORD.size)
        if len(record) < _RECORD.size or record[:4] != _RECORD_SIG:
            break  # zipfile reports the damage when it opens the archive
        fields = _RECORD.unpack(record)
        walked += _RECORD.size + fields[12] + fields[13] + fields[14]  # name, extra, comment
        fp.seek(fields[12] + fields[13] + fields[14], 1)
        count += 1
        if count > max_entries:
            raise ZipDirectoryError(_too_many(max_entries, f"more than {max_entries} entries"))
    return count


def _too_many(limit: int, found: str) -> str:
    return (
        f"the zip lists {found}, more than the limit of {limit} files and folders per "
        "archive; split it into several uploads"
    )


def _directory_of(fp: BinaryIO, size: int) -> tuple[int, int, int]:
    """(entries claimed, directory size, directory start) as ``zipfile`` will read them."""
    tail_size = min(size, _END.size + _MAX_COMMENT)
    fp.seek(size - tail_size)
    tail = fp.read(tail_size)
    at = len(tail) - _END.size
    if tail[at : at + 4] != _END_SIG:  # not at the very end: there is a comment
        at = tail.rfind(_END_SIG)
    if at < 0 or at + _END.size > len(tail):
        raise ZipDirectoryError(
            "not a readable zip archive (no end of central directory record); zip the files again"
        )
    end_at = size - tail_size + at
    _sig, _disk, _disk_dir, _here, total, dir_size, dir_offset, _comment = _END.unpack(
        tail[at : at + _END.size]
    )
    records_end = end_at
    if total == 0xFFFF or 0xFFFFFFFF in (dir_size, dir_offset):
        total, dir_size, records_end = _zip64_directory(fp, end_at)
    start = records_end - dir_size
    if start < 0:
        raise ZipDirectoryError(
            "not a readable zip archive (its directory lies outside the file); zip the files again"
        )
    return total, dir_size, start


def _zip64_directory(fp: BinaryIO, end_at: int) -> tuple[int, int, int]:
    locator_at = end_at - _LOCATOR.size
    record_at = locator_at - _END64.size
    if record_at < 0:
        raise ZipDirectoryError("not a readable zip archive (zip64 end record missing)")
    fp.seek(record_at)
    record = fp.read(_END64.size)
    locator = fp.read(_LOCATOR.size)
    if record[:4] != _END64_SIG or locator[:4] != _LOCATOR_SIG:
        raise ZipDirectoryError("not a readable zip archive (zip64 end record missing)")
    fields = _END64.unpack(record)
    total, dir_size = fields[7], fields[8]
    return total, dir_size, record_at

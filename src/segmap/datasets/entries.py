"""The files of an exported dataset, before they are written anywhere.

A layout is a list of :class:`Entry`: an archive path and either a source file used as it
is (hard-linked or copied, checked against its SHA-256 as it is read), or a function that
generates the bytes (a JSON file, a relabelled mask). Writers (:mod:`.folder`,
:mod:`.zipstream`) take the list in order; nothing in it depends on the time or the
machine, so the same manifest gives the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from segmap.datasets.errors import DatasetError
from segmap.datasets.manifest import FileRecord
from segmap.labelmap.formats.jsonfile import dump_json

CHUNK = 1 << 20
"""Bytes read or written at a time (1 MiB)."""

Writer = Callable[[IO[bytes]], None]
Resolver = Callable[[FileRecord], Path]
"""Where the file a manifest records can be read now (a batch tree, a frozen store)."""


@dataclass(frozen=True)
class Entry:
    """One file (or folder) of an exported dataset.

    Attributes:
        path: ``/``-separated path inside the dataset's folder.
        source: a file taken as it is; its expected ``sha256`` is checked while reading.
        write: generates the bytes instead (exactly one of ``source`` and ``write``,
            neither for a folder).
        size_hint: an upper bound of the entry's size in bytes (decides ZIP64).
        compress: deflate it in a zip (text) rather than store it (gzip already).
        is_dir: a folder entry (an empty folder a layout wants present).
    """

    path: str
    source: Path | None = None
    sha256: str = ""
    write: Writer | None = None
    size_hint: int = 0
    compress: bool = False
    is_dir: bool = False


def file_entry(path: str, record: FileRecord, resolve: Resolver) -> Entry:
    """An entry taking the recorded file as it is."""
    return Entry(path, source=resolve(record), sha256=record.sha256, size_hint=record.bytes)


def json_entry(path: str, data: Any) -> Entry:
    """An entry holding ``data`` as indented UTF-8 JSON."""
    blob = dump_json(data).encode("utf-8")
    return bytes_entry(path, blob, compress=True)


def bytes_entry(path: str, blob: bytes, *, compress: bool) -> Entry:
    """An entry holding ``blob``."""

    def write(out: IO[bytes]) -> None:
        out.write(blob)

    return Entry(path, write=write, size_hint=len(blob), compress=compress)


def dir_entry(path: str) -> Entry:
    """An (empty) folder entry."""
    return Entry(path.rstrip("/") + "/", is_dir=True)


def copy_checked(entry: Entry, out: IO[bytes]) -> int:
    """Copy ``entry.source`` to ``out`` in chunks, checking its SHA-256; returns bytes.

    Raises:
        DatasetError: the file is missing or no longer what was frozen.
    """
    assert entry.source is not None
    h = hashlib.sha256()
    n = 0
    try:
        with open(entry.source, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
                out.write(block)
                n += len(block)
    except FileNotFoundError:
        raise missing(entry) from None
    if h.hexdigest() != entry.sha256:
        raise changed(entry)
    return n


def missing(entry: Entry) -> DatasetError:
    """The error for a source file that is gone."""
    return DatasetError(
        f"{entry.source}: missing; the dataset was frozen from it (for "
        f"{entry.path}); freeze the dataset again, or export it from a "
        "frozen copy (segmap dataset freeze)"
    )


def changed(entry: Entry) -> DatasetError:
    """The error for a source file whose bytes are not the frozen ones."""
    return DatasetError(
        f"{entry.source}: changed since the dataset was frozen (its SHA-256 "
        f"is not {entry.sha256[:12]}..., for {entry.path}); the same dataset "
        "cannot be exported from it again: freeze it again, or export from "
        "a frozen copy (segmap dataset freeze)"
    )


def check_sources(entries: Iterable[Entry]) -> None:
    """Check every source file's SHA-256 before writing anything (reads each once).

    Raises:
        DatasetError: a source is missing or changed.
    """
    for e in entries:
        if e.source is None:
            continue
        h = hashlib.sha256()
        try:
            with open(e.source, "rb") as f:
                while block := f.read(CHUNK):
                    h.update(block)
        except FileNotFoundError:
            raise missing(e) from None
        if h.hexdigest() != e.sha256:
            raise changed(e)

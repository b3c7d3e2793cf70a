"""What the DICOMweb index keeps of one instance, made from its header once.

An :class:`IndexEntry` holds everything :mod:`.index` writes for an instance — the
matching columns and stored attributes of its study, series and instance levels, its
DICOM JSON (:mod:`.stored_metadata`), transfer syntax, frame count and frame offsets
(:func:`segmap.imaging.frame_index.index_frames_of`) — computed from one parsed
dataset and no database. So it can be made outside the storing transaction: STOW-RS
makes it while the request body is still arriving, from the same parse that checks the
instance, and the transaction only adds rows. It depends on the file's bytes alone (not
on where the file is kept), so entries are looked up by the file's SHA-256.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset

from segmap.imaging.frame_index import FrameIndexError, NoPixelData, index_frames_of
from segmap.server.dicomweb.columns import level_values
from segmap.server.dicomweb.dicomjson import (
    BULK_DATA_THRESHOLD,
    JsonObject,
    level_record,
    level_records,
)
from segmap.server.dicomweb.levels import Level
from segmap.server.dicomweb.stored_metadata import metadata_text, stored_json

log = logging.getLogger("segmap.server.dicomweb")

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


@dataclass(frozen=True)
class IndexEntry:
    """The index rows' content for one instance (see the module doc)."""

    sop_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    number_of_frames: int
    values: dict[Level, dict[str, Any]]  # column name -> value, per level
    records: dict[Level, JsonObject]  # the stored attributes, per level
    metadata_json: str | None
    frame_index: bytes | None
    frames_refusal: str | None


def read_dataset(fp: BinaryIO) -> Dataset:
    """The dataset of an instance as the index reads it (large values left unread)."""
    return pydicom.dcmread(fp, defer_size=BULK_DATA_THRESHOLD)


def index_entry(ds: Dataset, fp: BinaryIO) -> IndexEntry:
    """The entry of ``ds``, read from ``fp`` by :func:`read_dataset` (its Pixel Data not
    accessed: its recorded position locates the frames). Reads ``fp`` only for that."""
    sop_uid = str(ds.get("SOPInstanceUID", ""))
    full = _metadata(ds, sop_uid)
    records = level_records(full) if full is not None else _records(ds)
    try:
        frame_index: bytes | None = index_frames_of(ds, fp).to_bytes()
        refusal = None
    except NoPixelData:
        frame_index, refusal = None, "the instance has no Pixel Data, so no frames"
    except FrameIndexError as exc:
        frame_index = None
        refusal = str(exc).replace(str(getattr(fp, "name", "")), "the instance")
    return IndexEntry(
        sop_instance_uid=sop_uid,
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        transfer_syntax_uid=_transfer_syntax(ds),
        number_of_frames=_frames(ds),
        values={level: level_values(records[level], level) for level in Level},
        records=records,
        metadata_json=metadata_text(full) if full is not None else None,
        frame_index=frame_index,
        frames_refusal=refusal,
    )


def read_index_entry(fp: BinaryIO) -> IndexEntry:
    """:func:`index_entry` of the file open at ``fp`` (read from its start)."""
    return index_entry(read_dataset(fp), fp)


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(uid) if uid else IMPLICIT_VR_LITTLE_ENDIAN


def _frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _metadata(ds: Dataset, sop_uid: str) -> JsonObject | None:
    try:
        return stored_json(ds)
    except Exception:  # pydicom's JSON encoder raises many types on odd values
        log.warning("no stored metadata for %s; it will be built from the file", sop_uid)
        return None


def _records(ds: Dataset) -> dict[Level, JsonObject]:
    """The level records when the whole JSON could not be made (fewer attributes)."""
    return {level: level_record(ds, level) for level in Level}

"""DICOM JSON (PS3.18 Annex F) of instances for WADO-RS metadata and of QIDO results.

Each element is encoded by pydicom's :meth:`DataElement.to_json_dict`; what is ours is
the walk: sequences are descended here so that each bulk value gets a URI naming its
place (:mod:`.bulkdata`), which pydicom's handler (given the element only) cannot know.

Bulk data: Pixel Data, Float and Double Float Pixel Data are always a ``BulkDataURI``.
Other binary values (OB, OD, OF, OL, OV, OW, UN) become one when longer than
:data:`BULK_DATA_THRESHOLD` bytes, else ``InlineBinary``. A dataset read with
``defer_size`` keeps its large values unread: their length decides without loading them.

QIDO: :func:`level_record` takes, from one instance, the attributes the index keeps for a
level (:data:`.levels.STORED`); :func:`qido_result` joins the records of a result's levels,
adds what the index computes (counts, ModalitiesInStudy, RetrieveURL, Instance
Availability) and keeps the attributes the query returns. Keys are in tag order, as
Annex F.2.2 requires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from segmap.server.dicomweb.bulkdata import BulkPath, bulk_uri
from segmap.server.dicomweb.levels import (
    MODALITIES_IN_STUDY,
    RETRIEVE_URL,
    STORED,
    Level,
)
from segmap.server.dicomweb.raw_json import character_set_codec, element_json

BULK_DATA_THRESHOLD = 1024
"""Binary values longer than this many bytes are sent as a BulkDataURI."""

INSTANCE_AVAILABILITY = 0x00080056
SPECIFIC_CHARACTER_SET = 0x00080005
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})

JsonObject = dict[str, Any]
_STORED_KEYS = {level: tuple(f"{tag:08X}" for tag in tags) for level, tags in STORED.items()}
UriFor = Callable[[BulkPath], str]


def instance_metadata(ds: Dataset, instance_url: str) -> JsonObject:
    """The full DICOM JSON of an instance, its bulk values as URIs under ``instance_url``."""
    return dataset_json(ds, lambda path: bulk_uri(instance_url, path))


def dataset_json(
    ds: Dataset, uri_for: UriFor, prefix: BulkPath = (), codec: str | None = None
) -> JsonObject:
    """DICOM JSON of ``ds``; ``uri_for(path)`` names each bulk value (see :mod:`.bulkdata`).

    ``codec`` is the text codec of the enclosing dataset (:func:`.raw_json.character_set_codec`)
    for a sequence item without a Specific Character Set of its own.
    """
    out: JsonObject = {}
    if prefix == () or SPECIFIC_CHARACTER_SET in ds:
        codec = character_set_codec(ds.get("SpecificCharacterSet"))
    for tag in sorted(map(int, ds.keys())):  # keys: iterating a Dataset reads deferred values
        if tag & 0xFFFF == 0 or tag >> 16 == 0x0002:
            continue  # group lengths are never encoded (F.2.2); file meta is not the dataset
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None:
            continue
        vr = _vr_of(raw, tag, ds)
        path = (*prefix, tag)
        if tag in PIXEL_DATA_TAGS or (vr in _BINARY_VRS and _length(raw) > BULK_DATA_THRESHOLD):
            out[f"{tag:08X}"] = {"vr": vr, "BulkDataURI": uri_for(path)}
            continue
        fast = element_json(raw, codec)
        if fast is not None:
            out[f"{tag:08X}"] = fast
            continue
        element = ds[tag]
        if element.VR == "SQ":
            items = [
                dataset_json(item, uri_for, (*path, i), codec)
                for i, item in enumerate(element.value)
            ]
            out[f"{tag:08X}"] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        else:  # small binary values inline: no handler, so pydicom never makes a URI
            out[f"{tag:08X}"] = element.to_json_dict(None, 0)
    return out


def level_record(ds: Dataset, level: Level) -> JsonObject:
    """The attributes of ``level`` that the index stores, taken from one instance."""
    present = Dataset()
    for tag in STORED[level]:
        if tag in ds:
            present[tag] = ds[tag]
    return dataset_json(present, _no_bulk)


def level_records(full: JsonObject) -> dict[Level, JsonObject]:
    """:func:`level_record` of every level, taken from the instance's whole DICOM JSON
    (:func:`dataset_json`) instead of from its dataset again."""
    return {
        level: {key: full[key] for key in _STORED_KEYS[level] if key in full} for level in Level
    }


def qido_result(
    records: Sequence[Mapping[str, Any]],
    tags: Iterable[int] | None,
    *,
    retrieve_url: str | None = None,
    counts: Mapping[int, int] | None = None,
    modalities: Sequence[str] | None = None,
) -> JsonObject:
    """One QIDO result: ``records`` (study, series, instance, as far as the level goes)
    merged, the computed attributes added, reduced to ``tags`` (``None``: all of them).

    ``counts`` maps NumberOf…Related… tags to their values; ``modalities`` gives
    ModalitiesInStudy. Instance Availability is ``ONLINE``: what segmap holds, it serves.
    """
    merged: JsonObject = {}
    for record in records:
        merged.update(record)
    merged[f"{INSTANCE_AVAILABILITY:08X}"] = {"vr": "CS", "Value": ["ONLINE"]}
    if retrieve_url is not None:
        merged[f"{RETRIEVE_URL:08X}"] = {"vr": "UR", "Value": [retrieve_url]}
    for tag, count in (counts or {}).items():
        merged[f"{tag:08X}"] = {"vr": "IS", "Value": [int(count)]}
    if modalities is not None:
        merged[f"{MODALITIES_IN_STUDY:08X}"] = (
            {"vr": "CS", "Value": sorted(set(modalities))} if modalities else {"vr": "CS"}
        )
    if tags is None:
        return {key: merged[key] for key in sorted(merged)}
    wanted = {f"{t:08X}" for t in tags}
    return {key: merged[key] for key in sorted(merged) if key in wanted}


def _no_bulk(path: BulkPath) -> str:
    raise ValueError(f"index records hold no bulk values ({path})")


def _vr_of(raw: DataElement | RawDataElement, tag: int, ds: Dataset) -> str:
    vr = raw.VR
    if vr is None:  # implicit VR, not yet converted: the dictionary's, made definite
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN"
    if tag in PIXEL_DATA_TAGS and " or " in vr:
        # PS3.5 A.1: Pixel Data in Implicit VR Little Endian is OW; encapsulated is OB
        undefined = isinstance(raw, RawDataElement) and raw.length == 0xFFFFFFFF
        return "OB" if undefined else "OW"
    return str(vr)


def _length(raw: DataElement | RawDataElement) -> int:
    if isinstance(raw, RawDataElement):
        return int(raw.length) if raw.length != 0xFFFFFFFF else BULK_DATA_THRESHOLD + 1
    value = raw.value
    return len(value) if isinstance(value, bytes | bytearray) else 0

"""An instance's DICOM JSON made once at store time, and given its URLs when served.

WADO-RS metadata of a series is every instance's full DICOM JSON; building it from the
files on each request would parse every header of the series. Instead the index keeps
each instance's JSON text (:func:`metadata_text`), with every Bulk Data URI written as
the bulk path alone (``"BulkDataURI":"7FE00010"``), and :func:`with_urls` puts the
instance's URL in front when it is served (``{instance URL}/bulk/7FE00010``, the form
:mod:`.bulkdata` defines).

Why a plain text replacement is safe: the text is compact JSON, and the sequence
``"BulkDataURI":"`` can only occur there as that key — inside a JSON string every ``"``
is escaped as ``\\"``, so no value can contain it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydicom.dataset import Dataset

from segmap.server.dicomweb.bulkdata import bulk_path_text
from segmap.server.dicomweb.dicomjson import JsonObject, dataset_json

_KEY = '"BulkDataURI":"'


def stored_json(ds: Dataset) -> JsonObject:
    """The DICOM JSON of ``ds``, Bulk Data URIs as bare bulk paths.

    ``ds`` may have been read with ``defer_size`` (large values stay unread).
    """
    return dataset_json(ds, bulk_path_text)


def metadata_text(stored: JsonObject) -> str:
    """:func:`stored_json`'s output as the compact text the index keeps."""
    return json.dumps(stored, separators=(",", ":"))


def with_urls(text: str, instance_url: str) -> str:
    """:func:`metadata_text`'s output with each Bulk Data URI under ``instance_url``."""
    return text.replace(_KEY, f"{_KEY}{instance_url.rstrip('/')}/bulk/")


def json_array(items: Iterable[str]) -> Iterable[str]:
    """The chunks of a JSON array of already serialised items (for a streamed answer)."""
    yield "["
    for i, item in enumerate(items):
        yield item if i == 0 else "," + item
    yield "]"

"""Bulk Data URIs: how segmap names a large value inside an instance, and finding it again.

A Bulk Data URI is ``{instance URL}/bulk/{path}`` where ``path`` is the element's tag as
eight hex digits, preceded for a nested element by each enclosing sequence's tag and the
0-based item index: ``7FE00010`` (Pixel Data), ``00660016/0/00660017`` (an element of the
first item of a sequence). PS3.18 leaves the form of these URIs to the origin server; this
one is readable, and :func:`parse_bulk_path` checks it strictly before anything is read.
"""

from __future__ import annotations

import re

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from segmap.server.dicomweb.errors import BadRequest

BulkPath = tuple[int, ...]
"""Tags and item indices: ``(tag,)`` or ``(sequence tag, item index, …, tag)``."""

_HEX = re.compile(r"[0-9A-Fa-f]{8}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def bulk_path_text(path: BulkPath) -> str:
    """The path as it appears in a URI: tags in hex, item indices in decimal."""
    return "/".join(f"{step:08X}" if i % 2 == 0 else str(step) for i, step in enumerate(path))


def bulk_uri(instance_url: str, path: BulkPath) -> str:
    """The Bulk Data URI of the element at ``path`` of the instance at ``instance_url``."""
    return f"{instance_url.rstrip('/')}/bulk/{bulk_path_text(path)}"


def parse_bulk_path(text: str) -> BulkPath:
    """Read back :func:`bulk_path_text`; a malformed path is a 400 that shows it."""
    steps = text.strip("/").split("/")
    if len(steps) % 2 == 0:
        raise BadRequest(f"bulk data path {text!r} must end with a tag")
    path: list[int] = []
    for i, step in enumerate(steps):
        pattern = _HEX if i % 2 == 0 else _INDEX
        if not pattern.fullmatch(step):
            kind = "a tag (eight hex digits)" if i % 2 == 0 else "an item index"
            raise BadRequest(f"bulk data path {text!r}: {step!r} is not {kind}")
        path.append(int(step, 16) if i % 2 == 0 else int(step))
    return tuple(path)


def find_element(ds: Dataset, path: BulkPath) -> DataElement:
    """The element at ``path`` in ``ds``; ``LookupError`` with a message when absent."""
    current = ds
    for i in range(0, len(path) - 1, 2):
        tag, index = path[i], path[i + 1]
        if tag not in current or current[tag].VR != "SQ":
            raise LookupError(f"the instance has no sequence ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        items = current[tag].value
        if index >= len(items):
            raise LookupError(f"sequence {tag:08X} has {len(items)} item(s), not {index + 1}")
        current = items[index]
    tag = path[-1]
    if tag not in current:
        raise LookupError(f"the instance has no element {bulk_path_text(path)}")
    return current[tag]

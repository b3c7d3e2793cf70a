"""Reading and writing the JSON label formats strictly and readably."""

from __future__ import annotations

import json
from typing import Any

from segmap.labelmap.formats.base import LabelFormatError

# No label value or colour needs more digits; Python's int() refuses strings of over
# 4,300 digits with a bare ValueError, so longer numbers are refused here with a reason.
_MAX_DIGITS = 20


class _NumberTooLong(Exception):
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-").lstrip("0"))
    if digits > _MAX_DIGITS:
        raise _NumberTooLong(digits)
    return int(text)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; a label listed twice is a
    # mistake the user must see.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def load_json(text: str, *, source: str, title: str) -> Any:
    """Parse JSON text, refusing repeated keys.

    Raises:
        LabelFormatError: not JSON (with line and column) or a repeated key.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise LabelFormatError(
            f"{source}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
            f"a {title} file is JSON",
            source,
        ) from None
    except _NumberTooLong as exc:
        raise LabelFormatError(
            f"{source}: a number with {exc.digits} digits is far too large for a label "
            "value (at most 65535); correct it",
            source,
        ) from None
    except _DuplicateKey as exc:
        raise LabelFormatError(
            f'{source}: the key "{exc.key}" appears twice in one JSON object; keep one',
            source,
        ) from None


def dump_json(data: Any) -> str:
    """Indented JSON with non-ASCII labels written as themselves, ending in a newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def labels_object(data: Any, *, source: str, title: str, example: str) -> dict[str, Any]:
    """The ``"labels"`` object of a dataset.json.

    Raises:
        LabelFormatError: no such object.
    """
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict):
        raise LabelFormatError(
            f'{source}: no "labels" object found; a {title} file has one, e.g. {example}',
            source,
        )
    return labels

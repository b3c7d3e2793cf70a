"""Small pydicom helpers shared by the annotation readers: opening files and reading
attributes so that every failure becomes an :class:`AnnotationError` naming the file and
the attribute at fault.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from segmap.errors import AnnotationError
from segmap.imaging.dicomvalues import SLOW, plain_value

_TEXT_VRS = frozenset({"UI", "CS", "DA", "LO", "SH"})


@functools.cache
def _tag(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


@functools.cache
def _text_tag(keyword: str) -> tuple[int, str] | None:
    """(tag, VR) of a keyword whose values :func:`text` may decode itself, else None."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr = dictionary_VR(tag)
    return (tag, vr) if vr in _TEXT_VRS else None


@functools.cache
def describe_tag(keyword: str) -> str:
    """``Keyword (gggg,eeee)`` for messages; the keyword alone when it is not in the dictionary."""
    try:
        t = Tag(keyword)
    except (ValueError, TypeError):
        return keyword
    return f"{keyword} ({t.group:04X},{t.element:04X})"


def open_dataset(path: Path, *, stop_before_pixels: bool, defer_size: int | None = None) -> Dataset:
    """Read a DICOM file, turning every reading failure into an :class:`AnnotationError`.

    ``defer_size`` (bytes) leaves larger values unread, so pixel data can be measured
    without being loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such file; give the path of an RTSTRUCT or SEG file")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
    except InvalidDicomError as e:
        raise AnnotationError(
            f"{path}: not a DICOM file ({e}); give the path of an RTSTRUCT or SEG file"
        ) from e
    except Exception as e:  # pydicom raises many kinds of errors for truncated files
        raise AnnotationError(
            f"{path}: the file is damaged and cannot be read ({type(e).__name__}: {e}); "
            "export the ROI collection again"
        ) from e


@contextmanager
def reading(path: Path, where: str) -> Iterator[None]:
    """Turn any error raised while decoding attributes into an AnnotationError.

    ``where`` names what was being read (``ContourData (3006,0050) of ROI 3, contour 7``).
    pydicom converts values lazily, so a malformed value only fails when accessed.
    """
    try:
        yield
    except AnnotationError:
        raise
    except Exception as e:
        raise AnnotationError(
            f"{path}: cannot read {where}: {type(e).__name__}: {e}; "
            "the file is damaged, export the ROI collection again"
        ) from e


def text(ds: Dataset, keyword: str) -> str:
    """A string attribute stripped, or "" when absent or empty."""
    # Plain values are decoded from the raw bytes: an RTSTRUCT reads two per contour,
    # and pydicom's conversion of them was a third of reading the file.
    tag_vr = _text_tag(keyword)
    if tag_vr is not None:
        plain = plain_value(ds, *tag_vr)
        if plain is None:
            return ""
        if plain is not SLOW:
            return str(plain)
    value = ds.get(keyword)
    if value is None:
        return ""
    return str(value).strip()


def optional_uid(ds: Dataset, keyword: str) -> str | None:
    """A UID attribute, or None when absent or empty."""
    value = text(ds, keyword)
    return value or None


def required(ds: Dataset, keyword: str, path: Path, where: str = "") -> Any:
    """An attribute's value; an AnnotationError naming file and tag when absent or empty."""
    value = ds.get(keyword)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        place = f" in {where}" if where else ""
        raise AnnotationError(
            f"{path}: {describe_tag(keyword)} is missing{place}; the file is incomplete, "
            "export the ROI collection again"
        )
    return value


def items(ds: Dataset, keyword: str) -> list[Dataset]:
    """The items of a sequence attribute, or an empty list when it is absent."""
    # By tag: what ds.get(keyword) does, without looking the keyword up each time.
    tag = _tag(keyword)
    value = ds.get(keyword) if tag is None else ds[tag].value if tag in ds else None
    if value is None:
        return []
    return list(value)


def unique(values: list[str]) -> tuple[str, ...]:
    """Drop empties and duplicates, keeping first-seen order."""
    seen: dict[str, None] = {}
    for v in values:
        if v:
            seen.setdefault(v, None)
    return tuple(seen)

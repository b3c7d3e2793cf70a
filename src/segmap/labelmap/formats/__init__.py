"""Import and export between the region map and other label formats.

One module per format (``monai``, ``nnunet``, ``msd``, ``slicer``, ``itksnap``), each a
:class:`LabelFormat` with ``dump`` and ``load``; what each format can and cannot hold is
in its module docstring and in ``docs/region-map.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from segmap.labelmap.formats import itksnap, monai, msd, nnunet, slicer
from segmap.labelmap.formats.base import Imported, LabelFormat, LabelFormatError
from segmap.labelmap.model import RegionMap
from segmap.labelmap.palette import RGBA
from segmap.labelmap.parse import read_text_file

FORMATS: dict[str, LabelFormat] = {
    f.name: f for f in (monai.FORMAT, nnunet.FORMAT, msd.FORMAT, slicer.FORMAT, itksnap.FORMAT)
}
"""Every format by its command-line name."""


def get_format(name: str) -> LabelFormat:
    """The format called ``name``.

    Raises:
        LabelFormatError: no such format (the message lists the known ones).
    """
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(FORMATS)
        message = f"unknown label format {name!r}; choose one of {known}"
        raise LabelFormatError(message, name) from None


def export_map(region_map: RegionMap, to: str, colours: Mapping[int, RGBA] | None = None) -> str:
    """The text of ``region_map`` in format ``to``; colours by value (palette for the rest)."""
    return get_format(to).dump(region_map, colours or {})


def import_text(text: str, from_: str, *, source: str) -> Imported:
    """Read text in format ``from_``.

    Raises:
        LabelFormatError: the text is not that format.
        RegionMapError: the labels break the region map rules (every problem listed).
    """
    return get_format(from_).load(text, source)


def import_file(path: str | os.PathLike[str], from_: str) -> Imported:
    """Read a file in format ``from_`` (UTF-8, BOM allowed).

    Raises:
        RegionMapFileError: missing, folder, binary, not UTF-8, empty.
        LabelFormatError, RegionMapError: as :func:`import_text`.
    """
    fmt = get_format(from_)
    text = read_text_file(path, what=fmt.title)
    return fmt.load(text, os.fspath(path))


__all__ = [
    "FORMATS",
    "Imported",
    "LabelFormat",
    "LabelFormatError",
    "export_map",
    "get_format",
    "import_file",
    "import_text",
]

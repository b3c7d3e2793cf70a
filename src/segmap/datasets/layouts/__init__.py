"""The three export layouts, by name: ``nnunet`` (nnU-Net v2 raw), ``monai``, ``msd``."""

from __future__ import annotations

from collections.abc import Callable

from segmap.datasets.entries import Resolver
from segmap.datasets.errors import DatasetError
from segmap.datasets.layouts import monai, msd, nnunet
from segmap.datasets.layouts.common import Layout
from segmap.datasets.manifest import Manifest
from segmap.datasets.qa.report import DatasetQA

LayoutFunction = Callable[[Manifest, DatasetQA, Resolver], Layout]

LAYOUTS: dict[str, LayoutFunction] = {
    nnunet.NAME: nnunet.layout,
    monai.NAME: monai.layout,
    msd.NAME: msd.layout,
}
FORMAT_NAMES = tuple(LAYOUTS)


def get_layout(name: str) -> LayoutFunction:
    """The layout called ``name``.

    Raises:
        DatasetError: no such layout (the message lists them).
    """
    try:
        return LAYOUTS[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset format {name!r}; choose one of {', '.join(LAYOUTS)}"
        ) from None


__all__ = ["FORMAT_NAMES", "LAYOUTS", "Layout", "get_layout"]

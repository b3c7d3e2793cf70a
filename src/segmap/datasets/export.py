"""Exporting a frozen dataset in a layout: to a folder, to a zip file, or as a zip stream.

These are the calls the command line and the server make; each takes the frozen dataset,
the layout's name (``nnunet``, ``monai``, ``msd``) and where its files are read from
(:func:`segmap.datasets.store.source_resolver` or a store's resolver).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from segmap.datasets.entries import Resolver
from segmap.datasets.folder import FolderResult, write_folder
from segmap.datasets.freeze import FrozenDataset
from segmap.datasets.layouts import Layout, get_layout
from segmap.datasets.store import source_resolver
from segmap.datasets.zipstream import ZipResult, iter_zip, write_zip


def layout_of(frozen: FrozenDataset, fmt: str, resolve: Resolver = source_resolver) -> Layout:
    """The entries of ``frozen`` in layout ``fmt``.

    Raises:
        DatasetError: unknown format.
    """
    return get_layout(fmt)(frozen.manifest, frozen.qa, resolve)


def export_folder(
    frozen: FrozenDataset,
    fmt: str,
    out_dir: str | Path,
    *,
    resolve: Resolver = source_resolver,
    force: bool = False,
) -> FolderResult:
    """Write the dataset into ``out_dir/<layout folder>`` (e.g. ``Dataset500_Name``)."""
    layout = layout_of(frozen, fmt, resolve)
    return write_folder(layout.entries, layout.root, out_dir, force=force)


def export_zip(
    frozen: FrozenDataset, fmt: str, path: str | Path, *, resolve: Resolver = source_resolver
) -> ZipResult:
    """Write the dataset as the zip file ``path`` (the layout folder inside)."""
    layout = layout_of(frozen, fmt, resolve)
    return write_zip(layout.entries, layout.root, path)


def stream_zip(
    frozen: FrozenDataset, fmt: str, *, resolve: Resolver = source_resolver
) -> tuple[str, Iterator[bytes]]:
    """A download name (``<layout folder>.zip``) and the zip's bytes as they are made."""
    layout = layout_of(frozen, fmt, resolve)
    return f"{layout.root}.zip", iter_zip(layout.entries, layout.root)

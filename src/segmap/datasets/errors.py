"""The error a dataset raises for input a user can fix."""

from __future__ import annotations

from segmap.errors import SegmapError


class DatasetError(SegmapError):
    """A dataset that cannot be frozen or exported as asked (the message says why and what
    to do: which case, which file, which option)."""

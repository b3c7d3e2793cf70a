"""What the composite painter does when regions overlap or names match no map label.

The values are the words the command line and the web form use (``--overlap order``).
"""

from __future__ import annotations

from enum import StrEnum


class OverlapPolicy(StrEnum):
    """Where regions with different values overlap.

    ``ORDER``: paint in region-map order, a later map line wins (the default).
    ``ERROR``: refuse the conversion, naming each overlapping pair and its voxel count.
    Regions sharing a value never conflict: whichever is painted, the voxel gets the same
    value, so their overlaps are reported but never refused.
    """

    ORDER = "order"
    ERROR = "error"


class UnmatchedPolicy(StrEnum):
    """When a region's name matches no map label.

    ``SKIP``: leave it out of the mask and report it with suggestions (the default).
    ``ERROR``: refuse the conversion, naming each such name with its suggestions.
    """

    SKIP = "skip"
    ERROR = "error"

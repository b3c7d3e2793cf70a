"""Exceptions segmap raises for problems a user can act on.

Every message names the file, line or field at fault and says what to do. The command
line prints them as one line and exits 1; the web service answers 4xx with the message.
"""


class SegmapError(Exception):
    """Base class of every error caused by bad input rather than by a bug."""


class AnnotationError(SegmapError):
    """An RTSTRUCT or SEG file that cannot be read or does not fit the image it names."""


class SeriesGeometryError(SegmapError):
    """An image series whose slices do not form one regular grid (the message names them)."""


class SeriesSelectionError(SegmapError):
    """No image series, or several and none chosen, or the requested one is absent."""


class PixelDataError(SegmapError):
    """Pixel data that cannot be decoded or does not fit the series it belongs to."""


class OverlapError(SegmapError):
    """Regions with different values overlap and the overlap policy is ``error``.

    ``pairs`` holds ``(first_label, first_value, second_label, second_value, voxels)``
    per overlapping pair, the first being the earlier line of the region map.
    """

    def __init__(self, message: str, pairs: tuple[tuple[str, int, str, int, int], ...] = ()):
        super().__init__(message)
        self.pairs = pairs


class UnmatchedRegionError(SegmapError):
    """Region names match no map label and the unmatched policy is ``error``.

    ``names`` holds ``(name, suggestions)`` per unmatched name, suggestions best first.
    """

    def __init__(self, message: str, names: tuple[tuple[str, tuple[str, ...]], ...] = ()):
        super().__init__(message)
        self.names = names

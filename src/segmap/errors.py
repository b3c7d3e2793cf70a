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

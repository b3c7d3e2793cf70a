"""Exceptions segmap raises for problems a user can act on.

Every message names the file, line or field at fault and says what to do. The command
line prints them as one line and exits 1; the web service answers 4xx with the message.
"""


class SegmapError(Exception):
    """Base class of every error caused by bad input rather than by a bug."""


class AnnotationError(SegmapError):
    """An RTSTRUCT or SEG file that cannot be read or does not fit the image it names."""

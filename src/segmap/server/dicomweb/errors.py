"""The errors the DICOMweb building blocks raise, each with the HTTP status it means.

They do not depend on the rest of the server, so these modules can be used (and tested)
alone; the routes turn a :class:`DicomwebError` into a JSON answer ``{"detail": message}``
with :attr:`~DicomwebError.status`.
"""

from __future__ import annotations


class DicomwebError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DicomwebError):
    """400: a malformed query key or value, header or body; the message names it."""

    status = 400


class NotAcceptable(DicomwebError):
    """406: nothing the Accept header allows can be sent; the message says what can."""

    status = 406


class PayloadTooLarge(DicomwebError):
    """413: a request body or one of its parts is over the configured limit."""

    status = 413


class UnsupportedMediaType(DicomwebError):
    """415: a request body of a media type the service does not take."""

    status = 415


class NotFoundError(DicomwebError):
    """404: no study, series, instance, frame or bulk value of that name in the project."""

    status = 404

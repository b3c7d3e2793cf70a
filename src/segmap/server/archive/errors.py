"""What can go wrong talking to the lab's archive, in three kinds (see :mod:`.clients`)."""

from __future__ import annotations


class ArchiveError(Exception):
    """Something the archive did or did not do; ``str()`` says what, for people."""


class ArchiveUnavailable(ArchiveError):
    """The archive cannot be reached now (connection, timeout, 5xx): try again later."""


class ArchiveRefused(ArchiveError):
    """The archive refused the credentials (401 or 403)."""


class ArchiveAnswerError(ArchiveError):
    """The archive answered, but not as its protocol says (wrong URL or kind?)."""

"""The grammar of DICOM unique identifiers (PS3.5 §9.1), for refusing malformed UIDs.

A UID is one or more components separated by ``.``; each component is a run of the
digits 0-9 that does not start with 0 unless it is exactly ``0``; the whole is at most
64 characters. Values read by pydicom have their trailing NUL/space padding removed
already. segmap uses UIDs as keys in URLs and storage, so anything else — ``<script>``,
``../../etc``, spaces, letters — is refused rather than stored.
"""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64  # characters (PS3.5 §9.1)
_COMPONENT = re.compile(r"0|[1-9][0-9]*")


def uid_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a UID, as a phrase to follow its name; None if valid.

    For example ``"has a component '01' with a leading zero"``.
    """
    if not value:
        return "is empty"
    if len(value) > MAX_UID_LENGTH:
        return f"is {len(value)} characters long; a UID has at most {MAX_UID_LENGTH}"
    for component in value.split("."):
        if not component:
            return "has an empty component (two dots in a row, or a dot at an end)"
        if not component.isascii() or not component.isdigit():
            bad = next(c for c in component if not ("0" <= c <= "9"))
            return f"holds the character {bad!r}; a UID holds only digits and dots"
        if not _COMPONENT.fullmatch(component):
            return f"has a component {component!r} with a leading zero"
    return None


def is_valid_uid(value: str) -> bool:
    """Whether ``value`` follows the UID grammar (see the module doc)."""
    return uid_problem(value) is None


def describe_uid(value: str) -> str:
    """``value`` shortened and quoted for a message (a hostile value may be long)."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    return repr(shown)

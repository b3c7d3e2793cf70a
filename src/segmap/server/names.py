"""Rules for the names users choose: usernames, project ids, model labels, folders, files."""

from __future__ import annotations

import re
import unicodedata

from segmap.server.errors import Unprocessable

MAX_NAME_BYTES = 255
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def name_key(name: str) -> str:
    """The form two names are compared in: NFC then case-folded.

    Names equal under this key count as the same name (``Map.txt`` and ``map.txt``), which
    keeps folders usable on case-insensitive file systems when downloaded.
    """
    return unicodedata.normalize("NFC", name).casefold()


def check_resource_name(name: str, what: str) -> str:
    """Return ``name`` if it is a safe folder or file name, else raise ``Unprocessable``.

    Refused: empty, ``.``/``..``, ``/`` or ``\\``, control characters, leading or trailing
    spaces, longer than 255 UTF-8 bytes. ``what`` ("file name", "folder name") starts the
    message.
    """
    if name is None or name == "" or not name.strip():
        raise Unprocessable(f"the {what} is empty; give the {what} a name")
    if name in (".", ".."):
        raise Unprocessable(f"the {what} {name!r} is not allowed (it would leave the folder)")
    if "/" in name or "\\" in name:
        raise Unprocessable(
            f"the {what} {name!r} contains a slash; folders cannot be nested and names "
            "cannot point outside their folder"
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise Unprocessable(f"the {what} {name!r} contains control characters")
    if name != name.strip():
        raise Unprocessable(f"the {what} {name!r} starts or ends with a space; remove it")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise Unprocessable(f"the {what} is longer than {MAX_NAME_BYTES} bytes; shorten it")
    return name


def check_project_id(project_id: str) -> str:
    """A project id: 1-64 letters, digits, ``_`` or ``-``, starting with a letter or digit."""
    if not _PROJECT_ID.match(project_id or ""):
        raise Unprocessable(
            f"the project id {project_id!r} is not allowed: use 1 to 64 letters, digits, "
            "'_' or '-', starting with a letter or digit"
        )
    return project_id


def check_username(username: str) -> str:
    """A username: 1-64 letters, digits, ``.``, ``_``, ``@`` or ``-``."""
    if not _USERNAME.match(username or ""):
        raise Unprocessable(
            f"the username {username!r} is not allowed: use 1 to 64 letters, digits, "
            "'.', '_', '@' or '-', starting with a letter or digit"
        )
    return username


def check_model_label(label: str) -> str:
    """A model label: a valid folder name (jobs name output folders after it), not all digits.

    All-digit labels are refused because API paths accept a model's numeric id or its label.
    """
    check_resource_name(label, "model label")
    if len(label) > 128:
        raise Unprocessable("the model label is longer than 128 characters; shorten it")
    if label.isdigit():
        raise Unprocessable(
            f"the model label {label!r} is only digits; add a letter (numbers are model ids)"
        )
    return label

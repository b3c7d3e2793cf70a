"""Rules for the names users choose: usernames, project ids, model labels, folders, files.

Also the rule for references in paths (``{model}``, ``{session}``, ``{scan}``, a job's
id): a numeric id is written with the ASCII digits 0-9 and fits the database's INTEGER
column (1 to 2**31 - 1); anything else that looks like a number (``²``, full-width
``１``, 30 digits) names nothing.
"""

from __future__ import annotations

import re
import unicodedata

from segmap.server.errors import Unprocessable

MAX_NAME_BYTES = 255
MAX_LABEL_CHARS = 128  # model labels: they become output folder names of jobs
MAX_PROJECT_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 4000  # a model's description: a paragraph or two, never a file
# The largest id there can be: ids are INTEGER columns, 32 bits on PostgreSQL (SQLite's
# 64 bits hold more, but one bound for both keeps a URL meaning the same everywhere).
MAX_ID = 2**31 - 1

# fullmatch, never match with "$": "$" also matches before a trailing newline, which let
# "NL1\n" in beside "NL1".
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")

# Unicode categories no name may hold, because they are invisible or change how the
# text around them is shown: control characters (Cc), format characters (Cf: zero-width
# space and joiners, the bidirectional overrides and isolates U+202A-U+202E and
# U+2066-U+2069, the soft hyphen, the byte-order mark), the line and paragraph
# separators U+2028/U+2029 (Zl, Zp) and lone surrogates (Cs).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def name_key(name: str) -> str:
    """The form two names are compared in: NFC then case-folded.

    Names equal under this key count as the same name (``Map.txt`` and ``map.txt``), which
    keeps folders usable on case-insensitive file systems when downloaded. Project ids
    and usernames are compared and looked up this way too.
    """
    return unicodedata.normalize("NFC", name).casefold()


def hidden_character(text: str) -> str | None:
    """The first invisible or layout-changing character in ``text`` as ``U+XXXX``, or None."""
    for ch in text:
        if unicodedata.category(ch) in _HIDDEN_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def check_display_text(
    text: str, what: str, max_chars: int, *, required: bool = True, multiline: bool = False
) -> str:
    """``text`` trimmed, if it may be shown as a name or description; else ``Unprocessable``.

    Refused: empty when ``required``, longer than ``max_chars`` characters, and any
    character of :func:`hidden_character`, except that a ``multiline`` text (a
    description) may hold line breaks and tabs.
    """
    value = (text or "").strip()
    if required and not value:
        raise Unprocessable(f"the {what} is empty; give it a value")
    if len(value) > max_chars:
        raise Unprocessable(f"the {what} is longer than {max_chars} characters; shorten it")
    shown = value
    if multiline:
        shown = shown.replace("\n", "").replace("\r", "").replace("\t", "")
    hidden = hidden_character(shown)
    if hidden is not None:
        raise Unprocessable(
            f"the {what} contains an invisible or text-direction character ({hidden}); retype it"
        )
    return value


def check_resource_name(name: str, what: str) -> str:
    """Return ``name`` if it is a safe folder or file name, else raise ``Unprocessable``.

    Refused: empty, ``.``/``..``, ``/`` or ``\\``, control characters, invisible and
    text-direction characters (zero-width, bidirectional overrides, line and paragraph
    separators), leading or trailing spaces, longer than 255 UTF-8 bytes. ``what``
    ("file name", "folder name") starts the message.
    """
    if name is None or name == "" or not name.strip():
        raise Unprocessable(f"the {what} is empty; give the {what} a name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise Unprocessable(f"the {what} is longer than {MAX_NAME_BYTES} bytes; shorten it")
    if name in (".", ".."):
        raise Unprocessable(f"the {what} {name!r} is not allowed (it would leave the folder)")
    if "/" in name or "\\" in name:
        raise Unprocessable(
            f"the {what} {name!r} contains a slash; folders cannot be nested and names "
            "cannot point outside their folder"
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise Unprocessable(f"the {what} {name!r} contains control characters")
    hidden = hidden_character(name)
    if hidden is not None:
        raise Unprocessable(
            f"the {what} {name!r} contains an invisible or text-direction character "
            f"({hidden}); retype the name"
        )
    if name != name.strip():
        raise Unprocessable(f"the {what} {name!r} starts or ends with a space; remove it")
    return name


def check_project_id(project_id: str) -> str:
    """A project id: 1-64 letters, digits, ``_`` or ``-``, starting with a letter or digit."""
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        raise Unprocessable(
            f"the project id {project_id!r} is not allowed: use 1 to 64 letters, digits, "
            "'_' or '-', starting with a letter or digit"
        )
    return project_id


def check_username(username: str) -> str:
    """A username: 1-64 letters, digits, ``.``, ``_``, ``@`` or ``-``."""
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise Unprocessable(
            f"the username {username!r} is not allowed: use 1 to 64 letters, digits, "
            "'.', '_', '@' or '-', starting with a letter or digit"
        )
    return username


def check_model_label(label: str) -> str:
    """A model label: a valid folder name (jobs name output folders after it), not all digits.

    All-digit labels (any digits, ``²`` too) are refused because API paths accept a
    model's numeric id or its label.
    """
    if isinstance(label, str) and len(label) > MAX_LABEL_CHARS:
        raise Unprocessable(
            f"the model label is longer than {MAX_LABEL_CHARS} characters; shorten it"
        )
    check_resource_name(label, "model label")
    if label.isdigit():
        raise Unprocessable(
            f"the model label {label!r} is only digits; add a letter (numbers are model ids)"
        )
    return label


def numeric_id(text: str) -> int | None:
    """The row id ``text`` is, or None: ASCII digits only, from 1 to ``MAX_ID``.

    Not ``str.isdigit()``/``int()``: those accept ``²`` (then fail) and full-width or
    Arabic-Indic digits (then read them as another id), and ``int()`` reads 4,300 digits
    before refusing. No space or sign is allowed around the digits.
    """
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def looks_numeric(text: str) -> bool:
    """Whether ``text`` is written only with digits of any script (``12``, ``²``, ``１``)."""
    return text.isdigit()


def padding_problem(text: str) -> str | None:
    """Why ``text`` from a URL path cannot be any stored name or UID, or None.

    No stored name has whitespace at its ends or a control character in it.
    """
    if text != text.strip():
        return "it starts or ends with a space or line break, and no name does"
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "it contains control characters, and no name does"
    return None


def reference_problem(text: str, kind: str) -> str | None:
    """Why ``text`` taken from a URL path can name nothing of ``kind``, or None.

    Kinds: ``project`` and ``username`` follow their grammar (:func:`check_project_id`,
    :func:`check_username`); ``id`` is a numeric id or a label/UID that is never all
    digits, so a value written with digits must be a :func:`numeric_id`; ``name`` (folder,
    file and collection names) may be anything :func:`padding_problem` lets through.
    """
    if kind == "project" and not _PROJECT_ID.fullmatch(text):
        return "project ids are 1 to 64 letters, digits, '_' or '-'"
    if kind == "username" and not _USERNAME.fullmatch(text):
        return "usernames are 1 to 64 letters, digits, '.', '_', '@' or '-'"
    if kind == "id" and looks_numeric(text) and numeric_id(text) is None:
        return f"ids are whole numbers from 1 to {MAX_ID}, written with the digits 0-9"
    return None

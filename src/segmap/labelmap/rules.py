"""The rules a region's label and value must follow, shared by the parser and by code.

Each check returns ``None`` when the input is fine, else a sentence for a lab user.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from segmap.labelmap.names import normalise_name
from segmap.labelmap.problems import shorten

MIN_VALUE = 1
MAX_VALUE = 65535  # the largest value a uint16 mask can hold
VALUE_RANGE = f"a whole number from {MIN_VALUE} to {MAX_VALUE}"
# DICOM writes region names as LO (64 characters), so a much longer label can match no
# annotation; the limit leaves room for writers that exceed the standard.
MAX_LABEL_CHARS = 256
_QUOTED = 40  # how much of a label or value a message quotes

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "١٢" and "²"
_NEGATIVE = re.compile(r"-\s*[0-9]+")
_FRACTION = re.compile(r"[+-]?[0-9]*[.,][0-9]+|[+-]?[0-9]+[.,]")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_EXPONENT = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+")


def invisible_character(text: str) -> str | None:
    """A problem sentence if ``text`` holds a character that has no business in a map line.

    Control characters (tab excepted: it is whitespace), the byte-order mark U+FEFF and
    lone surrogates are refused: they are invisible in editors, and a control character
    such as U+001C would otherwise be trimmed away without a word.
    """
    for ch in text:
        category = unicodedata.category(ch)
        if (category == "Cc" and ch != "\t") or ch == "\ufeff":
            return (
                f"the line contains an invisible character (U+{ord(ch):04X}); "
                "retype it in a plain text editor"
            )
        if category == "Cs":
            return f"the line contains an invalid character (U+{ord(ch):04X})"
    return None


def label_problem(label: str) -> str | None:
    """Why ``label`` (already trimmed) cannot name a region, or None."""
    if not label:
        return 'the label before "=" is empty; write the region name, e.g. Liver=10'
    if len(label) > MAX_LABEL_CHARS:
        return (
            f"the label is {len(label)} characters long; region names have at most "
            f"{MAX_LABEL_CHARS} (DICOM allows 64)"
        )
    if label.startswith("#"):
        return 'a label cannot start with "#": the line would be read as a comment'
    found = invisible_character(label)
    if found:
        return found.replace("the line", "the label", 1)
    if not normalise_name(label):
        return "the label has no visible characters"
    return None


def parse_value(text: str) -> tuple[int | None, str | None]:
    """Read a value as written after the last ``=`` (already trimmed).

    Only plain ASCII digits are accepted; leading zeros are allowed and read in base 10
    (``010`` is ten, never octal). Signs, fractions, hexadecimal, exponents and words are
    refused with a sentence saying how to write the value instead.

    Returns:
        ``(value, None)`` when valid, else ``(None, problem sentence)``.
    """
    if not text:
        return None, f'the value after "=" is missing; write {VALUE_RANGE}'
    if _DIGITS.fullmatch(text):
        significant = text.lstrip("0")
        if len(significant) > len(str(MAX_VALUE)):
            # Never int() such a string: past 4,300 digits Python refuses to convert it
            # (ValueError), and long before that the number is plainly too large.
            return None, (
                f"the value ({len(significant)} digits) is too large; the largest region "
                f"value is {MAX_VALUE}"
            )
        value = int(significant or "0")
        problem = value_problem(value)
        return (None, problem) if problem else (value, None)
    shown = shorten(text, _QUOTED)
    if _NEGATIVE.fullmatch(text):
        return None, f"{shown} is negative; a region value is {VALUE_RANGE}"
    if text.startswith("+") and _DIGITS.fullmatch(text[1:]):
        digits = shorten(text[1:], _QUOTED)
        return None, f'"{shown}" has a plus sign; write the number without it ({digits})'
    if _FRACTION.fullmatch(text):
        return None, f"{shown} is not a whole number; a region value is {VALUE_RANGE}"
    if _HEX.fullmatch(text):
        if len(text) <= 10:
            return None, f'"{text}" looks hexadecimal; write the value in base 10 ({int(text, 16)})'
        return None, f'"{shown}" looks hexadecimal; write the value in base 10'
    if _EXPONENT.fullmatch(text):
        return None, f'"{shown}" uses exponent notation; write the value as plain digits'
    if text.isdigit():
        return None, f'"{shown}" uses digits other than 0-9; type the value with 0-9'
    return None, f'"{shown}" is not a number; a region value is {VALUE_RANGE}'


def is_zero(text: str) -> bool:
    """Whether ``text`` writes 0 in ASCII digits (``0``, ``000``), without ``int()``.

    ``int()`` refuses strings of over 4,300 digits with a ValueError, so callers that
    only need to know "is this the background value" ask here.
    """
    return bool(text) and _DIGITS.fullmatch(text) is not None and not text.strip("0")


def small_number(text: str, largest: int) -> int | None:
    """``text`` as an int when it is ASCII digits from 0 to ``largest``, else None."""
    significant = text.lstrip("0")
    if not _DIGITS.fullmatch(text) or len(significant) > len(str(largest)):
        return None
    value = int(significant or "0")
    return value if value <= largest else None


def value_problem(value: int) -> str | None:
    """Why the integer ``value`` cannot be a region's mask value, or None."""
    if isinstance(value, str):
        return f'"{value}" is text; write the value as a number, without quotes'
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{value!r} is not a whole number; a region value is {VALUE_RANGE}"
    if value == 0:
        return "0 is the background value and cannot be assigned to a region"
    if value < 0:
        return f"{value} is negative; a region value is {VALUE_RANGE}"
    if value > MAX_VALUE:
        return f"{value} is too large; the largest region value is {MAX_VALUE}"
    return None


def duplicate_problems(entries: Sequence[tuple[int, str]]) -> dict[int, str]:
    """Labels that repeat an earlier label after normalisation.

    Args:
        entries: ``(line, label)`` in source order, labels already valid.

    Returns:
        ``{index into entries: problem sentence}`` for every repeat (the first use is fine).
    """
    first_seen: dict[str, tuple[int, str]] = {}
    found: dict[int, str] = {}
    for index, (line, label) in enumerate(entries):
        key = normalise_name(label)
        if key not in first_seen:
            first_seen[key] = (line, label)
            continue
        first_line, first_label = first_seen[key]
        where = f"on line {first_line}" if first_line else "earlier"
        written = "" if first_label == label else f' (as "{shorten(first_label, _QUOTED)}")'
        found[index] = (
            f'the label "{shorten(label, _QUOTED)}" is already used {where}{written}; labels '
            "must be unique, ignoring case and spacing"
        )
    return found

"""Plain DICOM values decoded straight from the raw bytes pydicom read, skipping its
value conversion when that conversion cannot change the result.

pydicom turns each raw element into a DataElement holding a ``str`` subclass, a
``DSfloat`` or an ``IS``, validating it on the way: a few microseconds per value, which
adds up to a third of a 300-slice header scan and to half of reading an RTSTRUCT of a
thousand contours. The values segmap reads there are nearly always short plain ASCII,
so :func:`plain_value` decodes them itself -- but only when the bytes are well formed for
their VR, which are exactly the values for which pydicom's conversion gives the same
result and has nothing to warn about. Anything else (several values, odd characters or
padding, a VR other than the dictionary's, an element pydicom already converted, or a
caller who customised pydicom's conversion through its hooks) is answered with
:data:`SLOW`, and the caller asks pydicom as before. pydicom stays the reader of the
file; only the last step, bytes to value, is taken here for the plain cases.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.hooks import hooks
from pydicom.hooks import raw_element_value as _default_raw_element_value
from pydicom.hooks import raw_element_vr as _default_raw_element_vr

SLOW: Final = object()
"""Answer of :func:`plain_value` meaning: not plain, let pydicom convert this element."""

# A value matching these is valid for its VR under pydicom's validation rules, and
# decodes to the same text under every character set pydicom knows (all agree on
# printable ASCII without the backslash and without ESC).
_TEXT = {
    "UI": re.compile(rb"[0-9.]{1,64}"),
    "CS": re.compile(rb"[A-Z0-9 _]{1,16}"),
    "DA": re.compile(rb"[0-9]{8}"),
    "LO": re.compile(rb"[\x20-\x5b\x5d-\x7e]{1,64}"),  # printable ASCII, no backslash
    "SH": re.compile(rb"[\x20-\x5b\x5d-\x7e]{1,16}"),
}
_IS = re.compile(rb" *[+-]?[0-9]{1,9} *")  # at most 9 digits: always a valid 32-bit IS
_DS = re.compile(rb" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *")

PLAIN_VRS: Final = frozenset({*_TEXT, "IS", "DS", "US"})
"""VRs :func:`plain_value` can decode."""


def plain_value(ds: Dataset, tag: int, vr: str) -> Any:
    """The value of element ``tag`` (dictionary VR ``vr``) of ``ds``, decoded from its
    raw bytes; None when the element is absent; :data:`SLOW` when pydicom must convert it.

    Text VRs (UI, CS, DA, LO, SH) give the stripped ``str``, US and IS an ``int``, DS a
    ``tuple`` of floats (one per value). Empty values are :data:`SLOW` too, as pydicom's
    empty value depends on its configuration.
    """
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return None
    if (
        not isinstance(elem, RawDataElement)
        or elem.VR not in (None, vr)
        or not elem.value
        or not _conversion_is_pydicoms_own()
    ):
        return SLOW
    raw: bytes = elem.value
    if vr == "US":
        if len(raw) != 2:
            return SLOW
        return int.from_bytes(raw, "little" if elem.is_little_endian else "big")
    if vr == "DS":
        parts = raw.rstrip(b" \x00").split(b"\\")
        if not all(len(p) <= 16 and _DS.fullmatch(p) for p in parts):
            return SLOW
        return tuple(float(p) for p in parts)
    if vr == "IS":
        raw = raw.rstrip(b" \x00")
        if len(raw) > 12 or not _IS.fullmatch(raw):
            return SLOW
        return int(raw)
    pattern = _TEXT.get(vr)
    raw = raw.rstrip(b" \x00") if vr == "UI" else raw.rstrip(b"\x00")
    if pattern is None or not pattern.fullmatch(raw):
        return SLOW
    return raw.decode("ascii").strip()


def _conversion_is_pydicoms_own() -> bool:
    """False when someone customised how pydicom converts raw values (then let it)."""
    return (
        config.data_element_callback is None
        and hooks.raw_element_value is _default_raw_element_value
        and hooks.raw_element_vr is _default_raw_element_vr
    )

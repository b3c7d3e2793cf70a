"""DICOM JSON read from raw bytes (``dicomweb.raw_json``) is pydicom's DICOM JSON.

The oracle is pydicom's own encoder: the same file's dataset with every element
converted first (so :func:`dataset_json` takes pydicom's path for all of them) must give
the same JSON as the freshly read one, where the common elements take the raw path.
Files: the shared test data and pydicom's own test files (implicit and explicit VR, big
endian, many character sets, private and nested sequences), plus single elements made
for the edge cases of each rule.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from segmap.server.dicomweb.bulkdata import bulk_path_text
from segmap.server.dicomweb.dicomjson import BULK_DATA_THRESHOLD, dataset_json
from segmap.server.dicomweb.raw_json import character_set_codec, element_json


def _files(testdata: Path) -> list[Path]:
    ours = sorted(p for p in testdata.rglob("*.dcm"))
    # the files pydicom ships (get_testdata_files would also try to download others)
    theirs = sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm"))
    return ours + theirs


def _converted(ds: Dataset) -> Dataset:
    """``ds`` with every element, in every sequence item, converted by pydicom."""
    ds.walk(lambda _ds, _element: None)
    return ds


def _read(path: Path) -> Dataset:
    return pydicom.dcmread(path, defer_size=BULK_DATA_THRESHOLD, force=True)


def test_whole_files_encode_as_pydicom_does(testdata: Path) -> None:
    compared = 0
    for path in _files(testdata):
        try:
            expected = dataset_json(_converted(_read(path)), bulk_path_text)
        except Exception:
            # pydicom cannot encode this file at all; the raw path must not hide that
            with pytest.raises(Exception):  # noqa: B017, PT011
                dataset_json(_read(path), bulk_path_text)
            continue
        assert dataset_json(_read(path), bulk_path_text) == expected, path.name
        compared += 1
    assert compared >= 80  # the shared data and pydicom's files: most of them encode


def test_the_raw_path_is_taken_for_an_image_header(testdata: Path) -> None:
    """Without this the comparison above would pass with the raw path never used."""
    ds = _read(next(testdata.glob("rtutils-mim-rtstruct/ct/*.dcm")))
    codec = character_set_codec(ds.get("SpecificCharacterSet"))
    tags = [t for t in ds.keys() if t.element and t.group != 0x7FE0]  # noqa: SIM118 (tags, unconverted)
    fast = [t for t in tags if element_json(ds.get_item(t, keep_deferred=True), codec)]
    assert len(fast) >= 0.9 * len(tags)


def _raw(
    vr: str | None, value: bytes, tag: int = 0x00081030, little: bool = True
) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, vr is None, little)


def _pydicom(raw: RawDataElement, charset: str | None) -> dict[str, object]:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    return convert_raw_data_element(raw, encoding=ds._character_set, ds=ds).to_json_dict(None, 0)


# (VR, raw value, a tag of that VR): padding, several values, empty values, spacing
CASES = [
    ("CS", b"ORIGINAL\\PRIMARY\\AXIAL ", 0x00080008),
    ("CS", b" CT ", 0x00080060),
    ("CS", b"", 0x00080060),
    ("CS", b"  ", 0x00080060),
    ("CS", b"A\\\\B", 0x00080008),
    ("CS", b"A\\", 0x00080008),
    ("DA", b"20201231", 0x00080020),
    ("TM", b"101530.25 ", 0x00080030),
    ("DT", b"20201231101530", 0x0008002A),
    ("AS", b"045Y", 0x00101010),
    ("AE", b" STORESCP ", 0x00020016),
    ("AE", b"A\\ B ", 0x00020016),
    ("UI", b"1.2.840.10008.5.1.4.1.1.2\x00", 0x00080016),
    ("UI", b"1.2.3\\1.2.4\x00", 0x00081150),
    ("DS", b"0.70\\0.70 ", 0x00280030),
    ("DS", b" -12.5e3", 0x00201041),
    ("DS", b"1_0", 0x00201041),
    ("DS", b"nan ", 0x00201041),
    ("DS", b"abc ", 0x00201041),
    ("DS", b"1\\\\2", 0x00280030),
    ("IS", b"12 ", 0x00200013),
    ("IS", b"+7\\-3 ", 0x00200013),
    ("IS", b"1.0 ", 0x00200013),
    ("IS", b"007", 0x00200013),
    ("SH", b"Head \x00", 0x00081030),
    ("LO", b" left\\right ", 0x00081030),
    ("LO", "Röntgen".encode("latin-1"), 0x00081030),
    ("LT", b"one\\line, kept whole  ", 0x00204000),
    ("ST", b"text\x00", 0x00081080),
    ("UT", b"long text \\ with a backslash ", 0x00400280),
    ("UR", b"http://example.org/a  ", 0x00081190),
    ("PN", b"Doe^John ", 0x00100010),
    ("PN", b"Doe^John\\Roe^Jane", 0x00100010),
    ("PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", 0x00100010),
    ("PN", b"", 0x00100010),
    ("US", struct.pack("<H", 512), 0x00280010),
    ("US", struct.pack("<3H", 1, 2, 3), 0x00280010),
    ("SS", struct.pack("<h", -5), 0x00281052),
    ("UL", struct.pack("<I", 2**32 - 1), 0x00081160),
    ("SL", struct.pack("<i", -(2**31)), 0x00186020),
    ("FL", struct.pack("<2f", 0.7, -1.25), 0x00186028),
    ("FD", struct.pack("<d", 1 / 3), 0x00186030),
    ("US", b"\x01\x02\x03", 0x00280010),
    ("AT", struct.pack("<4H", 0x0010, 0x0010, 0x7FE0, 0x0010), 0x00209165),
    ("OB", b"\x00\x01\x02\xff", 0x00091010),
    ("OW", b"\x00\x01\x02\xff", 0x00091010),
    ("UN", b"ABCD", 0x00081030),
    (None, b"Head", 0x00081030),
    (None, b"\x00\x02", 0x00280010),
    (None, b"\x01\x00", 0x00281101),  # implicit 'US or SS': pydicom decides
]


@pytest.mark.parametrize(("vr", "value", "tag"), CASES)
@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 87"])
def test_one_element_encodes_as_pydicom_does(
    vr: str | None, value: bytes, tag: int, charset: str | None
) -> None:
    fast = element_json(_raw(vr, value, tag), character_set_codec(charset))
    try:
        expected = _pydicom(_raw(vr, value, tag), charset)
    except Exception:
        assert fast is None  # what pydicom cannot encode is left to it
        return
    if fast is not None:
        assert fast == expected


def test_common_elements_take_the_raw_path() -> None:
    """The kinds of element a CT header is made of are read here, not handed to pydicom."""
    common = [c for c in CASES if c[1] and c[0] in ("CS", "DA", "TM", "UI", "DS", "IS", "LO",
              "SH", "US", "SS", "FL", "FD", "PN") and b"\\\\" not in c[1] and b"=" not in c[1]
              and not c[1].endswith(b"\\") and c[1].strip() and c[1] not in (b"nan ", b"abc ",
              b"1.0 ", b"\x01\x02\x03")]  # fmt: skip
    assert len(common) >= 20
    for vr, value, tag in common:
        assert element_json(_raw(vr, value, tag), "latin_1") is not None, (vr, value)


def test_what_pydicom_must_decide_is_left_to_it() -> None:
    assert element_json(_raw("UN", b"ABCD"), "latin_1") is None
    assert element_json(_raw(None, b"\x01\x00", 0x00281101), "latin_1") is None
    assert element_json(_raw("SH", b"Head", little=False), "latin_1") is None
    assert element_json(_raw("SH", b"Head"), character_set_codec("ISO 2022 IR 87")) is None
    assert element_json(_raw("PN", b"A^B=C^D", 0x00100010), "latin_1") is None
    assert element_json(_raw("SH", b"\xff\xfe"), "utf_8") is None  # not UTF-8

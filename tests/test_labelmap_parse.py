"""The region map file rules (design: "The region map file — rules"), passing and failing."""

from __future__ import annotations

import numpy as np
import pytest

from segmap.labelmap import (
    MapProblem,
    Region,
    RegionMap,
    RegionMapError,
    RegionMapFileError,
    decode_region_map_bytes,
    parse_region_map,
    read_region_map,
)


def problems_of(text: str) -> list[MapProblem]:
    with pytest.raises(RegionMapError) as info:
        parse_region_map(text, source="map.txt")
    return list(info.value.problems)


def pairs(m: RegionMap) -> list[tuple[str, int]]:
    return [(r.label, r.value) for r in m]


# --- accepted input ---------------------------------------------------------------


def test_plain_map_in_file_order_with_line_numbers() -> None:
    m = parse_region_map("Liver=10\nSpleen=20\n")
    assert pairs(m) == [("Liver", 10), ("Spleen", 20)]
    assert [r.line for r in m] == [1, 2]
    assert len(m) == 2
    assert m.labels == ("Liver", "Spleen")
    assert m.values == (10, 20)


def test_bom_crlf_blank_lines_and_comments() -> None:
    text = "\ufeff# organs for model A\r\n\r\n  # indented comment\r\nLiver=10\r\n\r\nSpleen=20"
    m = parse_region_map(text)
    assert pairs(m) == [("Liver", 10), ("Spleen", 20)]
    assert [r.line for r in m] == [4, 6]


def test_old_mac_line_endings() -> None:
    assert pairs(parse_region_map("Liver=1\rSpleen=2\r")) == [("Liver", 1), ("Spleen", 2)]


def test_split_at_last_equals_and_trimming() -> None:
    m = parse_region_map("  Left Kidney   =  31  \nT=2 = 5\n\tA=B\t=\t7\n")
    assert pairs(m) == [("Left Kidney", 31), ("T=2", 5), ("A=B", 7)]


def test_inner_spaces_kept_verbatim() -> None:
    assert parse_region_map("Left   Kidney=3\n").labels == ("Left   Kidney",)


def test_line_separators_inside_labels_do_not_split_lines() -> None:
    # U+2028 and U+0085 are line breaks to str.splitlines() but not to a map file.
    m = parse_region_map("A\u2028B=1\n")
    assert m.labels == ("A\u2028B",)


def test_leading_zeros_are_base_ten() -> None:
    assert parse_region_map("A=007\nB=010\n").values == (7, 10)


def test_value_limits() -> None:
    assert parse_region_map("A=1\nB=65535\n").values == (1, 65535)


def test_shared_values_allowed_and_reported() -> None:
    m = parse_region_map("Left Kidney=30\nLiver=10\nRight Kidney=30\n")
    assert m.shared_values() == {30: ("Left Kidney", "Right Kidney")}
    assert parse_region_map("A=1\nB=2\n").shared_values() == {}


@pytest.mark.parametrize(
    ("text", "dtype"),
    [("A=1\nB=255\n", np.uint8), ("A=1\nB=256\n", np.uint16), ("A=65535\n", np.uint16)],
)
def test_dtype_follows_largest_value(text: str, dtype: type) -> None:
    assert parse_region_map(text).dtype == np.dtype(dtype)


def test_canonical_text_and_checksum() -> None:
    m = parse_region_map("\ufeff# c\r\n Liver = 010 \r\nLeft Kidney=31\r\n")
    assert m.to_text() == "Liver=10\nLeft Kidney=31\n"
    # sha256("Liver=10\nLeft Kidney=31\n") computed with `printf ... | sha256sum`
    assert m.sha256 == "553d6b89bb5086aef7a5ccf38fdcfe5b448952a012b228e51bdaaf8f361c5a91"
    assert m.to_dict() == {
        "regions": [{"label": "Liver", "value": 10}, {"label": "Left Kidney", "value": 31}],
        "sha256": m.sha256,
        "dtype": "uint8",
    }


def test_equality_ignores_lines_and_comments() -> None:
    a = parse_region_map("# x\n\nLiver=10\n")
    b = parse_region_map("Liver=10\n")
    assert a == b
    assert hash(a) == hash(b)
    assert a != parse_region_map("Liver=11\n")


# --- refused input: every problem, with line number and sentence ----------------------


def test_background_value_message_matches_issue_wording() -> None:
    (p,) = problems_of("Liver=10\nKidney=2\n\nSpleen=0\n")
    assert p.line == 4
    assert str(p) == (
        'line 4: "Spleen=0": 0 is the background value and cannot be assigned to a region'
    )


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("Liver=-3", "negative"),
        ("Liver=2.5", "not a whole number"),
        ("Liver=2.0", "not a whole number"),
        ("Liver=2,5", "not a whole number"),
        ("Liver=ten", "not a number"),
        ("Liver=", "missing"),
        ("Liver=  ", "missing"),
        ("Liver=65536", "too large"),
        ("Liver=99999999999999999999", "too large"),
        ("Liver=+5", "plus sign"),
        ("Liver=0x10", "hexadecimal"),
        ("Liver=1e3", "exponent"),
        ("Liver=1_000", "not a number"),
        ("Liver=1 0", "not a number"),
        ("Liver=\uff11\uff10", "digits other than 0-9"),
        ("=10", 'label before "=" is empty'),
        ("   =10", 'label before "=" is empty'),
        ("Liver 10", 'no "="'),
        ("Liver: 10", 'found ":"'),
        ("Liver\x1c=10", "invisible character (U+001C)"),
        ("Li\ufeffver=10", "invisible character (U+FEFF)"),
    ],
)
def test_bad_lines(line: str, words: str) -> None:
    (p,) = problems_of(f"Spleen=20\n{line}\n")
    assert p.line == 2
    assert p.text == line
    assert words in p.message


def test_duplicates_after_normalisation_point_to_the_first_use() -> None:
    ps = problems_of("Liver=10\nSpleen=20\n  LIVER  =11\nspleen=20\nＬｉｖｅｒ=12\n")
    assert [p.line for p in ps] == [3, 4, 5]
    assert "already used on line 1" in ps[0].message
    assert "already used on line 2" in ps[1].message
    assert "already used on line 1" in ps[2].message


def test_inner_whitespace_difference_is_a_duplicate() -> None:
    (p,) = problems_of("Left Kidney=1\nLeft   kidney=2\n")
    assert p.line == 2


def test_all_problems_reported_at_once_in_line_order() -> None:
    text = "Liver=0\nok=1\nSpleen\n=3\nKidney=-1\nok=4\n"
    ps = problems_of(text)
    assert [p.line for p in ps] == [1, 3, 4, 5, 6]


def test_bad_label_and_bad_value_on_one_line_are_both_reported() -> None:
    ps = problems_of("A=1\n=0\n")
    assert [p.line for p in ps] == [2, 2]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# just a comment\n", "\ufeff#a\r\n#b\r\n"])
def test_map_without_regions_is_refused(text: str) -> None:
    (p,) = problems_of(text)
    assert p.line == 0
    assert "no region lines" in p.message


def test_error_lines_name_file_and_line() -> None:
    with pytest.raises(RegionMapError) as info:
        parse_region_map("A=1\nB=0\n", source="models/a/region2MaskValueMap.txt")
    err = info.value
    assert err.source == "models/a/region2MaskValueMap.txt"
    assert err.lines() == [
        'models/a/region2MaskValueMap.txt:2: "B=0": 0 is the background value and '
        "cannot be assigned to a region"
    ]
    assert str(err) == err.lines()[0]


def test_long_offending_lines_are_shortened_in_messages() -> None:
    (p,) = problems_of("x" * 500 + "\n")
    assert len(p.text) == 500
    assert len(p.detail) < 200


# --- code-built maps follow the same rules -------------------------------------------


def test_from_pairs_validates_like_the_parser() -> None:
    with pytest.raises(RegionMapError) as info:
        RegionMap.from_pairs([("Liver", 10), ("", 2), ("liver", 3), ("Spleen", 0), ("#x", 4)])
    assert [p.line for p in info.value.problems] == [2, 3, 4, 5]
    with pytest.raises(RegionMapError):
        RegionMap.from_pairs([])
    with pytest.raises(RegionMapError):
        RegionMap.from_pairs([("Bool", True)])  # type: ignore[list-item]


def test_from_pairs_trims_and_has_line_zero() -> None:
    m = RegionMap.from_pairs([("  Liver ", 10)])
    assert m.regions == (Region("Liver", 10),)
    assert m.regions[0].line == 0


def test_constructor_validates_too() -> None:
    with pytest.raises(RegionMapError):
        RegionMap((Region("A", 1), Region("a", 2)))
    with pytest.raises(RegionMapError):
        RegionMap(())


# --- bytes and files -----------------------------------------------------------------


def test_bytes_with_bom_decode() -> None:
    m = decode_region_map_bytes(b"\xef\xbb\xbfLeber=1\r\nMilz=2\r\n", source="up.txt")
    assert pairs(m) == [("Leber", 1), ("Milz", 2)]


def test_bytes_utf8_labels() -> None:
    m = decode_region_map_bytes("Rein gauche=1\nNiere rechts ä=2\n".encode(), source="u")
    assert m.labels == ("Rein gauche", "Niere rechts ä")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "is empty"),
        (b"\xef\xbb\xbf", "is empty"),
        (b"  \r\n\n", "is empty"),
        (b"Liver=1\x00\x00", "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"Liver=1\nMilz=2\nLeber \xe4=3\n", "not UTF-8"),
        ("Liver=1\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_bytes_that_are_not_a_text_map(data: bytes, words: str) -> None:
    with pytest.raises(RegionMapFileError) as info:
        decode_region_map_bytes(data, source="upload.txt")
    assert words in str(info.value)
    assert str(info.value).startswith("upload.txt ")
    assert "\n" not in str(info.value)


def test_oversized_upload_is_refused_before_decoding() -> None:
    data = b"Liver=1\n" * (1024 * 1024 + 1)  # just over 8 MiB
    with pytest.raises(RegionMapFileError, match="too large"):
        decode_region_map_bytes(data, source="big.txt")


def test_not_utf8_names_the_line() -> None:
    with pytest.raises(RegionMapFileError, match="on line 3"):
        decode_region_map_bytes(b"Liver=1\nMilz=2\nLeber \xe4=3\n", source="x")


def test_read_file(tmp_path) -> None:
    f = tmp_path / "region2MaskValueMap.txt"
    f.write_bytes(b"Liver=10\r\nSpleen=20\r\n")
    assert pairs(read_region_map(f)) == [("Liver", 10), ("Spleen", 20)]
    assert pairs(read_region_map(str(f))) == [("Liver", 10), ("Spleen", 20)]


def test_read_file_problems_name_the_path(tmp_path) -> None:
    f = tmp_path / "map.txt"
    f.write_text("Liver=0\n")
    with pytest.raises(RegionMapError) as info:
        read_region_map(f)
    assert info.value.lines()[0].startswith(f"{f}:1: ")


def test_read_missing_folder_and_empty(tmp_path) -> None:
    with pytest.raises(RegionMapFileError, match="does not exist"):
        read_region_map(tmp_path / "nope.txt")
    with pytest.raises(RegionMapFileError, match="is a folder"):
        read_region_map(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(RegionMapFileError, match="is empty"):
        read_region_map(empty)

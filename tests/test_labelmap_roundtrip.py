"""parse -> to_text -> parse is the identity, over generated maps (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segmap.labelmap import RegionMap, normalise_name, parse_region_map
from segmap.labelmap.formats import export_map, import_text

# Any character a text file can hold, except control characters (tab aside), surrogates
# and U+FEFF, which the rules refuse; "=", "#", spaces and non-Latin scripts included.
_CHARS = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters="\ufeff",
).filter(lambda c: c == "\t" or not (ord(c) < 32 or 127 <= ord(c) < 160))

_LABEL = (
    st.one_of(
        st.text(_CHARS, min_size=1, max_size=30),
        st.text(st.sampled_from("ab =#\t\u00a0é漢"), min_size=1, max_size=12),
    )
    .map(str.strip)
    .filter(lambda s: bool(s) and not s.startswith("#") and bool(normalise_name(s)))
)

_PAIRS = st.lists(
    st.tuples(_LABEL, st.integers(min_value=1, max_value=65535)),
    min_size=1,
    max_size=25,
    unique_by=lambda p: normalise_name(p[0]),
)


@settings(max_examples=400, deadline=None)
@given(_PAIRS)
def test_parse_write_parse_is_identity(pairs: list[tuple[str, int]]) -> None:
    original = RegionMap.from_pairs(pairs)
    text = original.to_text()
    again = parse_region_map(text)
    assert again == original
    assert [(r.label, r.value) for r in again] == pairs
    assert again.to_text() == text
    assert again.sha256 == original.sha256


@settings(max_examples=200, deadline=None)
@given(_PAIRS, st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_decorated_text_parses_to_the_same_map(
    pairs: list[tuple[str, int]], newline: str, bom: bool
) -> None:
    # The same map written the way people write files: comments, blank lines, padding,
    # leading zeros, CRLF, a BOM.
    lines = ["# generated"]
    for label, value in pairs:
        lines += ["", f"  {label} =  0{value} ", "   # note"]
    text = ("\ufeff" if bom else "") + newline.join(lines)
    assert parse_region_map(text) == RegionMap.from_pairs(pairs)


@settings(max_examples=200, deadline=None)
@given(_PAIRS)
def test_every_label_matches_itself_normalised_and_strict(pairs: list[tuple[str, int]]) -> None:
    m = RegionMap.from_pairs(pairs)
    for region in m:
        assert m.match(region.label, strict=True) == region
        assert m.match(f"  {region.label}\t") == region


# Small value range so that labels often share a value: the hardest case for formats that
# hold one name per value.
_SHARING_PAIRS = st.lists(
    st.tuples(_LABEL, st.one_of(st.integers(1, 6), st.integers(1, 65535))),
    min_size=1,
    max_size=12,
    unique_by=lambda p: normalise_name(p[0]),
)


@settings(max_examples=150, deadline=None)
@given(_SHARING_PAIRS, st.sampled_from(["monai", "nnunet", "msd", "slicer", "itksnap"]))
def test_every_format_round_trips_generated_maps(pairs: list[tuple[str, int]], fmt: str) -> None:
    original = RegionMap.from_pairs(pairs)
    back = import_text(export_map(original, fmt), fmt, source="generated")
    assert [(r.label, r.value) for r in back.region_map] == pairs

"""Matching annotation names to map labels, and suggestions for names that match nothing."""

from __future__ import annotations

import pytest

from segmap.labelmap import RegionMap, normalise_name, parse_region_map

MAP = parse_region_map("Liver=10\nSpleen=20\nLeft Kidney=31\nRight Kidney=32\nPancreas=40\n")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Liver", "liver"),
        ("  Left   Kidney\t", "left kidney"),
        ("LEFT\u00a0KIDNEY", "left kidney"),  # no-break space is whitespace
        ("Ｌｉｖｅｒ", "liver"),  # full-width letters (NFKC)
        ("Straße", "strasse"),  # case-folding, not lower()
        ("ﬁbula", "fibula"),  # ligature (NFKC)
        ("Cafe\u0301", "café"),  # combining accent composes (NFKC)
    ],
)
def test_normalise_name(raw: str, normal: str) -> None:
    assert normalise_name(raw) == normal


@pytest.mark.parametrize("name", ["Liver", "liver", " LIVER ", "Ｌｉｖｅｒ"])
def test_normalised_match(name: str) -> None:
    region = MAP.match(name)
    assert region is not None
    assert (region.label, region.value) == ("Liver", 10)


def test_match_keeps_inner_words_apart() -> None:
    assert MAP.match("left  kidney").label == "Left Kidney"  # type: ignore[union-attr]
    assert MAP.match("leftkidney") is None


def test_strict_match_is_exact() -> None:
    assert MAP.match("Liver", strict=True) is not None
    assert MAP.match("liver", strict=True) is None
    assert MAP.match("Liver ", strict=True) is None


def test_unknown_name() -> None:
    assert MAP.match("Gallbladder") is None


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("Livr", "Liver"),
        ("spleeen", "Spleen"),
        ("Kidney Left", "Left Kidney"),
        ("L Kidney", "Left Kidney"),
        ("pancreas_", "Pancreas"),
    ],
)
def test_suggestions_put_the_obvious_label_first(name: str, first: str) -> None:
    assert MAP.suggest(name)[0] == first


def test_suggestions_respect_limit_and_cutoff() -> None:
    assert set(MAP.suggest("Kidney", limit=2)) == {"Left Kidney", "Right Kidney"}
    assert MAP.suggest("Kidney", limit=1) in (["Left Kidney"], ["Right Kidney"])
    assert MAP.suggest("Heart") == []
    assert MAP.suggest("") == []


def test_suggestions_for_a_big_map_are_labels_of_it() -> None:
    big = RegionMap.from_pairs((f"Structure {i}", i) for i in range(1, 301))
    found = big.suggest("structure 42")
    assert found[0] == "Structure 42"
    assert all(s in big.labels for s in found)

"""The composite painter: map order, unions, shared values, overlaps and both policies.

Every expected array and count below is worked out by hand from voxels listed in the
test, not taken from the painter's output.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmap.errors import OverlapError, SegmapError, UnmatchedRegionError
from segmap.imaging.boxmask import BoxMask
from segmap.labelmap import RegionMap
from segmap.masks import (
    NamedMask,
    OverlapPolicy,
    UnmatchedPolicy,
    paint_composite,
    union_masks,
)

SHAPE = (3, 6, 7)  # (nk, nj, ni)


def mask_of(voxels: list[tuple[int, int, int]], shape: tuple[int, int, int] = SHAPE) -> BoxMask:
    """A BoxMask holding exactly the listed ``(k, j, i)`` voxels."""
    full = np.zeros(shape, dtype=bool)
    for v in voxels:
        full[v] = True
    return BoxMask.from_full(full)


def block(k: range, j: range, i: range) -> list[tuple[int, int, int]]:
    return [(a, b, c) for a in k for b in j for c in i]


# Liver: slices 0-1, rows 1-4, columns 1-5 -> 2 * 4 * 5 = 40 voxels.
LIVER = block(range(0, 2), range(1, 5), range(1, 6))
# Tumour: slice 1, rows 2-3, columns 2-3 -> 4 voxels, all inside the liver.
TUMOUR = block(range(1, 2), range(2, 4), range(2, 4))
# Spleen: slices 1-2, row 4-5, columns 5-6 -> 2 * 2 * 2 = 8 voxels; shares with the liver
# slice 1, row 4, column 5 only -> 1 voxel.
SPLEEN = block(range(1, 3), range(4, 6), range(5, 7))


def test_later_map_line_wins_whatever_the_annotation_order() -> None:
    regions = [NamedMask("Tumour", 7, mask_of(TUMOUR)), NamedMask("Liver", 3, mask_of(LIVER))]
    tumour_last = RegionMap.from_pairs([("Liver", 10), ("Tumour", 20)])
    result = paint_composite(regions, tumour_last)
    expected = np.zeros(SHAPE, dtype=np.uint8)
    for v in LIVER:
        expected[v] = 10
    for v in TUMOUR:
        expected[v] = 20
    assert np.array_equal(result.array, expected)

    liver_last = RegionMap.from_pairs([("Tumour", 20), ("Liver", 10)])
    result = paint_composite(regions, liver_last)
    expected[expected == 20] = 10
    assert np.array_equal(result.array, expected)
    assert not (result.array == 20).any()


def test_region_and_label_records() -> None:
    regions = [
        NamedMask("tumour", 7, mask_of(TUMOUR)),
        NamedMask("LIVER ", 3, mask_of(LIVER)),
        NamedMask("Spleen", 9, mask_of(SPLEEN)),
    ]
    rmap = RegionMap.from_pairs([("Liver", 10), ("Spleen", 30), ("Tumour", 20), ("Kidney", 40)])
    result = paint_composite(regions, rmap)
    by_name = {r.name: r for r in result.regions}
    assert [r.name for r in result.regions] == ["tumour", "LIVER ", "Spleen"]
    # Liver loses the 4 tumour voxels and the 1 voxel shared with the spleen.
    assert (by_name["LIVER "].label, by_name["LIVER "].value) == ("Liver", 10)
    assert (by_name["LIVER "].voxels, by_name["LIVER "].visible_voxels) == (40, 35)
    assert (by_name["tumour"].voxels, by_name["tumour"].visible_voxels) == (4, 4)
    assert (by_name["Spleen"].voxels, by_name["Spleen"].visible_voxels) == (8, 8)
    assert by_name["Spleen"].number == 9
    assert [lab.label for lab in result.labels] == ["Liver", "Spleen", "Tumour", "Kidney"]
    assert [lab.sources for lab in result.labels] == [("LIVER ",), ("Spleen",), ("tumour",), ()]
    assert result.absent_labels == ("Kidney",)
    assert result.labels[3].voxels == 0 and not result.labels[3].present
    assert int(np.count_nonzero(result.array == 10)) == 35
    assert result.array.dtype == np.uint8


def test_overlap_counts_per_pair_by_hand() -> None:
    regions = [
        NamedMask("Liver", 1, mask_of(LIVER)),
        NamedMask("Tumour", 2, mask_of(TUMOUR)),
        NamedMask("Spleen", 3, mask_of(SPLEEN)),
    ]
    rmap = RegionMap.from_pairs([("Liver", 10), ("Tumour", 20), ("Spleen", 30)])
    result = paint_composite(regions, rmap)
    got = {(o.first_label, o.second_label): o.voxels for o in result.overlaps}
    # Tumour and spleen share nothing: tumour columns 2-3, spleen columns 5-6.
    assert got == {("Liver", "Tumour"): 4, ("Liver", "Spleen"): 1}
    assert all(o.conflict for o in result.overlaps)
    assert {o.winner for o in result.overlaps} == {"Tumour", "Spleen"}
    assert result.conflicts == result.overlaps


def test_irregular_masks_overlap_exactly() -> None:
    # Two diagonal lines of voxels in large, mostly empty boxes: the boxes overlap in
    # many voxels but the masks share exactly two of them, (1, 2, 2) and (1, 4, 4).
    a = [(1, n, n) for n in range(6)]
    b = [(1, 2, 2), (1, 4, 4), (1, 0, 5), (1, 5, 0), (2, 3, 3), (0, 1, 1)]
    rmap = RegionMap.from_pairs([("A", 1), ("B", 2)])
    result = paint_composite([NamedMask("A", 1, mask_of(a)), NamedMask("B", 2, mask_of(b))], rmap)
    assert [(o.first_label, o.second_label, o.voxels) for o in result.overlaps] == [("A", "B", 2)]
    assert result.regions[0].visible_voxels == 4


def test_overlap_error_names_the_pairs_and_counts() -> None:
    regions = [
        NamedMask("Liver", 1, mask_of(LIVER)),
        NamedMask("Tumour", 2, mask_of(TUMOUR)),
        NamedMask("Spleen", 3, mask_of(SPLEEN)),
    ]
    rmap = RegionMap.from_pairs([("Liver", 10), ("Tumour", 20), ("Spleen", 30)])
    with pytest.raises(OverlapError) as caught:
        paint_composite(regions, rmap, overlap=OverlapPolicy.ERROR)
    message = str(caught.value)
    assert "'Liver' (value 10) and 'Tumour' (value 20) share 4 voxels" in message
    assert "'Liver' (value 10) and 'Spleen' (value 30) share 1 voxels" in message
    assert set(caught.value.pairs) == {
        ("Liver", 10, "Tumour", 20, 4),
        ("Liver", 10, "Spleen", 30, 1),
    }
    assert isinstance(caught.value, SegmapError)


def test_overlap_error_policy_passes_when_nothing_overlaps() -> None:
    regions = [NamedMask("Tumour", 2, mask_of(TUMOUR)), NamedMask("Spleen", 3, mask_of(SPLEEN))]
    rmap = RegionMap.from_pairs([("Tumour", 20), ("Spleen", 30)])
    result = paint_composite(regions, rmap, overlap="error")
    assert result.overlaps == ()
    assert int(np.count_nonzero(result.array)) == 12


def test_labels_sharing_a_value_merge_and_never_conflict() -> None:
    regions = [
        NamedMask("Left Kidney", 1, mask_of(LIVER)),
        NamedMask("Right Kidney", 2, mask_of(TUMOUR)),
    ]
    rmap = RegionMap.from_pairs([("Right Kidney", 5), ("Left Kidney", 5)])
    result = paint_composite(regions, rmap, overlap=OverlapPolicy.ERROR)
    assert [(o.first_label, o.second_label, o.voxels, o.conflict) for o in result.overlaps] == [
        ("Right Kidney", "Left Kidney", 4, False)
    ]
    assert result.conflicts == ()
    assert int(np.count_nonzero(result.array == 5)) == 40
    assert set(np.unique(result.array)) == {0, 5}
    # Painted over by a label of the same value, the right kidney still shows its value.
    right = next(r for r in result.regions if r.name == "Right Kidney")
    assert right.visible_voxels == 4


def test_several_regions_matching_one_label_are_unioned() -> None:
    # Two ROIs both called liver (different spellings) overlap in the 4 tumour voxels.
    liver_top = block(range(0, 1), range(1, 5), range(1, 6))  # 20 voxels
    liver_part = block(range(1, 2), range(2, 4), range(2, 4))  # 4 voxels
    regions = [
        NamedMask("Liver", 1, mask_of(liver_top)),
        NamedMask(" liver", 2, mask_of(liver_part)),
        NamedMask("liver", 3, mask_of(TUMOUR)),
        NamedMask("Spleen", 4, mask_of(SPLEEN)),
    ]
    rmap = RegionMap.from_pairs([("Spleen", 30), ("Liver", 10)])
    result = paint_composite(regions, rmap, overlap=OverlapPolicy.ERROR)
    assert result.labels[1].sources == ("Liver", " liver", "liver")
    assert result.labels[1].voxels == 24  # 20 + 4; the third ROI repeats the second
    assert result.overlaps == ()  # ROIs of one label do not overlap each other
    assert int(np.count_nonzero(result.array == 10)) == 24
    assert int(np.count_nonzero(result.array == 30)) == 8


def test_unmatched_names_are_skipped_with_suggestions() -> None:
    regions = [
        NamedMask("Livr", 4, mask_of(LIVER)),
        NamedMask("Spleen", 3, mask_of(SPLEEN)),
        NamedMask("Couch", 8, mask_of(TUMOUR)),
    ]
    rmap = RegionMap.from_pairs([("Liver", 10), ("Spleen", 30), ("Lung", 40)])
    result = paint_composite(regions, rmap, unmatched=UnmatchedPolicy.SKIP)
    assert [(u.name, u.number) for u in result.unmatched] == [("Livr", 4), ("Couch", 8)]
    assert result.unmatched[0].suggestions[0] == "Liver"
    assert "Couch" not in [r.name for r in result.regions]
    assert set(np.unique(result.array)) == {0, 30}
    assert result.absent_labels == ("Liver", "Lung")


def test_unmatched_error_names_each_name_and_its_suggestions() -> None:
    regions = [
        NamedMask("Livr", 4, mask_of(LIVER)),
        NamedMask("Spleen", 3, mask_of(SPLEEN)),
        NamedMask("Couch", 8, mask_of(TUMOUR)),
    ]
    rmap = RegionMap.from_pairs([("Liver", 10), ("Spleen", 30)])
    with pytest.raises(UnmatchedRegionError) as caught:
        paint_composite(regions, rmap, unmatched=UnmatchedPolicy.ERROR)
    message = str(caught.value)
    assert "'Livr'" in message and "did you mean 'Liver'" in message
    assert "'Couch'" in message and "'Spleen'" not in message.split("policy is 'error':")[1]
    names = dict(caught.value.names)
    assert set(names) == {"Livr", "Couch"}
    assert names["Livr"][0] == "Liver"


def test_strict_names_compare_exactly() -> None:
    regions = [NamedMask("liver", 1, mask_of(LIVER))]
    rmap = RegionMap.from_pairs([("Liver", 10)])
    assert paint_composite(regions, rmap).regions[0].label == "Liver"
    strict = paint_composite(regions, rmap, strict_names=True)
    assert strict.regions == () and strict.unmatched[0].name == "liver"
    assert not strict.array.any()
    with pytest.raises(UnmatchedRegionError):
        paint_composite(regions, rmap, strict_names=True, unmatched="error")


@pytest.mark.parametrize(("top", "dtype"), [(255, np.uint8), (256, np.uint16), (65535, np.uint16)])
def test_mask_dtype_follows_the_largest_value(top: int, dtype: type) -> None:
    regions = [NamedMask("A", 1, mask_of(TUMOUR)), NamedMask("B", 2, mask_of(SPLEEN))]
    rmap = RegionMap.from_pairs([("A", 1), ("B", top)])
    result = paint_composite(regions, rmap)
    assert result.array.dtype == dtype and result.array.shape == SHAPE
    assert int(np.count_nonzero(result.array == top)) == 8
    assert int(np.count_nonzero(result.array == 1)) == 4


def test_grid_shape_checks() -> None:
    rmap = RegionMap.from_pairs([("A", 1)])
    empty = paint_composite([], rmap, grid_shape=(2, 3, 4))
    assert empty.array.shape == (2, 3, 4) and not empty.array.any()
    assert empty.absent_labels == ("A",)
    with pytest.raises(ValueError, match="no grid shape"):
        paint_composite([], rmap)
    other = mask_of([(0, 0, 0)], shape=(2, 3, 4))
    with pytest.raises(ValueError, match="different grids"):
        paint_composite([NamedMask("A", 1, mask_of(TUMOUR)), NamedMask("A", 2, other)], rmap)


def test_empty_region_is_matched_but_paints_nothing() -> None:
    rmap = RegionMap.from_pairs([("A", 1), ("B", 2)])
    result = paint_composite(
        [NamedMask("A", 1, BoxMask.empty(SHAPE)), NamedMask("B", 2, mask_of(TUMOUR))], rmap
    )
    assert result.labels[0].present and result.labels[0].voxels == 0
    assert result.regions[0].visible_voxels == 0 and result.absent_labels == ()


def test_union_masks_of_distant_boxes() -> None:
    a, b = mask_of([(0, 0, 0), (0, 1, 0)]), mask_of([(2, 5, 6)])
    u = union_masks([a, b, BoxMask.empty(SHAPE)], SHAPE)
    assert u.offset_kji == (0, 0, 0) and u.data.shape == SHAPE and u.voxel_count == 3
    assert union_masks([BoxMask.empty(SHAPE)], SHAPE).voxel_count == 0


def test_painting_allocates_no_full_grid_per_region() -> None:
    shape = (60, 256, 256)  # 3.9 M voxels: a full-grid bool would show as 3.9 MB
    regions = []
    for n in range(10):
        full_box = np.ones((4, 20, 20), dtype=bool)
        regions.append(NamedMask(f"R{n}", n, BoxMask(full_box, (5 * n, 10 * n, 10 * n), shape)))
    rmap = RegionMap.from_pairs([(f"R{n}", n + 1) for n in range(10)])
    tracemalloc.start()
    try:
        result = paint_composite(regions, rmap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.array.nbytes == 60 * 256 * 256
    assert peak < result.array.nbytes + 1_000_000
    assert int(np.count_nonzero(result.array)) == 10 * 4 * 20 * 20


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_painting_and_counts_match_a_full_grid_reference(data: st.DataObject) -> None:
    """Random regions (some sharing a label, labels sharing values, boxes overlapping or
    apart) against a brute-force painter on full-grid arrays."""
    shape = (4, 5, 6)
    n_labels = data.draw(st.integers(1, 4))
    values = data.draw(st.lists(st.integers(1, 3), min_size=n_labels, max_size=n_labels))
    rmap = RegionMap.from_pairs([(f"L{n}", v) for n, v in enumerate(values)])
    regions = []
    for n in range(data.draw(st.integers(0, 6))):
        label = data.draw(st.integers(0, n_labels - 1))
        bits = data.draw(st.lists(st.booleans(), min_size=120, max_size=120))
        full = np.array(bits, dtype=bool).reshape(shape)
        k0, j0, i0 = (data.draw(st.integers(0, s - 1)) for s in shape)
        full[:k0] = False
        full[:, :j0] = False
        full[:, :, :i0] = False
        regions.append(NamedMask(f"L{label}", n, BoxMask.from_full(full)))

    result = paint_composite(regions, rmap, grid_shape=shape)

    expected = np.zeros(shape, dtype=np.uint8)
    unions = []
    for n, v in enumerate(values):
        union = np.zeros(shape, dtype=bool)
        for r in regions:
            if r.name == f"L{n}":
                union |= r.mask.to_full()
        unions.append(union)
        expected[union] = v
    np.testing.assert_array_equal(result.array, expected)
    for lab, union, v in zip(result.labels, unions, values, strict=True):
        assert lab.voxels == int(union.sum())
        assert lab.visible_voxels == int((union & (expected == v)).sum())
    for p in result.regions:
        full = next(r.mask.to_full() for r in regions if r.number == p.number)
        assert p.voxels == int(full.sum())
        assert p.visible_voxels == int((full & (expected == p.value)).sum())


def test_painting_into_a_given_zeroed_array() -> None:
    rmap = RegionMap.from_pairs([("Liver", 10), ("Tumour", 60)])
    regions = [NamedMask("Liver", 1, mask_of(LIVER)), NamedMask("Tumour", 2, mask_of(TUMOUR))]
    out = np.zeros(SHAPE, dtype=np.uint8)
    result = paint_composite(regions, rmap, out=out)
    assert result.array is out
    np.testing.assert_array_equal(out, paint_composite(regions, rmap).array)
    with pytest.raises(ValueError, match="out has shape"):
        paint_composite(regions, rmap, out=np.zeros((1, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="out has shape"):
        paint_composite(regions, rmap, out=np.zeros(SHAPE, dtype=np.uint16))

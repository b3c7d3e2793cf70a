"""The composite painter: named regions to one label mask, each painted with its map value.

Rules (design: "The region map file — rules"):

* each region's name is matched to a map label (normalised, or exact with
  ``strict_names``); names that match nothing are skipped and reported with suggestions,
  or refused under :attr:`UnmatchedPolicy.ERROR`;
* regions are painted in **region-map order**, whatever their order in the annotation:
  where regions overlap the later map line wins;
* several regions matching one label are unioned; labels sharing a value paint the same
  value, so their overlaps are reported but never a conflict;
* overlaps are counted exactly per pair of labels; under :attr:`OverlapPolicy.ERROR` any
  overlap between labels of different values refuses the conversion.

Memory: the output array (``region_map.dtype``, the grid's shape) is the only full-grid
allocation; regions are painted box by box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from segmap.errors import OverlapError, UnmatchedRegionError
from segmap.imaging.boxmask import BoxMask
from segmap.labelmap import Region, RegionMap
from segmap.masks.boxops import union_masks
from segmap.masks.policies import OverlapPolicy, UnmatchedPolicy

_SLAB_VOXELS = 1 << 22
"""Voxels compared per pass when counting; bounds temporaries for large regions."""

Box = tuple[slice, slice, slice]
"""A box on the grid as index slices ``[k, j, i]`` (``BoxMask.slices``)."""


@dataclass(frozen=True, eq=False)
class NamedMask:
    """A region from an annotation: its name and number in the file, and its voxels.

    ``number`` (ROI number or segment number) is provenance only, never a mask value.
    """

    name: str
    number: int
    mask: BoxMask


@dataclass(frozen=True)
class PaintedRegion:
    """One annotation region that matched a map label.

    Attributes:
        name: the region's name in the annotation.
        number: its ROI or segment number in the file.
        label: the map label it matched.
        value: the value it was painted with.
        voxels: its own voxel count, before anything painted over it.
        visible_voxels: its voxels holding ``value`` in the final mask (fewer where a
            later map label with another value overlaps it).
    """

    name: str
    number: int
    label: str
    value: int
    voxels: int
    visible_voxels: int


@dataclass(frozen=True)
class LabelPaint:
    """One map label and what it holds, in map order.

    Attributes:
        label, value, line: the map's region (``line`` 0 when the map was built in code).
        sources: names of the annotation regions that matched it, in annotation order.
        voxels: voxels of the union of those regions.
        visible_voxels: of those, the ones holding ``value`` in the final mask.
    """

    label: str
    value: int
    line: int
    sources: tuple[str, ...]
    voxels: int
    visible_voxels: int

    @property
    def present(self) -> bool:
        """True when at least one annotation region matched this label."""
        return bool(self.sources)


@dataclass(frozen=True)
class UnmatchedName:
    """An annotation region whose name matches no map label, with the closest labels."""

    name: str
    number: int
    suggestions: tuple[str, ...]


@dataclass(frozen=True)
class Overlap:
    """Voxels claimed by two map labels; ``first`` is the earlier map line.

    The later label (``second``) is painted there. When both share a value nothing is
    lost, so the overlap is no conflict.
    """

    first_label: str
    first_value: int
    second_label: str
    second_value: int
    voxels: int

    @property
    def winner(self) -> str:
        """The label painted on the shared voxels (the later map line)."""
        return self.second_label

    @property
    def conflict(self) -> bool:
        """True when the two labels have different values."""
        return self.first_value != self.second_value


@dataclass(frozen=True, eq=False)
class CompositeResult:
    """The composite mask and the record of how it was painted.

    Attributes:
        array: ``[k, j, i]`` label mask on the grid, dtype ``region_map.dtype``; 0 is
            background.
        regions: matched annotation regions, in annotation order.
        labels: every map label, in map order, present or not.
        unmatched: annotation regions whose names match no label, in annotation order.
        overlaps: overlapping label pairs with their voxel counts, in map order.
    """

    array: npt.NDArray[np.unsignedinteger]
    regions: tuple[PaintedRegion, ...]
    labels: tuple[LabelPaint, ...]
    unmatched: tuple[UnmatchedName, ...]
    overlaps: tuple[Overlap, ...]

    @property
    def absent_labels(self) -> tuple[str, ...]:
        """Map labels no annotation region matched, in map order."""
        return tuple(lab.label for lab in self.labels if not lab.present)

    @property
    def conflicts(self) -> tuple[Overlap, ...]:
        """Overlaps between labels of different values."""
        return tuple(o for o in self.overlaps if o.conflict)


def paint_composite(
    regions: Sequence[NamedMask],
    region_map: RegionMap,
    *,
    overlap: OverlapPolicy | str = OverlapPolicy.ORDER,
    unmatched: UnmatchedPolicy | str = UnmatchedPolicy.SKIP,
    strict_names: bool = False,
    grid_shape: tuple[int, int, int] | None = None,
    out: npt.NDArray[np.unsignedinteger] | None = None,
) -> CompositeResult:
    """Paint named regions into one label mask following ``region_map``.

    Args:
        regions: annotation regions, each a :class:`BoxMask` on the same grid.
        region_map: labels, values and paint order (later lines win).
        overlap: what to do where labels of different values overlap (enum or its word).
        unmatched: what to do with names that match no label (enum or its word).
        strict_names: compare names exactly instead of normalised.
        grid_shape: ``(nk, nj, ni)`` of the output; taken from the regions when omitted
            (then at least one region is needed).
        out: an all-zero array of that shape and ``region_map.dtype`` to paint into
            (one allocated, and its pages touched, ahead of time); a new one when None.

    Raises:
        UnmatchedRegionError: a name matches no label under ``UnmatchedPolicy.ERROR``.
        OverlapError: labels of different values overlap under ``OverlapPolicy.ERROR``.
        ValueError: regions on different grids, or no grid shape to paint on.
    """
    overlap, unmatched = OverlapPolicy(overlap), UnmatchedPolicy(unmatched)
    shape = _grid_shape(regions, grid_shape)

    matches = [region_map.match(r.name, strict=strict_names) for r in regions]
    missing = tuple(
        UnmatchedName(r.name, r.number, tuple(region_map.suggest(r.name)))
        for r, m in zip(regions, matches, strict=True)
        if m is None
    )
    if missing and unmatched is UnmatchedPolicy.ERROR:
        raise _unmatched_error(missing)

    order = {r.label: n for n, r in enumerate(region_map.regions)}
    members: list[list[NamedMask]] = [[] for _ in region_map.regions]
    for r, m in zip(regions, matches, strict=True):
        if m is not None:
            members[order[m.label]].append(r)
    unions = [union_masks([r.mask for r in group], shape) for group in members]

    overlaps = _overlaps(region_map.regions, unions, members)
    conflicts = tuple(o for o in overlaps if o.conflict)
    if conflicts and overlap is OverlapPolicy.ERROR:
        raise _overlap_error(conflicts)

    if out is None:
        array = np.zeros(shape, dtype=region_map.dtype)
    elif out.shape != shape or out.dtype != region_map.dtype:
        raise ValueError(
            f"out has shape {out.shape} and type {out.dtype}; the mask needs "
            f"{shape} and {region_map.dtype}"
        )
    else:
        array = out
    painted_boxes: list[Box] = []
    for region, union in zip(region_map.regions, unions, strict=True):
        if not union.data.size:
            continue
        box, value = array[union.slices], np.asarray(region.value, dtype=array.dtype)
        if any(_meet(union.slices, b) for b in painted_boxes):
            np.copyto(box, value, where=union.data)  # keep earlier labels beside this one
        else:
            # Nothing is painted in this box yet (all zeros), so one streaming multiply
            # writes the value where the mask is true: ~3x faster than a masked copy,
            # which matters for a body outline covering most of the grid.
            np.multiply(union.data, value, out=box)
        painted_boxes.append(union.slices)

    # Voxel counts and visible counts once per mask: a label with one region has that
    # region's mask as its union, and a body outline takes milliseconds to count.
    counts: dict[int, int] = {}
    visible: dict[int, int] = {}

    def count(mask: BoxMask) -> int:
        if id(mask) not in counts:
            counts[id(mask)] = mask.voxel_count
        return counts[id(mask)]

    def seen(mask: BoxMask, position: int) -> int:
        if id(mask) not in visible:
            value = region_map.regions[position].value
            # Only a later label of another value can have painted over this mask.
            over = [
                u.slices
                for later, u in enumerate(unions)
                if later > position and u.data.size and region_map.regions[later].value != value
            ]
            visible[id(mask)] = _visible(array, mask, value, count(mask), over)
        return visible[id(mask)]

    painted = tuple(
        PaintedRegion(
            r.name, r.number, m.label, m.value, count(r.mask), seen(r.mask, order[m.label])
        )
        for r, m in zip(regions, matches, strict=True)
        if m is not None
    )
    labels = tuple(
        LabelPaint(
            region.label,
            region.value,
            region.line,
            tuple(r.name for r in group),
            count(union),
            seen(union, n),
        )
        for n, (region, union, group) in enumerate(
            zip(region_map.regions, unions, members, strict=True)
        )
    )
    return CompositeResult(array, painted, labels, missing, overlaps)


def _grid_shape(
    regions: Sequence[NamedMask], given: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    shapes = {r.mask.grid_shape for r in regions}
    if given is not None:
        shapes.add((int(given[0]), int(given[1]), int(given[2])))
    if not shapes:
        raise ValueError("no regions and no grid shape: nothing says how large the mask is")
    if len(shapes) > 1:
        raise ValueError(f"regions live on different grids: {sorted(shapes)}")
    (shape,) = shapes
    return shape


def _overlaps(
    map_regions: Sequence[Region], unions: Sequence[BoxMask], members: Sequence[list[NamedMask]]
) -> tuple[Overlap, ...]:
    """Exact voxel counts shared by every pair of present labels, earlier line first."""
    present = [n for n, group in enumerate(members) if group and unions[n].data.size]
    found = []
    for a_pos, a in enumerate(present):
        for b in present[a_pos + 1 :]:
            shared = unions[a].intersection_count(unions[b])
            if shared:
                ra, rb = map_regions[a], map_regions[b]
                found.append(Overlap(ra.label, ra.value, rb.label, rb.value, shared))
    return tuple(found)


def _visible(
    array: npt.NDArray[np.unsignedinteger],
    mask: BoxMask,
    value: int,
    voxels: int,
    painted_over: Sequence[Box],
) -> int:
    """Voxels of ``mask`` whose final value is ``value``.

    ``voxels`` is the mask's voxel count and ``painted_over`` the boxes of the labels
    that were painted after it with another value: outside them every voxel of the mask
    still holds ``value`` (the mask's own label painted it), so only the hull of their
    overlaps with the mask's box is compared, slab by slab.
    """
    if not mask.data.size:
        return 0
    hull: list[tuple[int, int]] | None = None
    for other in painted_over:
        inter = _intersection(mask.slices, other)
        if inter is not None:
            hull = (
                inter
                if hull is None
                else [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(hull, inter, strict=True)]
            )
    if hull is None:
        return voxels
    (k0, k1), (j0, j1), (i0, i1) = hull
    ok, oj, oi = mask.offset_kji
    box = array[k0:k1, j0:j1, i0:i1]
    sub = mask.data[k0 - ok : k1 - ok, j0 - oj : j1 - oj, i0 - oi : i1 - oi]
    step = max(1, _SLAB_VOXELS // max(1, sub.shape[1] * sub.shape[2]))
    lost = 0
    for k in range(0, sub.shape[0], step):
        other_value = box[k : k + step] != value
        other_value &= sub[k : k + step]
        lost += int(np.count_nonzero(other_value))
    return voxels - lost


def _intersection(a: Box, b: Box) -> list[tuple[int, int]] | None:
    """Index ranges ``(start, stop)`` per axis shared by two boxes, or None if disjoint."""
    ranges = []
    for sa, sb in zip(a, b, strict=True):
        lo, hi = max(sa.start, sb.start), min(sa.stop, sb.stop)
        if lo >= hi:
            return None
        ranges.append((lo, hi))
    return ranges


def _meet(a: Box, b: Box) -> bool:
    """True when two boxes share at least one voxel."""
    return _intersection(a, b) is not None


def _overlap_error(conflicts: Sequence[Overlap]) -> OverlapError:
    pairs = "; ".join(
        f"'{o.first_label}' (value {o.first_value}) and '{o.second_label}' "
        f"(value {o.second_value}) share {o.voxels} voxels"
        for o in conflicts
    )
    return OverlapError(
        f"{len(conflicts)} pair(s) of regions overlap and the overlap policy is 'error': "
        f"{pairs}. Correct the annotation, or list the region that should win later in "
        "the region map and convert with the overlap policy 'order'.",
        tuple(
            (o.first_label, o.first_value, o.second_label, o.second_value, o.voxels)
            for o in conflicts
        ),
    )


def _unmatched_error(missing: Sequence[UnmatchedName]) -> UnmatchedRegionError:
    def one(u: UnmatchedName) -> str:
        hint = (
            "did you mean " + " or ".join(f"'{s}'" for s in u.suggestions) + "?"
            if u.suggestions
            else "no map label is similar"
        )
        return f"'{u.name}' (number {u.number}; {hint})"

    return UnmatchedRegionError(
        f"{len(missing)} region name(s) match no label of the region map and the unmatched "
        f"policy is 'error': {', '.join(one(u) for u in missing)}. Rename the regions in "
        "the annotation, add their labels to the map, or convert with the unmatched "
        "policy 'skip'.",
        tuple((u.name, u.suggestions) for u in missing),
    )

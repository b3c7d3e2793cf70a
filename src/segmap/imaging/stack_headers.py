"""The checks on the slice headers of one series before they are stacked.

Each slice must be single-frame, carry its geometry (position, orientation, pixel spacing)
and agree with the others on the frame of reference, the image size, the pixel spacing
(within ``PIXEL_SPACING_TOL`` mm) and the orientation cosines (within ``ORIENTATION_TOL``).
Refusals name the slices at fault; :class:`SliceNamer`, :func:`listing` and
:func:`refusal` word them, and :mod:`segmap.imaging.stacking` words its own refusals the
same way.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from segmap.errors import SeriesGeometryError
from segmap.imaging.dicomheaders import SliceHeader

ORIENTATION_TOL = 1e-4
PIXEL_SPACING_TOL = 1e-4
MAX_NAMED = 8


class SliceNamer:
    """Short, unambiguous names for the files of a series in messages."""

    def __init__(self, paths: Sequence[Path]) -> None:
        names = [p.name for p in paths]
        self._root: str | None = None
        if len(set(names)) != len(names) and len(paths) > 1:
            self._root = os.path.commonpath([str(p) for p in paths])

    def __call__(self, h: SliceHeader) -> str:
        name = os.path.relpath(h.path, self._root) if self._root else h.path.name
        if h.position is None:
            return name
        x, y, z = h.position
        return f"{name} at ({x:.2f}, {y:.2f}, {z:.2f})"


def listing(items: Sequence[str]) -> str:
    """The first ``MAX_NAMED`` items joined with '; ', and how many more there are."""
    shown = list(items[:MAX_NAMED])
    if len(items) > MAX_NAMED:
        shown.append(f"and {len(items) - MAX_NAMED} more")
    return "; ".join(shown)


def refusal(series_uid: str, problem: str, advice: str) -> SeriesGeometryError:
    """The error for one series: what is wrong with it, then what to do."""
    return SeriesGeometryError(f"Image series {series_uid}: {problem}. {advice}")


NO_FIXUP = "No fix-up exists for this: choose the files of one acquisition."


def _check_single_frame(slices: Sequence[SliceHeader], uid: str, name: SliceNamer) -> None:
    multi = [h for h in slices if h.number_of_frames > 1]
    if multi:
        raise refusal(
            uid,
            "multi-frame image files are not supported: "
            + listing([f"{name(h)} ({h.number_of_frames} frames)" for h in multi]),
            "Convert the series to single-frame slices (e.g. with dcmtk or dicom3tools).",
        )


def _check_geometry_present(slices: Sequence[SliceHeader], uid: str, name: SliceNamer) -> None:
    missing: list[str] = []
    for h in slices:
        absent = [
            tag
            for tag, value in (
                ("ImagePositionPatient", h.position),
                ("ImageOrientationPatient", h.orientation),
                ("PixelSpacing", h.pixel_spacing),
            )
            if value is None
        ]
        if h.pixel_spacing is not None and min(h.pixel_spacing) <= 0:
            absent.append("PixelSpacing (not positive)")
        if absent:
            missing.append(f"{name(h)} lacks {', '.join(absent)}")
    if missing:
        raise refusal(
            uid,
            "geometry tags are missing or malformed: " + listing(missing),
            "segmap needs each slice's position, orientation and pixel spacing to place "
            "voxels; fix the files' headers.",
        )


def _check_same(
    slices: Sequence[SliceHeader],
    uid: str,
    name: SliceNamer,
    what: str,
    key: Callable[[SliceHeader], Hashable],
    show: Callable[[Hashable], str],
) -> None:
    groups: dict[Hashable, list[SliceHeader]] = defaultdict(list)
    for h in slices:
        groups[key(h)].append(h)
    if len(groups) <= 1:
        return
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    # The largest group is the norm: give its size and one example, list the others whole.
    (k0, g0), rest = ranked[0], ranked[1:]
    parts = [f"{show(k0)} in {len(g0)} slice{'s' if len(g0) != 1 else ''} (e.g. {name(g0[0])})"]
    parts += [
        f"{show(k)} in {len(g)} slice{'s' if len(g) != 1 else ''} ({listing([name(h) for h in g])})"
        for k, g in rest
    ]
    raise refusal(
        uid, f"the slices have {len(groups)} different {what}: " + " | ".join(parts), NO_FIXUP
    )


def _check_consistent(slices: Sequence[SliceHeader], uid: str, name: SliceNamer) -> None:
    _check_same(
        slices,
        uid,
        name,
        "frames of reference",
        lambda h: h.frame_of_reference_uid,
        lambda k: f"FrameOfReferenceUID {k}",
    )
    _check_same(
        slices,
        uid,
        name,
        "image sizes",
        lambda h: f"{h.rows} x {h.columns}",
        lambda k: f"Rows x Columns {k}",
    )
    first_spacing = slices[0].pixel_spacing
    assert first_spacing is not None
    _check_same(
        slices,
        uid,
        name,
        "pixel spacings",
        lambda h: _cluster(h.pixel_spacing, first_spacing, PIXEL_SPACING_TOL),
        lambda k: f"PixelSpacing {k}",
    )
    first_iop = slices[0].orientation
    assert first_iop is not None
    _check_same(
        slices,
        uid,
        name,
        "orientations",
        lambda h: _cluster(h.orientation, first_iop, ORIENTATION_TOL),
        lambda k: f"ImageOrientationPatient {k}",
    )


def _cluster(
    value: Sequence[float] | None, reference: Sequence[float], tol: float
) -> tuple[float, ...]:
    """``reference`` when ``value`` is within ``tol`` of it, else ``value`` rounded for display."""
    assert value is not None
    if all(abs(a - b) <= tol for a, b in zip(value, reference, strict=True)):
        return tuple(round(v, 6) for v in reference)
    return tuple(round(v, 6) for v in value)


def check_headers(slices: Sequence[SliceHeader], uid: str, name: SliceNamer) -> None:
    """Refuse (:class:`SeriesGeometryError`) slices that cannot make one grid, whatever
    their positions: multi-frame files, missing geometry, or disagreeing headers."""
    _check_single_frame(slices, uid, name)
    _check_geometry_present(slices, uid, name)
    _check_consistent(slices, uid, name)

"""A conversion report in the sentences a person reads.

Every place that shows a report -- ``segmap convert``'s summary, the ``segmap batch``
summary, a job's log, the session page -- shows these sentences, so each fact is worded
once. Volumes are shown in mL (1000 mm³), file sizes in kB or MB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segmap.pipeline.report import ConvertReport, OutputRecord, RegionRecord

OUTPUT_KINDS = {
    "mask": "composite mask",
    "image": "image",
    "image_resampled": "resampled image",
    "mask_resampled": "resampled composite mask",
    "preview": "preview picture",
}
"""How each kind of output file is named in a sentence."""


def describe(report: ConvertReport, *, outputs: bool = True) -> list[str]:
    """Regions painted, then :func:`notes`, then (with ``outputs``) each file written."""
    lines = [painted(r) for r in report.regions if r.status == "painted"]
    lines.extend(notes(report))
    if outputs:
        lines.extend(output(o) for o in report.outputs)
    return lines


def painted(r: RegionRecord) -> str:
    """``ROI 'Body' -> Body=1: 1234 voxels, 5.67 mL, from 38 of 40 contours (38 clipped at
    the image edge).`` -- contours partly outside the image are used, not left out."""
    text = f"{_what(r)} -> {r.matched_label}={r.value}: {r.voxels} voxels, {_ml(r.volume_mm3)}"
    if r.contours is not None:
        text += f", from {r.contours.used} of {r.contours.total} contours"
        if r.contours.clipped_at_image_edge:
            text += f" ({r.contours.clipped_at_image_edge} clipped at the image edge)"
    elif r.frames_used is not None:
        text += f", from {r.frames_used} frame{'s' if r.frames_used != 1 else ''}"
    return text + "."


def notes(report: ConvertReport, *, overlaps: bool = True) -> list[str]:
    """What the conversion left out or decided, and why, one sentence each; without
    ``overlaps``, not the overlaps (painted by the map's order, as designed)."""
    lines: list[str] = []
    for r in report.regions:
        if r.status == "unmatched":
            closest = f" (closest: {', '.join(r.suggestions)})" if r.suggestions else ""
            lines.append(f"{_what(r)} matches no label of the map{closest}; not painted.")
        elif r.status == "empty":
            lines.append(
                f"{_what(r)} matched {r.matched_label}={r.value} but none of its "
                "voxels lies in the image; nothing painted."
            )
        c = r.contours
        if c is None:
            continue
        if c.skipped:
            reasons = ", ".join(
                f"{n} {why.replace('_', ' ')}" for why, n in c.skipped_by_reason.items() if n
            )
            lines.append(f"{_what(r)}: {c.skipped} of {c.total} contours skipped ({reasons}).")
        if c.referencing_images_not_in_series:
            n = c.referencing_images_not_in_series
            lines.append(
                f"{_what(r)}: {n} contour{'s' if n != 1 else ''} "
                f"reference{'' if n != 1 else 's'} images that are not in the series."
            )
    if report.absent_labels:
        lines.append(f"Map labels absent from the annotation: {', '.join(report.absent_labels)}.")
    for o in report.overlaps if overlaps else []:
        lines.append(
            f"{o.first} and {o.second} overlap in {o.voxels} voxels; {o.winner} is painted there."
        )
    lines.extend(f"Warning: {w}" for w in report.warnings)
    lines.extend(f"Fix-up: {f}" for f in report.fixups)
    return lines


def output(o: OutputRecord) -> str:
    """``mask.nii.gz: composite mask, 40 x 32 x 10 voxels of 1 x 1 x 2.5 mm, uint8, 3.1 kB.``"""
    parts = [OUTPUT_KINDS.get(o.kind, o.kind.replace("_", " "))]
    if o.grid is not None:
        parts.append(
            f"{_times(o.grid.get('size_ijk'))} voxels of {_times(o.grid.get('spacing_mm'))} mm"
        )
    if o.dtype is not None:
        parts.append(o.dtype)
    parts.append(_size(o.bytes))
    return f"{o.name}: {', '.join(parts)}."


def _what(r: RegionRecord) -> str:
    return f"{'ROI' if r.source == 'ROI' else 'segment'} {r.name!r}"


def _ml(volume_mm3: float) -> str:
    return f"{volume_mm3 / 1000:.2f} mL"


def _times(values: Any) -> str:
    return " x ".join(f"{v:g}" for v in values or [])


def _size(n: int) -> str:
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"

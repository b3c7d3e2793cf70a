"""Building a conversion's report from what each stage produced.

The report's shape is :mod:`segmap.pipeline.report`; this module fills it in: the inputs
and their UIDs, the map and its checksum, each region with its matched label, value,
status and volume (mm³ on the native grid), the labels of the final mask, unmatched
names with suggestions, overlaps, the outputs and the timings.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from segmap.annotations.types import AnnotationInfo
from segmap.imaging.series import DicomSeries
from segmap.labelmap import RegionMap
from segmap.masks.composite import CompositeResult
from segmap.pipeline.regions import RegionDetail
from segmap.pipeline.report import (
    AnnotationInput,
    ConvertReport,
    ImageInput,
    LabelRecord,
    MapInput,
    MapRegion,
    OutputRecord,
    OverlapRecord,
    RegionRecord,
    ReportInputs,
    UnmatchedRecord,
    file_sha256,
)


def build_report(
    *,
    rmap: RegionMap,
    map_path: Path | None,
    info: AnnotationInfo,
    series: DicomSeries,
    options: dict[str, Any],
    composite: CompositeResult,
    details: list[RegionDetail],
    outputs: list[OutputRecord],
    timings: dict[str, float],
    warnings: list[str],
    rois_path: Path,
) -> ConvertReport:
    """The report of one conversion.

    Args:
        rmap, map_path: the region map and the file it was read from (None if given
            as an object).
        info, rois_path: the annotation read and its file.
        series: the image series converted onto (its grid is the native grid).
        options: :meth:`ConvertOptions.to_dict` of the options used.
        composite: the painter's result (regions painted, labels, overlaps, unmatched).
        details: one per region as placed, in the annotation's order.
        outputs: the files written, in order.
        timings, warnings: seconds per stage so far, and the conversion's warnings.
    """
    grid = series.grid
    vv = grid.voxel_volume_mm3
    painted = {(p.number, p.name): p for p in composite.regions}
    suggestions = {(u.number, u.name): list(u.suggestions) for u in composite.unmatched}
    regions = []
    for d in details:
        p = painted.get((d.number, d.name))
        status = "unmatched" if p is None else "painted" if d.voxels else "empty"
        regions.append(
            RegionRecord(
                source=d.source,
                number=d.number,
                name=d.name,
                matched_label=p.label if p else None,
                value=p.value if p else None,
                status=status,
                voxels=d.voxels,
                volume_mm3=round(d.voxels * vv, 3),
                painted_voxels=p.visible_voxels if p else 0,
                contours=d.contours,
                frames_used=d.frames_used,
                suggestions=suggestions.get((d.number, d.name), []),
            )
        )
    labels = [
        LabelRecord(
            lab.label,
            lab.value,
            lab.present,
            lab.visible_voxels,
            round(lab.visible_voxels * vv, 3),
        )
        for lab in composite.labels
    ]
    unmatched = [
        UnmatchedRecord(r.name, r.number, r.source, list(r.suggestions))
        for r in regions
        if r.status == "unmatched"
    ]
    overlaps = [
        OverlapRecord(
            o.first_label, o.second_label, o.first_value, o.second_value, o.voxels, o.winner
        )
        for o in composite.overlaps
    ]
    return ConvertReport(
        inputs=ReportInputs(
            image=ImageInput(
                folder=str(series.files[0].parent) if series.files else "",
                study_instance_uid=series.study_instance_uid,
                series_instance_uid=series.series_instance_uid,
                frame_of_reference_uid=series.frame_of_reference_uid,
                modality=series.modality,
                slices=len(series.files),
                series_description=series.series_description,
                patient_id=series.patient_id,
                study_date=series.study_date,
            ),
            annotation=AnnotationInput(
                path=str(rois_path),
                modality=info.modality,
                sop_instance_uid=info.sop_instance_uid,
                series_instance_uid=info.series_instance_uid,
                study_instance_uid=info.study_instance_uid,
                frame_of_reference_uid=info.frame_of_reference_uid,
                referenced_series_uids=list(info.referenced_series_uids),
                sha256=file_sha256(rois_path),
            ),
            grid=grid.to_dict(),
        ),
        region_map=MapInput(
            path=str(map_path) if map_path else None,
            sha256=rmap.sha256,
            dtype=rmap.dtype.name,
            regions=[MapRegion(r.label, r.value) for r in rmap.regions],
            shared_values={str(v): list(ls) for v, ls in rmap.shared_values().items()},
        ),
        options=options,
        regions=regions,
        labels=labels,
        unmatched=unmatched,
        absent_labels=list(composite.absent_labels),
        overlaps=overlaps,
        fixups=list(series.fixups),
        outputs=outputs,
        timings_s=dict(timings),
        warnings=warnings,
        created_utc=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )

"""What an ROI collection file is and which image it references, from its header alone.

The pipeline uses this to pick, among the series of a session, the one an RTSTRUCT or
SEG was drawn on, and to check that both share a frame of reference before placing a
single voxel.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from segmap.annotations._dicom import items, open_dataset, reading, text, unique
from segmap.annotations.types import AnnotationInfo
from segmap.errors import AnnotationError
from segmap.imaging.series import DicomSeries

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"
_SEG_SOP_CLASSES = (SEG_SOP_CLASS, LABELMAP_SEG_SOP_CLASS)


def read_annotation_info(path: Path) -> AnnotationInfo:
    """Identity and references of an RTSTRUCT or SEG file, reading the header only.

    Pixel data is never read. Raises :class:`AnnotationError` when the file is not
    DICOM, is damaged, or is neither an RTSTRUCT nor a SEG.
    """
    path = Path(path)
    ds = open_dataset(path, stop_before_pixels=True)
    return annotation_info_from_dataset(ds, path)


def annotation_kind(ds: Dataset, path: Path) -> str:
    """``"RTSTRUCT"`` or ``"SEG"`` from Modality / SOPClassUID; AnnotationError otherwise."""
    modality = text(ds, "Modality").upper()
    sop_class = text(ds, "SOPClassUID")
    if modality == "RTSTRUCT" or sop_class == RTSTRUCT_SOP_CLASS:
        return "RTSTRUCT"
    if sop_class in _SEG_SOP_CLASSES or (modality == "SEG" and not sop_class):
        return "SEG"
    if modality == "SEG":
        raise AnnotationError(
            f"{path}: a SEG of SOP class {sop_class} (for example a surface segmentation), not "
            "an image segmentation; segmap reads Segmentation Storage "
            f"({SEG_SOP_CLASS}) and Label Map Segmentation Storage ({LABELMAP_SEG_SOP_CLASS})"
        )
    raise AnnotationError(
        f"{path}: Modality is {modality or 'missing'!r} (SOPClassUID {sop_class or 'missing'}); "
        "segmap reads ROI collections stored as RTSTRUCT or SEG: give that file, not an image"
    )


def annotation_info_from_dataset(ds: Dataset, path: Path) -> AnnotationInfo:
    """:class:`AnnotationInfo` of an already-read dataset (header attributes only)."""
    kind = annotation_kind(ds, path)
    with reading(path, "the referenced images"):
        if kind == "RTSTRUCT":
            series_uids, instance_uids = _rtstruct_references(ds)
            frames_of_reference = _rtstruct_frames_of_reference(ds)
            label = text(ds, "StructureSetLabel")
            seg_type = ""
        else:
            series_uids, instance_uids = _seg_references(ds)
            frames_of_reference = unique([text(ds, "FrameOfReferenceUID")])
            label = text(ds, "ContentLabel")
            seg_type = text(ds, "SegmentationType").upper()
            if text(ds, "SOPClassUID") == LABELMAP_SEG_SOP_CLASS and not seg_type:
                seg_type = "LABELMAP"
    return AnnotationInfo(
        path=str(path),
        modality=kind,
        sop_instance_uid=text(ds, "SOPInstanceUID"),
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        study_instance_uid=text(ds, "StudyInstanceUID"),
        frame_of_reference_uid=frames_of_reference[0] if frames_of_reference else None,
        referenced_series_uids=series_uids,
        referenced_sop_instance_uids=instance_uids,
        sop_class_uid=text(ds, "SOPClassUID"),
        label=label,
        manufacturer=text(ds, "Manufacturer"),
        segmentation_type=seg_type,
        frame_of_reference_uids=frames_of_reference,
    )


def _rtstruct_references(ds: Dataset) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Series UIDs and image SOPInstanceUIDs an RTSTRUCT names.

    Series come from ReferencedFrameOfReferenceSequence > RTReferencedStudySequence >
    RTReferencedSeriesSequence; instances from the ContourImageSequence there and in
    every contour, so a file whose series list is absent can still be matched to a scan
    by its instances.
    """
    series: list[str] = []
    instances: list[str] = []
    for ref_for in items(ds, "ReferencedFrameOfReferenceSequence"):
        for study in items(ref_for, "RTReferencedStudySequence"):
            for ser in items(study, "RTReferencedSeriesSequence"):
                series.append(text(ser, "SeriesInstanceUID"))
                instances += [
                    text(img, "ReferencedSOPInstanceUID")
                    for img in items(ser, "ContourImageSequence")
                ]
    for roi_contour in items(ds, "ROIContourSequence"):
        for contour in items(roi_contour, "ContourSequence"):
            instances += [
                text(img, "ReferencedSOPInstanceUID")
                for img in items(contour, "ContourImageSequence")
            ]
    return unique(series), unique(instances)


def _rtstruct_frames_of_reference(ds: Dataset) -> tuple[str, ...]:
    """Frames of reference the ROIs are drawn in.

    Each ROI names its own (StructureSetROISequence); the structure set's list of
    referenced frames may hold more (a registered PET, say) that no ROI uses, so it is
    only the fallback.
    """
    per_roi = unique(
        [text(roi, "ReferencedFrameOfReferenceUID") for roi in items(ds, "StructureSetROISequence")]
    )
    if per_roi:
        return per_roi
    listed = [
        text(r, "FrameOfReferenceUID") for r in items(ds, "ReferencedFrameOfReferenceSequence")
    ]
    return unique([*listed, text(ds, "FrameOfReferenceUID")])


def _seg_references(ds: Dataset) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Series UIDs and image SOPInstanceUIDs a SEG names.

    Series and instances from ReferencedSeriesSequence (also inside
    StudiesContainingOtherReferencedInstancesSequence); instances also from each frame's
    DerivationImageSequence > SourceImageSequence.
    """
    series: list[str] = []
    instances: list[str] = []
    ref_series = items(ds, "ReferencedSeriesSequence")
    for study in items(ds, "StudiesContainingOtherReferencedInstancesSequence"):
        ref_series += items(study, "ReferencedSeriesSequence")
    for ser in ref_series:
        series.append(text(ser, "SeriesInstanceUID"))
        instances += [
            text(i, "ReferencedSOPInstanceUID") for i in items(ser, "ReferencedInstanceSequence")
        ]
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in items(ds, keyword):
            instances += source_instance_uids(group)
    return unique(series), unique(instances)


def source_instance_uids(functional_group: Dataset) -> list[str]:
    """A frame's source images: DerivationImageSequence > SourceImageSequence SOPInstanceUIDs."""
    return [
        text(src, "ReferencedSOPInstanceUID")
        for derivation in items(functional_group, "DerivationImageSequence")
        for src in items(derivation, "SourceImageSequence")
    ]


def check_frame_of_reference(info: AnnotationInfo, series: DicomSeries) -> None:
    """Refuse an annotation drawn in another frame of reference than the image series.

    Patient coordinates are only comparable inside one frame of reference; placing
    contours or segments of another one would put voxels in the wrong place silently.
    Nothing is checked when either side does not declare a frame of reference.
    """
    image_for = series.frame_of_reference_uid
    declared = info.frame_of_reference_uids or (
        (info.frame_of_reference_uid,) if info.frame_of_reference_uid else ()
    )
    if not image_for or not declared:
        return
    other = [uid for uid in declared if uid != image_for]
    if not other:
        return
    where = str(Path(series.files[0]).parent) if series.files else "(no files)"
    hint = (
        " The annotation names this very series, so one of the two was probably re-identified"
        " or edited on its own."
        if series.series_instance_uid in info.referenced_series_uids
        else ""
    )
    raise AnnotationError(
        f"{info.path}: this {info.modality} is drawn in frame of reference "
        f"{', '.join(other)}, but the image series {series.series_instance_uid} in {where} "
        f"is in frame of reference {image_for}, so their patient coordinates cannot be "
        f"compared. Use the image series the annotation was drawn on (frame of reference "
        f"{other[0]}), or export the annotation again from this series.{hint}"
    )

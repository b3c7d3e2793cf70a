"""What an ROI collection file is and which image it references, from its header alone.

The pipeline uses this to pick, among the series of a session, the one an RTSTRUCT or
SEG was drawn on, and to check that both share a frame of reference before placing a
single voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from segmap.annotations._dicom import items, open_dataset, reading, text, unique
from segmap.annotations.types import AnnotationInfo
from segmap.errors import AnnotationError
from segmap.imaging.series import DicomSeries
from segmap.imaging.sop_classes import (
    IMAGE_SEG_SOP_CLASSES,
    LABELMAP_SEG_SOP_CLASS,
    SEG_SOP_CLASS,
    CollectionKind,
    collection_kind,
)


def read_annotation_info(path: Path) -> AnnotationInfo:
    """Identity and references of an RTSTRUCT or SEG file, reading the header only.

    Pixel data is never read. Raises :class:`AnnotationError` when the file is not
    DICOM, is damaged, or is neither an RTSTRUCT nor a SEG.
    """
    path = Path(path)
    ds = open_dataset(path, stop_before_pixels=True)
    return annotation_info_from_dataset(ds, path)


def annotation_kind(ds: Dataset, path: Path) -> CollectionKind:
    """RTSTRUCT or SEG (:func:`~segmap.imaging.sop_classes.collection_kind`) when segmap
    can read the file; AnnotationError otherwise (an image, or a surface segmentation)."""
    modality = text(ds, "Modality").upper()
    sop_class = text(ds, "SOPClassUID")
    kind = collection_kind(modality, sop_class)
    if kind is CollectionKind.RTSTRUCT:
        return kind
    if kind is CollectionKind.SEG and (not sop_class or sop_class in IMAGE_SEG_SOP_CLASSES):
        return kind
    if kind is CollectionKind.SEG:
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
            names = [text(roi, "ROIName") for roi in items(ds, "StructureSetROISequence")]
        else:
            series_uids, instance_uids = _seg_references(ds)
            frames_of_reference = unique([text(ds, "FrameOfReferenceUID")])
            label = text(ds, "ContentLabel")
            seg_type = text(ds, "SegmentationType").upper()
            if text(ds, "SOPClassUID") == LABELMAP_SEG_SOP_CLASS and not seg_type:
                seg_type = "LABELMAP"
            names = [text(seg, "SegmentLabel") for seg in items(ds, "SegmentSequence")]
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
        region_names=tuple(names),
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


@dataclass(frozen=True)
class FrameOfReferenceMismatch:
    """An annotation drawn (at least partly) in another frame of reference than an image.

    ``declared`` lists every frame of reference the annotation's regions are drawn in;
    ``foreign`` the ones that are not the image's ``image`` frame of reference.
    """

    image: str
    declared: tuple[str, ...]
    foreign: tuple[str, ...]

    def describe(self, what: str, image_series: str) -> str:
        """A sentence naming the frames of reference, ``what`` being the annotation."""
        image = f"image series {image_series} is in frame of reference {self.image}"
        if len(self.declared) > 1:
            return (
                f"{what} has regions drawn in {len(self.declared)} frames of reference "
                f"({', '.join(self.declared)}), but the {image}, so the regions drawn in "
                f"{', '.join(self.foreign)} cannot be placed on it"
            )
        return (
            f"{what} is drawn in frame of reference {self.foreign[0]}, but the {image}, so "
            "their patient coordinates cannot be compared"
        )


def frame_of_reference_mismatch(
    info: AnnotationInfo, image_frame_of_reference_uid: str | None
) -> FrameOfReferenceMismatch | None:
    """The rule every user of an annotation applies: all its regions in the image's frame.

    Patient coordinates (LPS mm) are only comparable inside one frame of reference, so an
    annotation whose regions name any other frame than the image's cannot be placed on
    it, even when some of its regions are in the right one. Nothing is refused when
    either side declares no frame of reference. Returns None when the two agree.
    """
    declared = info.frame_of_reference_uids or (
        (info.frame_of_reference_uid,) if info.frame_of_reference_uid else ()
    )
    if not image_frame_of_reference_uid or not declared:
        return None
    foreign = tuple(uid for uid in declared if uid != image_frame_of_reference_uid)
    if not foreign:
        return None
    return FrameOfReferenceMismatch(image_frame_of_reference_uid, tuple(declared), foreign)


def check_frame_of_reference(info: AnnotationInfo, series: DicomSeries) -> None:
    """Refuse an annotation not drawn wholly in the image series' frame of reference.

    Applies :func:`frame_of_reference_mismatch`; placing contours or segments of another
    frame would put voxels in the wrong place silently.
    """
    mismatch = frame_of_reference_mismatch(info, series.frame_of_reference_uid)
    if mismatch is None:
        return
    where = str(Path(series.files[0]).parent) if series.files else "(no files)"
    hint = (
        " The annotation names this very series, so one of the two was probably re-identified"
        " or edited on its own."
        if series.series_instance_uid in info.referenced_series_uids
        else ""
    )
    what = f"{info.path}: this {info.modality}"
    raise AnnotationError(
        f"{mismatch.describe(what, f'{series.series_instance_uid} in {where}')}. Use the "
        f"image series the annotation was drawn on (frame of reference {mismatch.foreign[0]}),"
        f" or export the annotation again from this series.{hint}"
    )

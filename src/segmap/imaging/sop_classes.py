"""What kind of DICOM object a file is, decided once: SOP class UIDs and the ROI collection rule.

Every part of segmap that tells images from annotations asks here: series loading (which
instances make a scan), the annotation readers (RTSTRUCT or SEG), the batch's discovery
and the web service's upload checks. UIDs are pydicom's constants where pydicom has them.
"""

from __future__ import annotations

from enum import StrEnum

from pydicom.uid import (
    UID,
    ParametricMapStorage,
    RTDoseStorage,
    RTStructureSetStorage,
    SegmentationStorage,
)

RTSTRUCT_SOP_CLASS = RTStructureSetStorage
"""RT Structure Set Storage, 1.2.840.10008.5.1.4.1.1.481.3 (contours)."""
SEG_SOP_CLASS = SegmentationStorage
"""Segmentation Storage, 1.2.840.10008.5.1.4.1.1.66.4 (BINARY and FRACTIONAL masks)."""
LABELMAP_SEG_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.66.7")
"""Label Map Segmentation Storage (DICOM 2024, supplement 243); pydicom 3.0 has no name."""

IMAGE_SEG_SOP_CLASSES = frozenset({SEG_SOP_CLASS, LABELMAP_SEG_SOP_CLASS})
"""The SEG SOP classes segmap reads (image segmentations, not surface ones)."""
ANNOTATION_SOP_CLASSES = frozenset({RTSTRUCT_SOP_CLASS, *IMAGE_SEG_SOP_CLASSES})
"""SOP classes of the ROI collections segmap reads."""
NON_SCAN_SOP_CLASSES = frozenset({*IMAGE_SEG_SOP_CLASSES, RTDoseStorage, ParametricMapStorage})
"""Instances that carry Rows/Columns but are not a scan an annotation can be drawn on."""


class CollectionKind(StrEnum):
    """The two kinds of ROI collection: contours (RTSTRUCT) or masks (SEG)."""

    RTSTRUCT = "RTSTRUCT"
    SEG = "SEG"

    @property
    def article(self) -> str:
        """``an`` or ``a``, for sentences (``an RTSTRUCT``, ``a SEG``)."""
        return "an" if self is CollectionKind.RTSTRUCT else "a"


def collection_kind(modality: str, sop_class_uid: str) -> CollectionKind | None:
    """RTSTRUCT or SEG when Modality or SOPClassUID say the object is an ROI collection.

    RTSTRUCT wins when either says so; SEG when the SOP class is one of
    :data:`IMAGE_SEG_SOP_CLASSES` or the Modality is SEG (a surface segmentation is a SEG
    too: readers that cannot use it refuse it with that reason). None for anything else.
    """
    modality = (modality or "").strip().upper()
    sop_class = (sop_class_uid or "").strip()
    if modality == CollectionKind.RTSTRUCT or sop_class == RTSTRUCT_SOP_CLASS:
        return CollectionKind.RTSTRUCT
    if modality == CollectionKind.SEG or sop_class in IMAGE_SEG_SOP_CLASSES:
        return CollectionKind.SEG
    return None

"""The composite mask of a conversion as a DICOM SEG on its image series, for viewers.

A reviewer opens the study in OHIF and sees the generated mask over the scan: each
region value of the map is one segment, labelled and coloured as the map says (see
:mod:`segmap.pipeline.derived_seg_segments`), derived from the image series the mask was
made on. highdicom writes the SEG: it copies patient, study and frame of reference from
the source images, takes every frame's geometry (ImagePositionPatient, the oblique
ImageOrientationPatient, PixelSpacing ``[row, column]``) from the image it was cut
from, references the series (ReferencedSeriesSequence) and each frame's source image
(DerivationImageSequence), and omits frames without a voxel. What is ours is small and
says why below: which planes become frames, the segment table, and filling the patient
and study attributes highdicom insists on when an anonymised series dropped them.

The mask array is indexed ``[k, j, i]`` (slice, row, column) on ``series.grid``, the
order of the series' files along the slice normal, which is the order the frames are
handed to highdicom, frame ``n`` with source image ``series.files[n]``.

BINARY is the default type: it is what the Segmentation Storage SOP class has always
held and what OHIF 3 reads. LABELMAP (the Label Map Segmentation Storage class, one
frame per slice whose pixels are segment numbers, here the mask values themselves) is
offered too; highdicom writes it and segmap reads it, but viewers read it less widely.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import segmap
from segmap.annotations.types import AnnotationInfo
from segmap.imaging.series import DicomSeries
from segmap.labelmap import RegionMap
from segmap.labelmap.colour_comments import read_colour_comments
from segmap.labelmap.palette import RGBA
from segmap.pipeline.derived_seg_segments import (
    LO_MAX_CHARS,
    DerivedSegError,
    SegSegment,
    segment_table,
)

MANUFACTURER = "segmap"
DEVICE_SERIAL_NUMBER = "0"  # type 1 in highdicom; software has no serial number
CONTENT_LABEL = "SEGMAP"  # CS: 16 characters, capitals, digits, space, underscore
SERIES_NUMBER_OFFSET = 1000
"""Default SeriesNumber: the image series' number plus this, so the two sort together."""

_PATIENT_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
)
"""Type 2 attributes highdicom reads from the first source image (empty when absent)."""


class SegKind(StrEnum):
    """Which SEG to write."""

    BINARY = "BINARY"
    LABELMAP = "LABELMAP"


@dataclass(frozen=True, eq=False)
class DerivedSeg:
    """A derived SEG built in memory, and what went into it.

    Attributes:
        dataset: the SEG (a pydicom Dataset; ``save_as`` or send it).
        segments: its segments in SegmentSequence order (LABELMAP's background aside).
        omitted_voxels: mask voxels on grid planes that no image file holds (only after
            a gap fix-up); a SEG frame needs a source image, so these are left out.
        timings_s: seconds spent checking and numbering the mask, reading the source
            headers, in highdicom and (after :meth:`save`) saving.
    """

    dataset: hd.seg.Segmentation
    segments: tuple[SegSegment, ...]
    omitted_voxels: int
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        """NumberOfFrames written (empty frames are omitted)."""
        return int(self.dataset.NumberOfFrames)

    def save(self, path: str | Path) -> Path:
        """Write the SEG to ``path`` as a DICOM file (Part 10, explicit VR little endian)."""
        t = time.perf_counter()
        self.dataset.save_as(Path(path), enforce_file_format=True)
        self.timings_s["save"] = time.perf_counter() - t
        return Path(path)


def build_derived_seg(
    labels_kji: npt.NDArray[np.integer],
    series: DicomSeries,
    rmap: RegionMap,
    *,
    colours: Mapping[int, RGBA] | None = None,
    kind: SegKind = SegKind.BINARY,
    series_description: str = "segmap mask",
    content_description: str = "",
    algorithm_parameters: Mapping[str, str] | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int | None = None,
) -> DerivedSeg:
    """A SEG holding ``labels_kji`` (a composite mask painted with ``rmap``'s values).

    Args:
        labels_kji: mask values, shape ``series.grid.array_shape``; 0 is background.
        series: the image series the mask lies on (its files' headers are read here).
        rmap: the region map that painted the mask: one segment per distinct value.
        colours: colours by value; the palette for values without one.
        kind: BINARY (default) or LABELMAP.
        series_description: SeriesDescription (cut to 64 characters), e.g. the model.
        content_description: ContentDescription (cut to 64 characters).
        algorithm_parameters: recorded in each segment's algorithm identification.
        series_instance_uid, sop_instance_uid: new UIDs unless given.
        series_number: SeriesNumber; default the image series' number plus 1000.

    Raises:
        DerivedSegError: the mask does not fit the series or holds values the map lacks,
            a label cannot be a SegmentLabel, or a source image cannot be read.
    """
    labels = np.asarray(labels_kji)
    if labels.shape != series.grid.array_shape:
        raise DerivedSegError(
            f"the mask has shape {labels.shape} but the series {series.series_instance_uid} "
            f"has the grid {series.grid.array_shape} (slices, rows, columns)"
        )
    segments = segment_table(rmap, colours, number_is_value=kind is SegKind.LABELMAP)
    t0 = time.perf_counter()
    _check_values(labels, segments)
    frames, omitted = _frames_of_files(labels, series)
    pixels = frames if kind is SegKind.LABELMAP else _to_segment_numbers(frames, segments)
    t1 = time.perf_counter()
    sources = _source_datasets(series)
    t2 = time.perf_counter()
    first = sources[0]
    with warnings.catch_warnings():
        # highdicom warns when a copied PatientName has a single component ("ANON"): the
        # name is the image's, copied as it is, and there is nothing for a user to do.
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixels,
            segmentation_type=kind.value,
            segment_descriptions=[_description(s, algorithm_parameters) for s in segments],
            series_instance_uid=series_instance_uid or hd.UID(),
            series_number=series_number
            if series_number is not None
            else _default_series_number(first),
            sop_instance_uid=sop_instance_uid or hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MANUFACTURER,
            software_versions=segmap.__version__,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            content_label=CONTENT_LABEL,
            content_description=_lo(content_description) or None,
            omit_empty_frames=True,
            # UTF-8, whatever the images used: labels may be in any script, and pydicom
            # re-encodes the patient and study values it copies.
            specific_character_set="ISO_IR 192",
        )
    seg.SeriesDescription = _lo(series_description)
    t3 = time.perf_counter()
    timings = {"prepare_frames": t1 - t0, "read_headers": t2 - t1, "highdicom": t3 - t2}
    return DerivedSeg(seg, segments, omitted, timings)


def _source_datasets(series: DicomSeries) -> list[Dataset]:
    """The series' headers in file order (no pixel data: highdicom needs none)."""
    sources: list[Dataset] = []
    for path in series.files:
        try:
            sources.append(pydicom.dcmread(path, stop_before_pixels=True))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise DerivedSegError(
                f"{path}: cannot read the image header again for the SEG: "
                f"{exc}; was the file changed during the conversion?"
            ) from exc
    first = sources[0]
    for keyword in _PATIENT_STUDY_TYPE2:
        if keyword not in first:
            setattr(first, keyword, "")
    if first.get("SliceThickness") in (None, ""):
        # Type 1 in the SEG's pixel measures; the grid's slice spacing is the best value
        # an image without it offers.
        first.SliceThickness = pydicom.valuerep.DSfloat(series.grid.spacing[2], auto_format=True)
    return sources


def _frames_of_files(
    labels: npt.NDArray[np.integer], series: DicomSeries
) -> tuple[npt.NDArray[np.integer], int]:
    """The planes that image files hold, in file order, and the voxels left on the others.

    Without a gap fix-up file ``n`` is plane ``n`` and the array is used as it is.
    """
    if not series.slice_indices:
        return labels, 0
    ks = [series.k_of(n) for n in range(len(series.files))]
    empty = list(series.empty_planes)
    omitted = int(np.count_nonzero(labels[empty])) if empty else 0
    return labels[ks], omitted


def _check_values(labels: npt.NDArray[np.integer], segments: tuple[SegSegment, ...]) -> None:
    """Refuse a mask value that no segment holds (it would silently vanish otherwise).

    Counted a slice at a time: ``bincount`` of the whole volume would first copy it to
    64-bit integers (630 MB for 512x512x300) and take seconds.
    """
    counts = np.zeros(1, dtype=np.int64)
    for plane in labels:
        found = np.bincount(plane.ravel())
        if found.size > counts.size:
            found[: counts.size] += counts
            counts = found
        else:
            counts[: found.size] += found
    stray = sorted(set(np.flatnonzero(counts).tolist()) - {0, *(s.value for s in segments)})
    if stray:
        raise DerivedSegError(
            f"the mask holds the value(s) {', '.join(map(str, stray[:10]))}, which the region "
            "map lacks; write the SEG with the map that painted the mask"
        )


def _to_segment_numbers(
    frames: npt.NDArray[np.integer], segments: tuple[SegSegment, ...]
) -> npt.NDArray[np.integer]:
    """Mask values replaced by segment numbers (a BINARY SEG numbers segments 1..N).

    A slice at a time, for the same reason as :func:`_check_values`.
    """
    if all(s.number == s.value for s in segments):
        return frames
    lut = np.zeros(
        max(s.value for s in segments) + 1, dtype=np.uint8 if len(segments) <= 255 else np.uint16
    )
    for s in segments:
        lut[s.value] = s.number
    out = np.empty(frames.shape, dtype=lut.dtype)
    for k, plane in enumerate(frames):
        np.take(lut, plane, out=out[k])
    return out


def _description(s: SegSegment, parameters: Mapping[str, str] | None) -> hd.seg.SegmentDescription:
    desc = hd.seg.SegmentDescription(
        segment_number=s.number,
        segment_label=s.label,
        # The map says nothing of anatomy; "Tissue" is what OHIF gives a new segment.
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        # Annotators drew the regions; segmap rasterised and painted them.
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="segmap",
            family=codes.cid7162.ManualProcessing,
            version=segmap.__version__,
            parameters=dict(parameters) if parameters else None,
        ),
        display_color=hd.color.CIELabColor.from_rgb(*s.colour_rgb),
    )
    desc.SegmentDescription = s.description
    return desc


def _default_series_number(first: Dataset) -> int:
    try:
        return int(first.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET
    except (TypeError, ValueError):
        return SERIES_NUMBER_OFFSET


def _lo(text: str) -> str:
    """``text`` as an LO value: one line, at most 64 characters, no backslash."""
    one_line = " ".join(text.replace("\\", "/").split())
    return one_line if len(one_line) <= LO_MAX_CHARS else one_line[: LO_MAX_CHARS - 1] + "…"


def write_conversion_seg(
    path: Path,
    labels_kji: npt.NDArray[np.integer],
    series: DicomSeries,
    rmap: RegionMap,
    *,
    map_path: Path | None,
    annotation: AnnotationInfo,
    description: str = "",
) -> list[str]:
    """Write the SEG of one conversion to ``path``; warnings for the report.

    Colours are the map file's ``# segmap colour:`` comments (when the map came from a
    file), else the palette. SeriesDescription is ``description`` or names the map file
    and its checksum; each segment's algorithm parameters record the map's SHA-256 and
    the annotation's SOPInstanceUID.
    """
    colours = read_colour_comments(map_path.read_text(encoding="utf-8-sig")) if map_path else {}
    map_name = map_path.name if map_path else "region map"
    derived = build_derived_seg(
        labels_kji,
        series,
        rmap,
        colours=colours,
        series_description=description or f"segmap mask {map_name} {rmap.sha256[:8]}",
        content_description=f"segmap composite of {annotation.modality} {annotation.label}",
        algorithm_parameters={
            "region_map_sha256": rmap.sha256,
            "annotation_sop_instance_uid": annotation.sop_instance_uid,
        },
    )
    derived.save(path)
    warnings = []
    if derived.omitted_voxels:
        warnings.append(
            f"{path.name} leaves out {derived.omitted_voxels} mask voxels on grid planes that "
            "no image file holds (added by the gap fix-up): a SEG frame needs a source image"
        )
    if not np.any(labels_kji):
        warnings.append(f"{path.name}: the composite mask is empty, so every frame is empty")
    return warnings

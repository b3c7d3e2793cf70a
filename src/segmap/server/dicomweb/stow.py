"""STOW-RS storage: the parts of a request stored the way an upload stores them.

Images go through the session upload (``imaging.upload.upload_dicom``): grouped into
sessions by study and scans by series, an instance already stored with the same bytes
counted as stored, one with other bytes refused. RTSTRUCT and SEG become ROI collections
through ``imaging.collection_upload.store_staged_collection`` (which checks the
referenced scan and frame of reference before anything is placed, then tells the
automation), labelled from their SeriesDescription, made unique in the session. Images
are stored first, so an annotation may reference a series sent in the same request.

Each part ends as an :class:`Outcome`: stored, or failed with a standard FailureReason
(PS3.18 §10.5.3, PS3.7 Annex C) and a sentence saying why.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from segmap.annotations.info import read_annotation_info
from segmap.errors import AnnotationError
from segmap.imaging.dicom_probe import check_inflated_size
from segmap.imaging.instance_check import ImageHeader, image_header_of
from segmap.imaging.sop_classes import CollectionKind, collection_kind
from segmap.server.db.dicomweb import DicomwebInstance
from segmap.server.db.imaging import ImagingSession, RoiCollection, StoredVia
from segmap.server.dicomweb.index_entry import IndexEntry, index_entry, read_dataset
from segmap.server.errors import Conflict, ServiceError
from segmap.server.imaging.collection_upload import store_staged_collection
from segmap.server.imaging.collections import find_by_label
from segmap.server.imaging.events import ImagingEvents
from segmap.server.imaging.unzip import UploadLimits
from segmap.server.imaging.upload import upload_dicom
from segmap.server.storage import StagedFile, Storage
from segmap.server.web.auth import Principal
from segmap.server.web.transfer import IncomingFile

PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
_MAX_LABEL = 200


@dataclass
class Outcome:
    """What became of one part: stored (``failure`` None) or why not."""

    number: int
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    modality: str = ""
    failure: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class StowPart:
    """One received part: its number in the body, media type and staged bytes, and what
    :func:`read_part` found in it (``header`` and ``entry`` only for an image that
    passed the upload's checks; otherwise the upload reads it again and says why)."""

    number: int
    content_type: str
    staged: StagedFile
    outcome: Outcome
    header: ImageHeader | None = None
    entry: IndexEntry | None = None


def read_part(number: int, content_type: str, staged: StagedFile, max_file_bytes: int) -> StowPart:
    """Read a staged part once: its identity, and for an image its checked header and
    DICOMweb index entry, so storing it parses nothing again.

    Runs outside any transaction (STOW-RS calls it while the body still arrives). A part
    this quick path cannot read as an image is identified as before and left to the
    upload's own checks, so its outcome and reason are the upload's.
    """
    if content_type not in ("", "application/dicom"):
        outcome = Outcome(number, failure=CANNOT_UNDERSTAND)
        outcome.reason = f"the part is {content_type}, not application/dicom"
        return StowPart(number, content_type, staged, outcome)
    limits = UploadLimits.for_upload_limit(max_file_bytes)
    try:
        # pydicom inflates a deflated data set in memory whole: bound it first (as the
        # upload does), and leave a refused one to the upload.
        inflate_cap = max(limits.ratio_grace_bytes, limits.max_ratio * staged.size)
        check_inflated_size(staged.path, min(inflate_cap, limits.max_file_bytes))
        with open(staged.path, "rb") as fp:
            ds = read_dataset(fp)
            header = image_header_of(ds, staged.path)  # before any value is converted
            outcome = _identity(number, ds)
            return StowPart(number, content_type, staged, outcome, header, index_entry(ds, fp))
    except Exception:  # not an image that passes: the slow path below says why
        return StowPart(number, content_type, staged, _identify(number, staged))


def store_parts(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    parts: list[StowPart],
    *,
    study: str | None,
    events: ImagingEvents,
    max_file_bytes: int,
    stored_via: StoredVia = StoredVia.DICOMWEB,
) -> list[Outcome]:
    """Store every part (committed per upload) and say what became of each.

    ``study`` is the StudyInstanceUID of ``POST /studies/{study}`` (other studies'
    instances fail), None for ``POST /studies``. Every staged file is consumed.
    ``stored_via`` is recorded on the ROI collections stored (DICOMweb or OHIF).
    """
    outcomes = {p.number: p.outcome for p in parts}
    images: list[StowPart] = []
    annotations: list[tuple[StowPart, CollectionKind]] = []
    for part in parts:
        outcome = outcomes[part.number]
        if outcome.failure is not None:
            continue
        if study is not None and outcome.study_uid != study:
            outcome.failure, outcome.reason = (
                DATA_SET_DOES_NOT_MATCH,
                (
                    f"its StudyInstanceUID {outcome.study_uid} is not the study {study} the "
                    "request was sent to"
                ),
            )
        elif (kind := collection_kind(outcome.modality, outcome.sop_class_uid or "")) is not None:
            annotations.append((part, kind))
        else:
            images.append(part)
    for part in parts:
        if outcomes[part.number].failure is not None:
            storage.discard(part.staged)
    if images:
        _store_images(db, storage, principal, project_id, images, outcomes, max_file_bytes)
    for part, kind in annotations:
        _store_annotation(
            db, storage, principal, project_id, part, kind, outcomes, events, stored_via
        )
    return [outcomes[p.number] for p in parts]


def _identify(number: int, staged: StagedFile) -> Outcome:
    try:
        ds = pydicom.dcmread(staged.path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for what is not DICOM
        outcome = Outcome(number, failure=CANNOT_UNDERSTAND)
        outcome.reason = f"the part is not a readable DICOM file ({type(exc).__name__}: {exc})"
        return outcome
    return _identity(number, ds)


def _identity(number: int, ds: Dataset) -> Outcome:
    outcome = Outcome(number)
    for field, keyword in (
        ("sop_class_uid", "SOPClassUID"),
        ("sop_instance_uid", "SOPInstanceUID"),
        ("study_uid", "StudyInstanceUID"),
        ("series_uid", "SeriesInstanceUID"),
    ):
        value = ds.get(keyword)
        setattr(outcome, field, str(value) if value else None)
    outcome.modality = str(ds.get("Modality") or "")
    missing = [k for k, v in (("SOPInstanceUID", outcome.sop_instance_uid),
               ("StudyInstanceUID", outcome.study_uid)) if not v]  # fmt: skip
    if missing:
        outcome.failure = DATA_SET_DOES_NOT_MATCH
        outcome.reason = f"the instance has no {' or '.join(missing)}"
    return outcome


def _store_images(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    images: list[StowPart],
    outcomes: dict[int, Outcome],
    max_file_bytes: int,
) -> None:
    names = {f"part {p.number}": p.number for p in images}
    result = upload_dicom(
        db,
        storage,
        principal,
        project_id,
        [IncomingFile(f"part {p.number}", p.staged) for p in images],
        limits=UploadLimits.for_upload_limit(max_file_bytes),
        headers={p.staged.sha256: p.header for p in images if p.header is not None},
        index_entries={p.staged.sha256: p.entry for p in images if p.entry is not None},
    )
    for rejection in result.rejected:
        number = names.get(rejection.file)
        if number is None:
            continue
        outcome = outcomes[number]
        clash = "different content" in rejection.reason
        outcome.failure = DUPLICATE_SOP_INSTANCE if clash else DATA_SET_DOES_NOT_MATCH
        outcome.reason = rejection.reason


def _store_annotation(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    part: StowPart,
    kind: CollectionKind,
    outcomes: dict[int, Outcome],
    events: ImagingEvents,
    stored_via: StoredVia,
) -> None:
    outcome = outcomes[part.number]
    try:
        _place_annotation(
            db, storage, principal, project_id, part, kind, outcome, events, stored_via
        )
    except ServiceError as exc:
        outcome.failure, outcome.reason = PROCESSING_FAILURE, exc.message
    except AnnotationError as exc:
        outcome.failure = DATA_SET_DOES_NOT_MATCH
        outcome.reason = str(exc).replace(str(part.staged.path), "the instance")
    finally:
        storage.discard(part.staged)  # a no-op once placed


def _place_annotation(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    part: StowPart,
    kind: CollectionKind,
    outcome: Outcome,
    events: ImagingEvents,
    stored_via: StoredVia,
) -> None:
    known = db.execute(
        select(DicomwebInstance.collection_id, RoiCollection.sha256)
        .outerjoin(RoiCollection, RoiCollection.id == DicomwebInstance.collection_id)
        .where(
            DicomwebInstance.project_id == project_id,
            DicomwebInstance.sop_instance_uid == outcome.sop_instance_uid,
        )
    ).first()
    db.rollback()
    if known is not None:
        if known[1] != part.staged.sha256:
            outcome.failure = DUPLICATE_SOP_INSTANCE
            outcome.reason = (
                f"an instance with SOPInstanceUID {outcome.sop_instance_uid} is already stored "
                "with different content; a UID names one object: give an edited file a new UID"
            )
        return  # the same file again: stored once, answered as stored
    info = read_annotation_info(part.staged.path)
    session = db.scalar(
        select(ImagingSession).where(
            ImagingSession.project_id == project_id,
            ImagingSession.study_instance_uid == info.study_instance_uid,
        )
    )
    if session is None:
        series = ", ".join(info.referenced_series_uids) or "(none named)"
        outcome.failure = PROCESSING_FAILURE
        outcome.reason = (
            f"the {kind} references series {series} of study {info.study_instance_uid}, "
            f"which project {project_id!r} does not hold; store that series first"
        )
        return
    header = pydicom.dcmread(part.staged.path, stop_before_pixels=True)
    for _ in range(3):
        label = _unique_label(db, session, _label_base(header, kind))
        db.rollback()
        try:
            store_staged_collection(
                db, storage, principal, project_id, session.id, label, kind.value,
                part.staged, events=events, stored_via=stored_via,
            )  # fmt: skip
            return
        except Conflict:
            if not part.staged.path.exists():
                raise
            continue  # the label was taken by a concurrent store: choose the next one
    raise Conflict("the collection's label kept being taken by concurrent stores; send it again")


def _label_base(ds: Dataset, kind: CollectionKind) -> str:
    text = str(ds.get("SeriesDescription") or "").strip()
    text = "".join(c for c in text if unicodedata.category(c) != "Cc")
    text = re.sub(r"[/\\]+", "-", text).strip()
    if not text:
        number = ds.get("SeriesNumber")
        text = f"{kind} {number}" if number not in (None, "") else str(kind)
    return text[:_MAX_LABEL].strip()


def _unique_label(db: Session, session: ImagingSession, base: str) -> str:
    """``base``, or ``base (2)``, ``base (3)``… — the first label the session lacks."""
    label, n = base, 1
    while find_by_label(db, session, label) is not None:
        n += 1
        label = f"{base} ({n})"
    return label

"""DICOM image upload into a project's sessions (one per study) and scans (one per series).

Upload order, so that no failure leaves a row without its file: every file is received
into staging and its header read outside any database transaction; then, in one
transaction, sessions and scans are found or created, each new instance is moved to its
storage key and its row inserted; on any error the placed files are deleted again.

Duplicates: an instance is identified by its SOPInstanceUID within the project. The same
UID with the same bytes (SHA-256) is "already stored" and changes nothing. The same UID
with *different* bytes is refused with a reason and the stored copy is kept: a UID names
one object, so two different files under one UID mean one of them was edited or
re-encoded, and silently swapping it would change scans that masks were made from.

Permissions: project owners and site admins upload; members and collaborators read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from segmap.imaging.dicom_probe import check_inflated_size, has_dicom_marker, looks_like_zip
from segmap.imaging.instance_check import (
    NOT_DICOM,
    ImageHeader,
    RejectedFile,
    read_image_header,
)
from segmap.imaging.sop_classes import CollectionKind
from segmap.server.db.imaging import ImagingSession
from segmap.server.dicomweb.index_entry import IndexEntry
from segmap.server.errors import Unprocessable
from segmap.server.imaging.unzip import expand, local_files, stage_path
from segmap.server.imaging.upload_rows import Plan, SessionUpload, store_instances
from segmap.server.registry.access import ProjectAccess, project_access, require_manage
from segmap.server.settings import DEFAULT_MAX_UPLOAD_BYTES
from segmap.server.storage import Storage
from segmap.server.upload_limits import StopCheck, UploadLimits, never_stop
from segmap.server.web.auth import Principal
from segmap.server.web.transfer import ClientGone, IncomingFile, Rejection

log = logging.getLogger("segmap.server.imaging")


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: sessions and scans it touched, and the files it refused.

    ``collections`` are the RTSTRUCT/SEG files sent among the images (refused too: they
    have an upload of their own, which the caller names).
    """

    sessions: list[SessionUpload]
    rejected: list[Rejection]
    collections: list[CollectionSent] = field(default_factory=list)

    @property
    def added(self) -> int:
        """Instances newly stored."""
        return sum(s.added for entry in self.sessions for s in entry.scans)

    @property
    def accepted(self) -> int:
        """Instances stored now or before (not refused)."""
        return sum(s.added + s.already_stored for entry in self.sessions for s in entry.scans)


@dataclass(frozen=True)
class CollectionSent:
    """An ROI collection sent with images: its file, why it was not stored, its kind, and
    the session of its study when the project has it."""

    file: str
    reason: str
    kind: CollectionKind
    session_id: int | None


def session_part_problem(first: bytes) -> str | None:
    """Why a file part of a session upload is refused from its first bytes, or None.

    For ``receive_files``: DICOM (Part 10) files and zip archives pass; anything else is
    refused before its bytes are written to staging.
    """
    if has_dicom_marker(first) or looks_like_zip(first):
        return None
    return NOT_DICOM


def session_body_sniff(name: str) -> Callable[[bytes], None]:
    """For a raw-body session upload named ``name``: refuse, from its first bytes, a body
    that is neither DICOM nor a zip (422 shaped like an upload that stored nothing)."""

    def sniff(first: bytes) -> None:
        reason = session_part_problem(first)
        if reason is not None:
            require_nonempty(UploadResult([], []), [Rejection(name, reason)])

    return sniff


def check_session_upload(
    db: Session, principal: Principal | None, project_id: str
) -> ProjectAccess:
    """Raise before any byte is received when the caller may not upload into the project."""
    access = project_access(db, principal, project_id)
    require_manage(access, "upload imaging sessions")
    return access


def upload_dicom(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    files_or_zip: Sequence[IncomingFile | Path],
    *,
    limits: UploadLimits | None = None,
    rejected: Sequence[Rejection] = (),
    stop: StopCheck = never_stop,
    headers: Mapping[str, ImageHeader] | None = None,
    index_entries: Mapping[str, IndexEntry] | None = None,
) -> UploadResult:
    """Store DICOM image files into the project's sessions and scans (committed).

    ``files_or_zip`` holds files already received into staging (``IncomingFile``, owned
    by this function from now on: placed or discarded) and/or local paths (files or
    folders, copied). Zip archives among them are unpacked. Files are grouped into
    sessions by StudyInstanceUID and scans by SeriesInstanceUID. A file that is not DICOM,
    is damaged, is not an image (RTSTRUCT and SEG files go through ``put_collection``) or
    clashes with a stored instance is refused with a reason; the rest is kept.
    ``rejected`` carries files refused before this call (e.g. too large) into the result.
    ``stop`` is called between files and pieces of files; the web service passes one that
    raises :class:`~segmap.server.web.transfer.ClientGone` once the client has gone away,
    which ends the upload with nothing stored. ``headers`` and ``index_entries`` (by the
    file's SHA-256) are what a caller that parsed the files already found: the checked
    header (``instance_check.image_header_of``, after ``check_inflated_size``) and the
    DICOMweb index entry; those files are not read again.
    """
    staged: list[IncomingFile] = [f for f in files_or_zip if isinstance(f, IncomingFile)]
    plan = Plan(rejected=list(rejected))
    try:
        access = check_session_upload(db, principal, project_id)
        limits = limits or UploadLimits.for_upload_limit(DEFAULT_MAX_UPLOAD_BYTES)
        db.rollback()  # hold no database lock while files are copied and read
        paths = [Path(f) for f in files_or_zip if not isinstance(f, IncomingFile)]
        for path in local_files(paths):
            stop()
            staged.append(IncomingFile(str(path), stage_path(storage, path, limits.max_file_bytes)))
        accepted = _classify(storage, staged, limits, plan, stop, headers or {})
        _drop_duplicates_in_upload(accepted, plan)
        stop()
        sessions = store_instances(db, storage, access, accepted, plan, index_entries)
        result = UploadResult(sessions, plan.rejected, _sent_collections(db, access, plan))
    except ClientGone:
        log.info(
            "session upload to project %s stopped after %d files: the client went away",
            project_id,
            plan.files_seen,
        )
        raise
    finally:
        for item in staged:
            storage.discard(item.staged)  # no-op for files already moved into storage
    return result


def _classify(
    storage: Storage,
    owned: list[IncomingFile],
    limits: UploadLimits,
    plan: Plan,
    stop: StopCheck,
    headers: Mapping[str, ImageHeader],
) -> list[tuple[IncomingFile, ImageHeader]]:
    """Read every file's header; refusals go to ``plan``. Unpacked zip entries are
    appended to ``owned`` as they come, so the caller discards whatever is not placed
    (also when ``stop`` raises half-way)."""
    accepted: list[tuple[IncomingFile, ImageHeader]] = []
    given = {id(f) for f in owned}
    for item in expand(storage, list(owned), limits, stop):
        plan.files_seen += 1
        if isinstance(item, Rejection):
            plan.rejected.append(item)
            continue
        if id(item) not in given:
            owned.append(item)
        stop()
        known = headers.get(item.staged.sha256)
        if known is not None:
            accepted.append((item, known))
            continue
        try:
            # pydicom inflates a deflated data set in memory whole: bound it first.
            inflate_cap = max(limits.ratio_grace_bytes, limits.max_ratio * item.staged.size)
            check_inflated_size(item.staged.path, min(inflate_cap, limits.max_file_bytes))
            accepted.append((item, read_image_header(item.staged.path)))
        except RejectedFile as exc:
            if exc.collection_kind:
                plan.collections.append((item.name, exc))
            else:
                plan.rejected.append(Rejection(item.name, exc.reason))
    return accepted


def _drop_duplicates_in_upload(
    accepted: list[tuple[IncomingFile, ImageHeader]], plan: Plan
) -> None:
    first: dict[str, tuple[IncomingFile, ImageHeader]] = {}
    for item, header in accepted:
        seen = first.get(header.sop_instance_uid)
        if seen is None:
            first[header.sop_instance_uid] = (item, header)
        elif seen[0].staged.sha256 != item.staged.sha256:
            plan.rejected.append(
                Rejection(
                    item.name,
                    f"{seen[0].name} in this upload has the same SOPInstanceUID "
                    f"{header.sop_instance_uid} but different content; a UID names one "
                    "object, so only the first was kept",
                )
            )
    accepted[:] = list(first.values())


def _sent_collections(db: Session, access: ProjectAccess, plan: Plan) -> list[CollectionSent]:
    out = []
    for name, exc in plan.collections:
        session = db.scalar(
            select(ImagingSession.id).where(
                ImagingSession.project_id == access.project.id,
                ImagingSession.study_instance_uid == exc.study_instance_uid,
            )
        )
        assert exc.collection_kind is not None
        out.append(CollectionSent(name, exc.reason, exc.collection_kind, session))
    return out


MAX_LISTED_REJECTIONS = 100
"""Refused files an answer names one by one; ``rejected_count`` gives them all. A zip of
50,000 junk entries would otherwise answer megabytes of the same sentence."""


def listed_rejections(rejected: Sequence[Rejection]) -> list[Rejection]:
    """The first :data:`MAX_LISTED_REJECTIONS` of ``rejected``, in upload order."""
    return list(rejected[:MAX_LISTED_REJECTIONS])


def require_nonempty(result: UploadResult, rejected: list[Rejection]) -> UploadResult:
    """``Unprocessable`` listing the first of ``rejected`` (and how many there are) when an
    upload stored nothing at all."""
    if result.accepted == 0:
        reasons = "; ".join(f"{r.file}: {r.reason}" for r in rejected[:5])
        more = len(rejected) - 5
        raise Unprocessable(
            "no file of the upload was stored"
            + (f": {reasons}" if reasons else "")
            + (f"; and {more} more refused" if more > 0 else ""),
            sessions=[],
            rejected=[{"file": r.file, "reason": r.reason} for r in listed_rejections(rejected)],
            rejected_count=len(rejected),
        )
    return result

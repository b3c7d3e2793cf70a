"""STOW-RS routes (PS3.18 §10.5): ``POST /studies`` and ``POST /studies/{study}``.

The caller must be allowed to upload into the project (owners and site admins), checked
before any byte is read; a state-changing call with ambient credentials must come from
this site (:func:`.auth.check_origin`). The body is read part by part into staging
(:mod:`.multipart`); a malformed or unfinished body is a 400 with nothing stored, since
storing starts only once the closing boundary has arrived. Then :mod:`.stow` stores the
parts and the answer lists them:

- ``ReferencedSOPSequence``: each stored instance with its ``RetrieveURL``;
- ``FailedSOPSequence``: each refused one with its ``FailureReason`` and, in
  ``ErrorComment`` (0000,0902), the sentence that says why (also in ``Warning``);
- ``RetrieveURL`` of the study when all instances belong to one;
- status 200 when all were stored, 202 when some failed, 409 when none could be
  stored (never 201: OHIF counts only 200, 202 and 204 as success).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from segmap.server.dicomweb.auth import check_origin, dicomweb_principal, project_reader
from segmap.server.dicomweb.errors import UnsupportedMediaType
from segmap.server.dicomweb.multipart import ReceivedPart, parse_content_type, read_parts_into
from segmap.server.dicomweb.responses import PREFIX, DicomwebRoute, dicom_json, project_root
from segmap.server.dicomweb.stow import Outcome, StowPart, read_part, store_parts
from segmap.server.imaging.events import imaging_events
from segmap.server.registry.access import require_manage
from segmap.server.storage import StagingWriter
from segmap.server.viewer.provenance import stow_route
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_database, get_settings, get_storage

router = APIRouter(prefix=PREFIX, route_class=DicomwebRoute, tags=["DICOMweb"])

MAX_PARTS = 100_000
# Parts flushed to disk and read at once. A flush waits on the disk (without the GIL),
# a read is pydicom (CPU, with it): a few in flight overlap the flushes with the reads
# and with the body still arriving; more would only queue for the GIL.
PARTS_AT_ONCE = 4


@router.post("/studies", name="dicomweb_stow")
async def stow(
    request: Request, project: str, principal: Principal | None = Depends(dicomweb_principal)
) -> Response:
    """STOW-RS: store instances of any studies."""
    return await _stow(request, project, None, principal)


@router.post("/studies/{study}", name="dicomweb_stow_study")
async def stow_study(
    request: Request,
    project: str,
    study: str,
    principal: Principal | None = Depends(dicomweb_principal),
) -> Response:
    """STOW-RS: store instances of one study (others fail)."""
    return await _stow(request, project, study, principal)


async def _stow(
    request: Request, project: str, study: str | None, principal: Principal | None
) -> Response:
    database = get_database(request)
    storage = get_storage(request)
    limit = get_settings(request).max_upload_bytes
    events = imaging_events(request)

    def check() -> str:
        with database.session() as db:
            access = project_reader(db, principal, project)
            require_manage(access, "store instances")
            check_origin(request, principal)
            return access.project.id

    project_id = await run_in_threadpool(check)
    content_type = request.headers.get("content-type")
    related = parse_content_type(content_type)
    if related.type not in (None, "application/dicom"):
        raise UnsupportedMediaType(
            f"parts of type {related.type} are not stored; send "
            'multipart/related; type="application/dicom" (metadata + bulk data STOW is not '
            "supported)"
        )
    received: list[StowPart] = []
    pending: list[asyncio.Task[StowPart]] = []
    at_once = asyncio.Semaphore(PARTS_AT_ONCE)

    async def stage(part: ReceivedPart[StagingWriter]) -> StowPart:
        with part:  # discards the file if it was not finished
            async with at_once:
                return await run_in_threadpool(_flush_and_read, part, limit)

    try:
        # Each part's bytes go straight into its staging file (hashed on the way) as
        # they arrive; then parts are flushed to disk and read (checked, their index
        # entries made) a few at a time while the body still arrives: the disk's
        # flushes overlap instead of queueing one after another, and the storing
        # transaction only places files and adds rows.
        parts = read_parts_into(
            request.stream(), content_type, lambda: storage.stage(limit),
            max_part_bytes=limit, max_parts=MAX_PARTS,
        )  # fmt: skip
        async for part in parts:
            pending.append(asyncio.ensure_future(stage(part)))
        received = list(await asyncio.gather(*pending))

        def store() -> list[Outcome]:
            with database.session(write=True) as db:
                return store_parts(
                    db, storage, principal, project_id, received, study=study,
                    events=events, max_file_bytes=limit, stored_via=stow_route(request),
                )  # fmt: skip

        outcomes = await run_in_threadpool(store)
    finally:
        for done in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(done, StowPart):
                storage.discard(done.staged)  # a no-op for what was stored
    return _answer(outcomes, project_root(request, project_id))


def _flush_and_read(part: ReceivedPart[StagingWriter], limit: int) -> StowPart:
    """Flush a received part's staging file to disk, then read it (one worker-thread
    call: each hand-over between the event loop and a thread costs more than the call)."""
    staged = part.file.finish()
    try:
        return read_part(part.number, part.content_type, staged, limit)
    except BaseException:
        part.file.discard()  # the staged file: finish() made it ours
        raise


def _answer(outcomes: list[Outcome], root: str) -> Response:
    stored = [o for o in outcomes if o.failure is None]
    failed = [o for o in outcomes if o.failure is not None]
    body: dict[str, Any] = {}
    studies = {o.study_uid for o in outcomes if o.study_uid}
    if len(studies) == 1 and stored:
        body["00081190"] = {"vr": "UR", "Value": [f"{root}/studies/{quote(studies.pop())}"]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_referenced(o, root) for o in stored]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_failed(o) for o in failed]}
    status = 200 if not failed else 202 if stored else 409
    warning = "; ".join(f"part {o.number}: {o.reason}" for o in failed[:5])
    header = f'299 segmap "{_latin1(warning)}"' if failed else None
    return dicom_json(dict(sorted(body.items())), status=status, warning=header)


def _uids(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if outcome.sop_class_uid:
        out["00081150"] = {"vr": "UI", "Value": [outcome.sop_class_uid]}
    if outcome.sop_instance_uid:
        out["00081155"] = {"vr": "UI", "Value": [outcome.sop_instance_uid]}
    return out


def _referenced(outcome: Outcome, root: str) -> dict[str, Any]:
    url = (
        f"{root}/studies/{quote(outcome.study_uid or '')}/series/"
        f"{quote(outcome.series_uid or '')}/instances/{quote(outcome.sop_instance_uid or '')}"
    )
    return {**_uids(outcome), "00081190": {"vr": "UR", "Value": [url]}}


def _failed(outcome: Outcome) -> dict[str, Any]:
    return {
        "00000902": {"vr": "LO", "Value": [outcome.reason]},
        **_uids(outcome),
        "00081197": {"vr": "US", "Value": [outcome.failure]},
    }


def _latin1(text: str) -> str:
    return text.replace('"', "'").encode("latin-1", "replace").decode("latin-1")

"""WADO-RS routes (PS3.18 §10.4) for studies, series and instances: files and metadata.

Instances are sent as stored, each part's ``Content-Type`` naming its transfer syntax
(see ``accept.py`` for the negotiation and its documented deviation), streamed from
storage in blocks. Metadata is each instance's DICOM JSON kept in the index, its Bulk
Data URIs under the instance's URL. Frames, bulk data and rendered images are in
:mod:`.routes_frames`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pydicom
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from segmap.server.dicomweb.accept import DICOM, Choice, Resource, negotiate
from segmap.server.dicomweb.auth import project_reading
from segmap.server.dicomweb.dicomjson import BULK_DATA_THRESHOLD, instance_metadata
from segmap.server.dicomweb.errors import NotAcceptable
from segmap.server.dicomweb.multipart import OutgoingPart, multipart_body, new_boundary
from segmap.server.dicomweb.responses import (
    PREFIX,
    DicomwebRoute,
    dicom_json_stream,
    project_root,
)
from segmap.server.dicomweb.retrieve import Located, file_chunks, locate
from segmap.server.dicomweb.stored_metadata import json_array, with_urls
from segmap.server.storage import Storage
from segmap.server.web.deps import get_storage

router = APIRouter(prefix=PREFIX, route_class=DicomwebRoute, tags=["DICOMweb"])

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"


def _located(
    request: Request,
    project: str,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    *,
    with_metadata: bool = False,
) -> tuple[list[Located], str]:
    with project_reading(request, project) as (db, access):
        pid = access.project.id
        found = locate(db, pid, study, series, instance, with_metadata=with_metadata)
    return found, project_root(request, pid)


def instances_response(
    request: Request, storage: Storage, located: list[Located], root: str
) -> Response:
    """The stored files of ``located`` as asked by the Accept header (streamed)."""
    accept = request.headers.get("accept")
    choices: dict[str, Choice] = {}
    for item in located:
        syntax = item.transfer_syntax_uid
        if syntax not in choices:
            choices[syntax] = negotiate(
                accept, Resource.INSTANCES, stored_syntax=syntax, can_transcode=False
            )
    first = choices[located[0].transfer_syntax_uid]
    if not first.multipart:
        if len(located) > 1:
            raise NotAcceptable(
                f"{len(located)} instances cannot be one application/dicom body; ask for "
                'multipart/related; type="application/dicom"'
            )
        only = located[0]
        return StreamingResponse(
            file_chunks(storage, only.storage_key),
            media_type=first.part_content_type,
            headers={"Content-Length": str(only.size)},
        )
    boundary = new_boundary()
    parts = (
        OutgoingPart(
            choices[item.transfer_syntax_uid].part_content_type,
            file_chunks(storage, item.storage_key),
            location=item.url(root),
            length=item.size,
        )
        for item in located
    )
    if len(choices) == 1:
        media_type = first.content_type(boundary)
    else:  # several syntaxes: each part names its own
        media_type = f'multipart/related; type="{DICOM}"; boundary={boundary}'
    return StreamingResponse(multipart_body(parts, boundary), media_type=media_type)


def metadata_response(
    request: Request, storage: Storage, located: list[Located], root: str
) -> Response:
    """The DICOM JSON of every instance of ``located``, as one streamed array."""
    negotiate(request.headers.get("accept"), Resource.METADATA)

    def items() -> Iterator[str]:
        for item in located:
            url = item.url(root)
            if item.metadata_json is not None:
                yield with_urls(item.metadata_json, url)
            else:  # the index could not encode it at store time: build it from the file
                with storage.open(item.storage_key) as fp:
                    ds = pydicom.dcmread(fp, defer_size=BULK_DATA_THRESHOLD)
                    yield json.dumps(instance_metadata(ds, url), separators=(",", ":"))

    return dicom_json_stream(json_array(items()))


@router.get(STUDY, name="dicomweb_retrieve_study")
def retrieve_study(
    request: Request,
    project: str,
    study: str,
) -> Response:
    """WADO-RS: every instance of a study."""
    storage = get_storage(request)
    located, root = _located(request, project, study)
    return instances_response(request, storage, located, root)


@router.get(SERIES, name="dicomweb_retrieve_series")
def retrieve_series(
    request: Request,
    project: str,
    study: str,
    series: str,
) -> Response:
    """WADO-RS: every instance of a series."""
    storage = get_storage(request)
    located, root = _located(request, project, study, series)
    return instances_response(request, storage, located, root)


@router.get(INSTANCE, name="dicomweb_retrieve_instance")
def retrieve_instance(
    request: Request,
    project: str,
    study: str,
    series: str,
    instance: str,
) -> Response:
    """WADO-RS: one instance."""
    storage = get_storage(request)
    located, root = _located(request, project, study, series, instance)
    return instances_response(request, storage, located, root)


@router.get(STUDY + "/metadata", name="dicomweb_study_metadata")
def study_metadata(
    request: Request,
    project: str,
    study: str,
) -> Response:
    """WADO-RS: the metadata of every instance of a study."""
    storage = get_storage(request)
    located, root = _located(request, project, study, with_metadata=True)
    return metadata_response(request, storage, located, root)


@router.get(SERIES + "/metadata", name="dicomweb_series_metadata")
def series_metadata(
    request: Request,
    project: str,
    study: str,
    series: str,
) -> Response:
    """WADO-RS: the metadata of every instance of a series."""
    storage = get_storage(request)
    located, root = _located(request, project, study, series, with_metadata=True)
    return metadata_response(request, storage, located, root)


@router.get(INSTANCE + "/metadata", name="dicomweb_instance_metadata")
def instance_metadata_route(
    request: Request,
    project: str,
    study: str,
    series: str,
    instance: str,
) -> Response:
    """WADO-RS: the metadata of one instance (a one-element array)."""
    storage = get_storage(request)
    located, root = _located(request, project, study, series, instance, with_metadata=True)
    return metadata_response(request, storage, located, root)

"""Imaging data of a project: sessions, scans, ROI collections and derived resources.

One import point for the API, the pages and the jobs; the work is done in
``imaging_sessions`` (DICOM upload, listing, a scan's files), ``imaging_collections``
(RTSTRUCT/SEG upload and reading) and ``imaging_derived`` (folders jobs write onto a
scan). Functions that take a ``principal`` check permissions (owners and site admins
write; members and collaborators read); the ones for jobs (``scan_files``,
``collection_file``, ``project_collections``, ``replace_derived_resource``,
``derived_folders_of``) do not.
"""

from segmap.server.services.imaging_collections import (
    SavedCollection,
    collection_file,
    collection_type_of,
    get_collection,
    list_collections,
    open_collection,
    prepare_collection_upload,
    project_collections,
    put_collection,
    referenced_scan,
    store_staged_collection,
)
from segmap.server.services.imaging_derived import (
    derived_folders_of,
    list_derived_resources,
    open_derived_file,
    replace_derived_resource,
    sweep_unreferenced,
)
from segmap.server.services.imaging_dicom import ImageHeader, RejectedFile, read_image_header
from segmap.server.services.imaging_sessions import (
    ScanUpload,
    SessionUpload,
    UploadResult,
    check_session_upload,
    find_scan,
    find_session,
    get_scan,
    get_session,
    list_sessions,
    require_nonempty,
    scan_files,
    sorted_scans,
    upload_dicom,
)
from segmap.server.services.imaging_upload import IncomingFile, Rejection, UploadLimits

__all__ = [
    "ImageHeader",
    "IncomingFile",
    "Rejection",
    "RejectedFile",
    "SavedCollection",
    "ScanUpload",
    "SessionUpload",
    "UploadLimits",
    "UploadResult",
    "check_session_upload",
    "collection_file",
    "collection_type_of",
    "derived_folders_of",
    "find_scan",
    "find_session",
    "get_collection",
    "get_scan",
    "get_session",
    "list_collections",
    "list_derived_resources",
    "list_sessions",
    "open_collection",
    "open_derived_file",
    "prepare_collection_upload",
    "project_collections",
    "put_collection",
    "read_image_header",
    "referenced_scan",
    "replace_derived_resource",
    "require_nonempty",
    "scan_files",
    "sorted_scans",
    "store_staged_collection",
    "sweep_unreferenced",
    "upload_dicom",
]

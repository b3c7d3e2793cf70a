"""The service layer: plain functions the API and the pages both call.

Each takes a SQLAlchemy ``Session`` and the caller (``Principal`` or None) first, checks
permissions, commits its own changes, and raises ``segmap.server.errors.ServiceError``
subclasses (401/403/404/409/413/422) that the API turns into JSON and the pages into a
friendly message.
"""

from segmap.server.services.access import ProjectAccess, project_access, require_principal
from segmap.server.services.accounts import (
    authenticate,
    count_users,
    create_user,
    find_user,
    issue_token,
    list_users,
    revoke_token,
    set_password,
)
from segmap.server.services.mlmodels import (
    check_spacing,
    create_model,
    delete_model,
    get_model,
    list_models,
)
from segmap.server.services.projects import (
    MemberEntry,
    ProjectEntry,
    create_project,
    get_project,
    list_members,
    list_projects,
    remove_member,
    set_member,
)
from segmap.server.services.regionmap import (
    REGION_MAP_FILENAME,
    ModelRegionMap,
    RegionMapSource,
    get_region_map,
    is_region_map_name,
    model_region_map,
    parse_region_map_upload,
)
from segmap.server.services.resources import (
    SavedFile,
    create_folder,
    delete_file,
    delete_folder,
    get_file,
    list_resources,
    open_file,
    prepare_upload,
    save_file,
    store_staged,
)

__all__ = [
    "REGION_MAP_FILENAME",
    "MemberEntry",
    "ModelRegionMap",
    "ProjectAccess",
    "ProjectEntry",
    "RegionMapSource",
    "SavedFile",
    "authenticate",
    "check_spacing",
    "count_users",
    "create_folder",
    "create_model",
    "create_project",
    "create_user",
    "delete_file",
    "delete_folder",
    "delete_model",
    "find_user",
    "get_file",
    "get_model",
    "get_project",
    "get_region_map",
    "is_region_map_name",
    "issue_token",
    "list_members",
    "list_models",
    "list_projects",
    "list_resources",
    "list_users",
    "model_region_map",
    "open_file",
    "parse_region_map_upload",
    "prepare_upload",
    "project_access",
    "remove_member",
    "require_principal",
    "revoke_token",
    "save_file",
    "set_member",
    "set_password",
    "store_staged",
]

"""Who calls a DICOMweb root, and what of a project they may reach.

The principals are the REST API's: a bearer token, the browser's session cookie, and —
for command-line DICOMweb tools, which mostly speak nothing else — HTTP Basic with a
username and password, checked by ``accounts.service.log_in`` (argon2id, and failed
attempts throttled per account and per address like every other log-in).

Basic sends the password with every request, and argon2 is slow on purpose (tens of
milliseconds), which a viewer fetching hundreds of frames would pay each time. So a
:class:`BasicCache` (one per app, at ``app.state``) remembers, under an HMAC of the
username and password, which account that pair was verified for and the password hash
it was verified against; a hit counts only while the account is active and its hash is
still that one, so a changed password or a disabled account takes effect at once.

Project isolation: a project the caller cannot read is answered exactly like a project
that does not exist (404), so nothing of one project can be learnt through another's
root or by guessing its name.

Reads (QIDO, WADO) are frequent and small, so who calls and what they may read is one
query per request: for a bearer token, :data:`READER_BY_TOKEN` finds the token's owner
and their role in the project together; other callers are found first, then
:data:`_PROJECT_ROLE` finds their role. Nothing is remembered between requests (bar the
Basic password check above): a revoked token, a disabled account or a removed member is
refused from the next request on.

State-changing requests (STOW) that carry ambient credentials — the cookie, or Basic
credentials a browser may have cached — are refused when they come from another origin
(``Origin`` header); a cookie also needs the ``X-CSRF-Token`` header or a same-origin
``Origin``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from segmap.server.accounts.api import client_address
from segmap.server.accounts.service import log_in
from segmap.server.db.accounts import User
from segmap.server.db.registry import Membership, Project
from segmap.server.errors import Forbidden, NotAuthenticated, NotFound
from segmap.server.names import name_key
from segmap.server.registry.access import ProjectAccess, project_access
from segmap.server.web import auth
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_database, get_settings

CHALLENGE = 'Basic realm="segmap DICOMweb", Bearer'
"""The ``WWW-Authenticate`` value of a 401 answer."""

_MAX_CACHED = 1024


@dataclass
class BasicCache:
    """Verified Basic credentials: HMAC(username, password) → (user id, password hash)."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    entries: OrderedDict[str, tuple[int, str]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def digest(self, username: str, password: str) -> str:
        """The cache key of a pair (never the password itself)."""
        message = username.encode("utf-8") + b"\0" + password.encode("utf-8")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def get(self, digest: str) -> tuple[int, str] | None:
        with self.lock:
            found = self.entries.get(digest)
            if found is not None:
                self.entries.move_to_end(digest)
            return found

    def put(self, digest: str, user_id: int, password_hash: str) -> None:
        with self.lock:
            self.entries[digest] = (user_id, password_hash)
            self.entries.move_to_end(digest)
            while len(self.entries) > _MAX_CACHED:
                self.entries.popitem(last=False)


def dicomweb_principal(request: Request) -> Principal | None:
    """The caller of a DICOMweb request: Basic, bearer token or cookie; None if anonymous.

    A FastAPI dependency (its own short read session). Raises ``NotAuthenticated`` for
    credentials that are sent but wrong.
    """
    with get_database(request).session() as db:
        return request_principal(request, db)


def request_principal(request: Request, db: Session) -> Principal | None:
    """:func:`dicomweb_principal` looked up in the caller's session ``db``."""
    header = request.headers.get("authorization")
    if header is not None and header.partition(" ")[0].lower() == "basic":
        return _basic(request, db, header.partition(" ")[2].strip())
    return auth.principal_from_request(request, db, get_settings(request).token_max_age_s)


READER_BY_TOKEN = (
    auth.TOKEN_OWNER.add_columns(Project.id.label("project_id"), Membership.role.label("role"))
    .outerjoin(Project, Project.id_key == bindparam("project_key"))
    .outerjoin(Membership, and_(Membership.project_id == Project.id, Membership.user_id == User.id))
)
"""A token's owner (``web.auth.TOKEN_OWNER``'s columns) with the project and their role in
it: ``project_id`` NULL when there is no such project, ``role`` NULL when they are not a
member. Parameters ``token_hash`` and ``project_key`` (``names.name_key`` of the id)."""

_PROJECT_ROLE = (
    select(Project.id.label("project_id"), Membership.role.label("role"))
    .outerjoin(
        Membership,
        and_(Membership.project_id == Project.id, Membership.user_id == bindparam("user_id")),
    )
    .where(Project.id_key == bindparam("project_key"))
)


@dataclass(frozen=True)
class Reader:
    """A caller that may read a project: who, the project's id as stored, and their role
    (None: a site admin who is not a member)."""

    principal: Principal
    project_id: str
    role: str | None


def may_read(principal: Principal, role: str | None) -> bool:
    """Whether a caller with this project role may read the project: every role, and
    site admins (the rule of ``registry.access.ProjectAccess.can_read``)."""
    return principal.is_admin or role is not None


def read_access(request: Request, db: Session, project: str) -> Reader:
    """The caller of a read request and the project ``project`` names, in ``db``.

    401 for no credentials or wrong ones; 404 for a project that does not exist or that
    the caller may not read (never 403: see the module doc).
    """
    header = _bearer_header(request)
    if header is not None:
        return _token_reader(db.connection(), request, header, project)
    principal = auth.require_principal(request_principal(request, db))
    # Asked for after the caller is found: a Basic log-in or a cookie's touch of its
    # log-in session ends the transaction they ran in.
    return _member_reader(db.connection(), principal, project)


@contextmanager
def reading(request: Request, project: str) -> Iterator[tuple[Connection, Reader]]:
    """One read transaction for a whole request: the caller's :class:`Reader` of
    ``project`` and the connection to query with (closed when the block ends).

    A bearer token needs no ORM session at all (one query on a plain connection);
    Basic and cookie callers are found through their log-in machinery first.
    """
    database = get_database(request)
    header = _bearer_header(request)
    if header is not None:
        with database.engine.connect() as connection:
            yield connection, _token_reader(connection, request, header, project)
        return
    with database.session() as db:
        reader = read_access(request, db, project)
        yield db.connection(), reader


@contextmanager
def project_reading(request: Request, project: str) -> Iterator[tuple[Session, ProjectAccess]]:
    """One read session for a whole request: the caller's access to ``project`` (as
    :func:`read_access` decides it) and the session to query with."""
    with get_database(request).session() as db:
        reader = read_access(request, db, project)
        found = db.get(Project, reader.project_id)
        if found is None:  # deleted since: cannot happen within one read transaction
            raise NotFound(f"there is no project {project!r}")
        yield db, ProjectAccess(project=found, principal=reader.principal, role=reader.role)


def prepare(connection: Connection) -> None:
    """Run the caller checks once with values that match nothing, so SQLAlchemy has
    compiled them (a few milliseconds each) before the first request needs them."""
    connection.execute(READER_BY_TOKEN, {"token_hash": "", "project_key": ""}).first()
    connection.execute(_PROJECT_ROLE, {"user_id": 0, "project_key": ""}).first()


def _bearer_header(request: Request) -> str | None:
    """The Authorization header when it is not Basic (so it must be a bearer token)."""
    header = request.headers.get("authorization")
    if header is None or header.partition(" ")[0].lower() == "basic":
        return None
    return header


def _token_reader(connection: Connection, request: Request, header: str, project: str) -> Reader:
    token = auth.bearer_token(header)
    params = {"token_hash": auth.token_digest(token), "project_key": name_key(project)}
    row = connection.execute(READER_BY_TOKEN, params).first()
    principal = auth.token_principal(row, get_settings(request).token_max_age_s)
    return _reader(principal, row, project)


def _member_reader(connection: Connection, principal: Principal, project: str) -> Reader:
    params = {"user_id": principal.id, "project_key": name_key(project)}
    return _reader(principal, connection.execute(_PROJECT_ROLE, params).first(), project)


def _reader(principal: Principal, row: Any, project: str) -> Reader:
    """The decision on a row with ``project_id`` and ``role`` (None: no such project)."""
    if row is None or row.project_id is None or not may_read(principal, row.role):
        raise NotFound(f"there is no project {project!r}")
    return Reader(principal, row.project_id, row.role)


def _basic(request: Request, db: Session, encoded: str) -> Principal:
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise NotAuthenticated("the Basic credentials are not base64 of 'username:password'")
    cache: BasicCache = request.app.state.dicomweb_basic_cache
    digest = cache.digest(username, password)
    known = cache.get(digest)
    if known is not None:
        user = db.get(User, known[0])
        if user is not None and user.is_active and user.password_hash == known[1]:
            return auth.principal_of(user, "basic")
    # A miss is a log-in like any other, so guessing over Basic is throttled per account
    # and per address exactly as the log-in page and the token route are (429).
    principal = log_in(db, username, password, address=client_address(request), via="basic")
    if principal is None:
        raise NotAuthenticated("the username or password is wrong")
    user = db.get(User, principal.id)
    if user is not None:
        cache.put(digest, user.id, user.password_hash)
    db.rollback()
    return principal


def check_origin(request: Request, principal: Principal | None) -> None:
    """For a state-changing request with ambient credentials, refuse another origin.

    A cookie also needs the ``X-CSRF-Token`` header unless ``Origin`` is this site's.
    Tokens are never ambient, so bearer calls pass.
    """
    if principal is None or principal.via == "token" or request.method in auth.SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise Forbidden(
            f"a request from {origin} may not store with this site's log-in; send "
            "'Authorization: Bearer <token>' from another origin"
        )
    if principal.via == "session" and origin is None:
        auth.check_csrf(request, request.headers.get(auth.CSRF_HEADER))


def project_reader(db: Session, principal: Principal | None, project_id: str) -> ProjectAccess:
    """The caller's access to a project it may read; 401 anonymous, else 404 (never 403)."""
    try:
        return project_access(db, principal, project_id)
    except Forbidden:
        raise NotFound(f"there is no project {project_id!r}") from None

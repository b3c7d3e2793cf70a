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

from sqlalchemy.orm import Session
from starlette.requests import Request

from segmap.server.accounts.api import client_address
from segmap.server.accounts.service import log_in
from segmap.server.db.accounts import User
from segmap.server.errors import Forbidden, NotAuthenticated, NotFound
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


@contextmanager
def project_reading(request: Request, project: str) -> Iterator[tuple[Session, ProjectAccess]]:
    """One read session for a whole request: the caller's access to ``project`` and the
    session to query with (closed when the block ends)."""
    with get_database(request).session() as db:
        yield db, project_reader(db, request_principal(request, db), project)


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

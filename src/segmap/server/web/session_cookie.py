"""The signed browser cookie (an ASGI middleware).

The cookie is a small JSON dict signed with itsdangerous: the log-in session's random
token (``web.auth.SESSION_KEY``), the CSRF token and pending flash messages. It proves
nothing by itself: who is logged in is decided by the ``login_sessions`` row the token
names (``web.auth``), which the server can delete at any time. Written by hand rather
than Starlette's SessionMiddleware because the ``Secure`` flag must follow the request's
scheme when not forced.
"""

from __future__ import annotations

import json
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "segmap_session"


class CookieSessionMiddleware:
    """Loads ``scope["session"]`` from the cookie and writes it back when it changed.

    Cookies are HttpOnly and SameSite=Lax; ``Secure`` when ``secure`` is True, or when
    ``secure`` is None and the request came over https.
    """

    def __init__(
        self, app: ASGIApp, secret: str, max_age_s: int, secure: bool | None = None
    ) -> None:
        self.app = app
        self.serializer = URLSafeTimedSerializer(secret, salt="segmap-session")
        self.max_age_s = max_age_s
        self.secure = secure

    def _load(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            data = self.serializer.loads(raw, max_age=self.max_age_s)
        except BadSignature:  # also covers an expired signature
            return {}
        return data if isinstance(data, dict) else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Most API and DICOMweb calls send no cookie at all: then there is nothing to
        # parse, and the session can only change by becoming non-empty (a log-in).
        sent = any(name == b"cookie" for name, _ in scope.get("headers", ()))
        raw = HTTPConnection(scope).cookies.get(COOKIE_NAME) if sent else None
        had_cookie = raw is not None
        scope["session"] = self._load(raw)
        before = json.dumps(scope["session"], sort_keys=True) if had_cookie else None
        secure = self.secure if self.secure is not None else scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = self._set_cookie(scope["session"], before, had_cookie, secure)
                if cookie is not None:
                    MutableHeaders(scope=message).append("Set-Cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _set_cookie(
        self, session: dict[str, Any], before: str | None, had_cookie: bool, secure: bool
    ) -> str | None:
        """The ``Set-Cookie`` value the answer needs: the session when it changed
        (``before``: its JSON as loaded, None when no cookie came), a deletion when it
        was emptied, else None."""
        attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if session and (before is None or json.dumps(session, sort_keys=True) != before):
            value = self.serializer.dumps(session)
            return f"{COOKIE_NAME}={value}; Max-Age={self.max_age_s}{attrs}"
        if not session and had_cookie:
            return f"{COOKIE_NAME}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{attrs}"
        return None

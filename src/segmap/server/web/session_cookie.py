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
        conn = HTTPConnection(scope)
        had_cookie = COOKIE_NAME in conn.cookies
        scope["session"] = self._load(conn.cookies.get(COOKIE_NAME))
        before = json.dumps(scope["session"], sort_keys=True)
        secure = self.secure if self.secure is not None else scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope["session"]
                changed = json.dumps(session, sort_keys=True) != before
                headers = MutableHeaders(scope=message)
                attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
                if session and changed:
                    value = self.serializer.dumps(session)
                    headers.append(
                        "Set-Cookie", f"{COOKIE_NAME}={value}; Max-Age={self.max_age_s}{attrs}"
                    )
                elif not session and had_cookie:
                    headers.append(
                        "Set-Cookie",
                        f"{COOKIE_NAME}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{attrs}",
                    )
            await send(message)

        await self.app(scope, receive, send_wrapper)

"""What every answer tells the browser: who may frame it, no content sniffing, no referrer.

:class:`BrowserHeaders` is a plain ASGI middleware (it never buffers a body, so streamed
downloads stay streamed). The app factory wraps the whole application in it, outside
Starlette's own error handler, so even a 500 answer carries the headers.

- ``Content-Security-Policy: frame-ancestors 'self'`` and ``X-Frame-Options: SAMEORIGIN``:
  segmap's own pages (later the OHIF viewer it serves at ``/ohif/``) may show segmap in a
  frame; another site may not, so it cannot dress a segmap page up as its own
  (clickjacking). Old browsers read the second header, current ones the first.
- ``X-Content-Type-Options: nosniff``: a browser takes the declared media type, so an
  uploaded file is never run as a script or page of this site.
- ``Referrer-Policy: same-origin``: links to other sites do not carry segmap's addresses
  (which name projects, sessions and labels).

A response that sets one of these itself keeps its own value.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", "frame-ancestors 'self'"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


class BrowserHeaders:
    """ASGI middleware adding :data:`BROWSER_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BROWSER_HEADERS:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

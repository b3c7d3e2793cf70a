"""A client that goes away mid-request is ordinary, not a fault of the service.

A browser tab closed during an upload makes Starlette raise ``ClientDisconnect`` from
the request body's stream; unhandled, uvicorn logs it as "Exception in ASGI application"
with a traceback, which reads like a bug and hides real ones. :func:`install` answers it
with one log line instead. The handler is keyed on the exception class, so it runs
before any catch-all error boundary, which never sees it. (The staged part of the body
is discarded by whoever was receiving it: see ``web.transfer`` and ``web.multipart``.)

A client gone mid-download needs nothing here: uvicorn drops what is still sent.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

log = logging.getLogger("segmap.server")

# Nobody reads this answer (the connection is gone); 400 keeps uvicorn's access log honest.
GONE_STATUS = 400


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    """Log one line naming the request, and give up on it."""
    log.info("the client went away during %s %s", request.method, request.url.path)
    return Response(status_code=GONE_STATUS)


def install(app: FastAPI) -> None:
    """Register :func:`on_client_disconnect` for ``ClientDisconnect``."""
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)

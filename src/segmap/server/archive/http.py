"""httpx bound to one archive: its base URL, its credentials, and its failures as ours.

Transport failures and 5xx answers become :class:`.errors.ArchiveUnavailable`, 401/403
:class:`.errors.ArchiveRefused`, an answer that is not what was asked
:class:`.errors.ArchiveAnswerError`; messages name the URL, never the password.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from segmap.server.archive.errors import ArchiveAnswerError, ArchiveRefused, ArchiveUnavailable


class ArchiveHttp:
    """httpx with the archive's base URL and credentials, errors turned into ours."""

    def __init__(self, url: str, username: str, password: str, timeout_s: float) -> None:
        self.base = url.rstrip("/")
        auth = httpx.BasicAuth(username, password) if username else None
        self.client = httpx.Client(auth=auth, timeout=timeout_s, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport_errors():
            answer = self.client.request(method, f"{self.base}{path}", **kwargs)
        self._check(answer, method, path)
        return answer

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """The answer with its body still to be read (``iter_bytes``), errors turned into
        ours while it is read too."""
        with (
            self._transport_errors(),
            self.client.stream(method, f"{self.base}{path}", **kwargs) as answer,
        ):
            self._check(answer, method, path)
            yield answer

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ArchiveUnavailable(
                f"the archive at {self.base} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise ArchiveUnavailable(
                f"cannot reach the archive at {self.base}: {_reason(exc)}; check the URL and "
                "that the archive is running and reachable from the segmap server"
            ) from exc

    def _check(self, answer: httpx.Response, method: str, path: str) -> None:
        """Raise for the answers that say the credentials or the archive failed."""
        if answer.status_code in (401, 403):
            raise ArchiveRefused(
                f"the archive at {self.base} refused the credentials (HTTP "
                f"{answer.status_code} for {method} {path.split('?')[0]}); check the username "
                "and password"
            )
        if answer.status_code >= 500:
            raise ArchiveUnavailable(
                f"the archive at {self.base} failed with HTTP {answer.status_code} for "
                f"{method} {path.split('?')[0]}; it will be tried again"
            )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.call(method, path, **kwargs)
        if answer.status_code == 204:
            return []
        if answer.status_code >= 400:
            raise ArchiveAnswerError(
                f"{method} {self.base}{path.split('?')[0]} answered HTTP {answer.status_code}"
            )
        try:
            return answer.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            kind = answer.headers.get("content-type", "no content type")
            raise ArchiveAnswerError(
                f"{method} {self.base}{path.split('?')[0]} answered {kind}, not JSON"
            ) from exc


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused (nothing listens there)"
    if "name or service not known" in text.lower() or "nodename" in text.lower():
        return "the host name is not known"
    return text

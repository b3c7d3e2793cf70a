"""What job logs and errors may show users: no server paths, no process ids.

Job logs and errors are read by every member of the project, who should learn what
went wrong with their data, not where the service keeps it. Messages from the pipeline
and from Python itself can name files by absolute path (``No such file or directory:
'/srv/segmap/storage/...'``); :func:`public_text` shortens each such path to its last
part, which is what a user can recognise. The full text goes to the service log
(``jobs.runner``) for the administrator.

Runners are named in logs by :func:`runner_label`, the random part of their token; the
token's host name and process id are for site admins only.
"""

from __future__ import annotations

import re

# An absolute POSIX path of two or more parts, not inside a word or a URL (``x/y`` and
# ``http://h/p`` are left alone): a quote, space, bracket or the start before it.
_ABS_PATH = re.compile(r"(?<![\w.~:/-])(?:/[^\s'\"/:,;()<>\[\]{}|]+){2,}/?")


def _last_part(match: re.Match[str]) -> str:
    parts = [p for p in match.group(0).split("/") if p]
    return parts[-1] if parts else match.group(0)


def public_text(text: str) -> str:
    """``text`` with every absolute file path cut to its last part (``/a/b.dcm`` -> ``b.dcm``)."""
    return _ABS_PATH.sub(_last_part, text)


def runner_label(token: str | None) -> str | None:
    """The part of a runner token users see: its random suffix (``host:pid:ab12cd34`` ->
    ``ab12cd34``); None stays None."""
    if token is None:
        return None
    return token.rsplit(":", 1)[-1]

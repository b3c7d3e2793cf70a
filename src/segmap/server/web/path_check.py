"""The check every route makes first: refuse a path that can name nothing.

The app factory makes :func:`refuse_unnameable_references` the first dependency of
every route; routes that bypass FastAPI's dependency solving
(:class:`segmap.server.dicomweb.responses.DirectRoute`) call it themselves. The rules for
one value are ``names.reference_problem`` and ``names.padding_problem``; the tables below
say what each path parameter of the app names and how messages call it.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from segmap.server.errors import NotFound, Unprocessable
from segmap.server.names import padding_problem, reference_problem

# What each path parameter of the app names (names.reference_problem): "id" is a numeric
# id or a label/UID that is never all digits. Parameters not listed are names.
PATH_PARAMETER_KINDS = {
    "project": "project",
    "username": "username",
    "model": "id",
    "session": "id",
    "scan": "id",
    "job_id": "id",
    "import_id": "id",
}


# How messages name each path parameter.
PATH_PARAMETER_WORDS = {
    "job_id": "job",
    "import_id": "archive import",
    "label": "collection label",
    "folder": "folder name",
    "name": "file name",
}


async def refuse_unnameable_references(request: Request) -> None:
    """Every route's first dependency: refuse a path that can name nothing.

    404 for ``²``, full-width ``１``, 30 digits or 2**63 as an id and for a project id or
    username outside its grammar; 422 for a path with control characters (``%0A``) or a
    value with spaces around it (no stored name has either). Once for every route of
    the API and the pages, before a lookup could turn such a value into a wrong row or a
    database overflow.

    Async although it waits on nothing: FastAPI runs a plain function dependency in a
    worker thread, a hand-over that cost more than the check on every request.
    """
    scope = request.scope
    # The server decodes %XX in the path leniently (an invalid byte becomes U+FFFD), so
    # "%FF" and "%FE" would both name "\ufffd": refuse what is not UTF-8 instead.
    for part, raw in (("path", scope.get("raw_path")), ("query", scope.get("query_string"))):
        if raw and not utf8_percent_encoded(raw, plus_is_space=part == "query"):
            raise Unprocessable(
                f"the {part} of the URL is not UTF-8 text once its %XX escapes are decoded; "
                "encode names as UTF-8 (as browsers do)"
            )
    for param, value in request.path_params.items():
        if not isinstance(value, str):
            continue
        what = PATH_PARAMETER_WORDS.get(param, param)
        padded = padding_problem(value)
        if padded is not None:
            raise Unprocessable(f"the {what} {value!r} in the path is not valid: {padded}")
        problem = reference_problem(value, PATH_PARAMETER_KINDS.get(param, "name"))
        if problem is not None:
            raise NotFound(f"there is no {what} {value!r}: {problem}")
    path = scope.get("path", "")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        # Checked on the whole path too: a route's pattern ends with "$", which also
        # matches before a final line break, so ".../files/map.txt%0A" would open map.txt
        # with a parameter that holds no line break.
        raise Unprocessable("the path contains a control character (a line break?); remove it")


def utf8_percent_encoded(raw: bytes, *, plus_is_space: bool = False) -> bool:
    """Whether ``raw`` (a URL path or query, as sent) is UTF-8 after decoding ``%XX``."""
    data = raw.replace(b"+", b" ") if plus_is_space else raw
    try:
        unquote_to_bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

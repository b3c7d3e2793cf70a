"""JSON shapes every API router shares: the error body and the common error answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """Every error: ``detail`` says what went wrong and what to do."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Not logged in"},
    403: {"model": ErrorOut, "description": "Not allowed for your role"},
}


def not_found(what: str) -> dict[int | str, dict[str, Any]]:
    """``ERRORS`` plus a 404 described as ``No such <what>``."""
    return {**ERRORS, 404: {"model": ErrorOut, "description": f"No such {what}"}}


RAW_BODY_DESCRIPTION = "The file's bytes, sent as the raw request body."


def raw_body(description: str = RAW_BODY_DESCRIPTION) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of an endpoint that reads the raw body (a file upload)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    }

"""Error helpers and handlers: 422 naming the field, 503 when the database is down, 500 without
a stack trace for anything unexpected (logged with context)."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from api.schemas.common import Message, ValidationProblem
from infra.storage import StorageError
from synib_spec import SpecError
from synib_spec.knobs import shown

log = logging.getLogger("api.errors")

_ERROR_DOCS: dict[int, dict[str, Any]] = {
    400: {"model": Message, "description": "The body could not be parsed (not UTF-8 JSON)"},
    401: {
        "model": Message,
        "description": "Missing, malformed, unknown, expired or revoked token",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    404: {"model": Message, "description": "Not found (or owned by another user)"},
    409: {"model": Message, "description": "Conflicts with the current state"},
    403: {"model": Message, "description": "Not allowed for this token's user"},
    408: {"model": Message, "description": "The request body did not arrive in time"},
    413: {"model": Message, "description": "Request body or upload over the size limit"},
    422: {"model": ValidationProblem, "description": "Invalid input: field and reason"},
    429: {
        "model": Message,
        "description": "Rate limit of this token exceeded",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    },
    503: {
        "model": Message,
        "description": "Artifact storage (or the database) unavailable; retry later",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    },
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error ``codes`` (401, 404, 409, ...)."""
    return {code: _ERROR_DOCS[code] for code in codes}


AUTH_ERRORS = error_responses(401, 429)
NOT_FOUND = error_responses(404)
NOT_FOUND_OR_CONFLICT = error_responses(404, 409)


def unprocessable(
    field: str, reason: str, loc_prefix: tuple[str, ...] = ("body",)
) -> HTTPException:
    """A 422 shaped like FastAPI's validation errors, plus ``field``."""
    loc = [*loc_prefix, *field.split(".")]
    item = {"loc": loc, "msg": f"{field}: {reason}", "type": "value_error", "field": field}
    return HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[item])


def spec_unprocessable(error: SpecError) -> HTTPException:
    """A 422 listing every problem of a ``SpecError`` (each naming its field)."""
    items = [unprocessable(e.field, e.reason).detail[0] for e in error.all()]
    return HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=items)


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


def conflict(reason: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_409_CONFLICT, detail=reason)


DATABASE_UNAVAILABLE = "database unavailable"  # with Retry-After: the client may retry
RETRY_AFTER_S = 5


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with a one-line JSON reason and Retry-After (the connection error is only logged)."""
    reason = " ".join(str(getattr(exc, "orig", exc)).split())[:300]
    log.error("database unavailable during %s %s: %s", request.method, request.url.path, reason)
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


STORAGE_RETRY_AFTER_S = 30


async def _storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After and the store's one-line reason (not writable, full); the
    filesystem error with its path is only logged."""
    cause = exc.cause if isinstance(exc, StorageError) else exc
    log.error("artifact storage error during %s %s: %s", request.method, request.url.path, cause)
    return JSONResponse(
        {"detail": f"{exc}; try again later"},
        status_code=503,
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error during %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by its text (``"inf"``): JSON has no such
    numbers, and Starlette's JSONResponse refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, each item naming its ``field`` like ours (``msg``: "field: reason", the
    rejected value shown after a wrong type), and the rejected input echoed JSON-safe: a body
    holding NaN or Infinity (Python's json module reads both) otherwise made the 422 itself
    fail (500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    items = [_named(dict(error)) for error in errors]
    return JSONResponse({"detail": json_safe(jsonable_encoder(items))}, status_code=422)


def _named(error: dict[str, Any]) -> dict[str, Any]:
    """A pydantic error item with ``field`` (``seeds[0]``, ``resources.cpus_per_trial``) and
    the field in front of its ``msg``."""
    loc = list(error.get("loc") or [])
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else str(part)
    if not field:
        return error
    reason = str(error.get("msg", ""))
    if str(error.get("type", "")).endswith("_type") and "input" in error:
        reason += f", got {shown(error['input'])}"
    return {**error, "msg": f"{field}: {reason}", "field": field}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)
    app.add_exception_handler(StorageError, _storage_unavailable)
    app.add_exception_handler(Exception, _unexpected)

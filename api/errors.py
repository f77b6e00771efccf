"""Error helpers and handlers: 422 naming the field, 503 when the database is down, 500 without
a stack trace for anything unexpected (logged with context)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

log = logging.getLogger("api.errors")


def unprocessable(
    field: str, reason: str, loc_prefix: tuple[str, ...] = ("body",)
) -> HTTPException:
    """A 422 shaped like FastAPI's validation errors, plus ``field``."""
    loc = [*loc_prefix, *field.split(".")]
    item = {"loc": loc, "msg": f"{field}: {reason}", "type": "value_error", "field": field}
    return HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[item])


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


def conflict(reason: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_409_CONFLICT, detail=reason)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error during %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)

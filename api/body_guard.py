"""Request bodies are read only for a known token, only so much, and only so slowly.

A pure ASGI middleware in front of the routes. For a request under ``/api/`` that may carry a
body (any method but GET, HEAD and OPTIONS):

- the token is checked before any body byte is read: a missing or malformed Authorization
  header is a 401 at once; a well-formed token is verified as every route verifies it
  (``api.deps.verified_token``, through the token cache) and an unknown, revoked or expired
  one is a 401;
- a JSON body (every body but the dataset upload's) is at most ``max_json_body_kb``: a larger
  Content-Length is a 413 at once, and the body (chunked ones included) is counted as it
  arrives, 413 once it is over. It is read here, whole, within ``body_read_timeout_s`` (else
  408), and handed to the route;
- the dataset upload streams on to its route, which caps it at ``max_upload_mb``; each piece
  of it must arrive within ``body_read_timeout_s`` of the previous one (else 408).

A refused body is never read: the server discards what the client still sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import presented_token, verified_token
from api.errors import database_unavailable
from infra.settings import Settings

GUARDED_PREFIX = "/api/"
UPLOAD_PATH = "/api/v1/datasets"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False)


class _TooLarge(Exception):
    """The body went over the JSON cap."""


def _message(status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isdigit() else None


class BodyGuardMiddleware:
    """Token before body, a cap on JSON bodies, a timeout on reading any body."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_json_bytes = settings.max_json_body_kb * 1024
        self.max_json_kb = settings.max_json_body_kb
        self.timeout_s = settings.body_read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in BODYLESS_METHODS
            or not scope["path"].startswith(GUARDED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        refusal = await self._refuse_token(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
        elif scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH:
            await self._stream_upload(scope, receive, send)
        else:
            await self._read_json_body(scope, receive, send)

    async def _refuse_token(self, scope: Scope) -> Response | None:
        """The 401 (or 503: database down) for this request's token; None when it is valid."""
        request = Request(scope)
        try:
            await verified_token(request, presented_token(await _bearer(request)))
        except HTTPException as exc:
            return _message(exc.status_code, str(exc.detail), exc.headers)
        except (OperationalError, InterfaceError) as exc:
            return await database_unavailable(request, exc)
        return None

    def _too_large(self) -> Response:
        detail = (
            f"request body larger than the limit of {self.max_json_kb} KiB (SYNIB_MAX_JSON_BODY_KB)"
        )
        return _message(413, detail)

    def _too_slow(self) -> Response:
        detail = f"request body not received within {self.timeout_s:g} s"
        return _message(408, detail, {"Connection": "close"})

    async def _read_json_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_json_bytes:
            await self._too_large()(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._capped_body(receive)
        except _TooLarge:
            await self._too_large()(scope, receive, send)
            return
        except TimeoutError:
            await self._too_slow()(scope, receive, send)
            return
        except ClientDisconnect:
            return  # nobody to answer
        await self.app(scope, _replay(body, receive), send)

    async def _capped_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_json_bytes:
                raise _TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _stream_upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The upload's route reads the body; a piece that does not come in time ends its
        stream (the route sees a disconnect) and the client gets a 408 instead of its answer."""
        state = {"body_done": False, "timed_out": False, "answered": False}

        async def receive_in_time() -> Message:
            if state["body_done"]:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                state["timed_out"] = True
                return {"type": "http.disconnect"}
            state["body_done"] = message["type"] != "http.request" or not message.get(
                "more_body", False
            )
            return message

        async def send_or_408(message: Message) -> None:
            if not state["timed_out"]:
                await send(message)
            elif message["type"] == "http.response.start" and not state["answered"]:
                state["answered"] = True
                await self._too_slow()(scope, receive, send)

        try:
            await self.app(scope, receive_in_time, send_or_408)
        except ClientDisconnect:
            if not (state["timed_out"] and not state["answered"]):
                raise
            await self._too_slow()(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` in one message, then defers to ``receive``
    (which then reports the client's disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay

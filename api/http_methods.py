"""HEAD, OPTIONS and 405 on the API's routes, as HTTP defines them (RFC 9110).

A pure ASGI middleware, for paths that one of the app's routes answers (the dashboard's
catch-all mount is not one of them: StaticFiles answers HEAD itself):

- HEAD is answered like GET, without the body (status and headers, Content-Length included,
  are GET's); a streamed body (a download, an event stream) is stopped after its headers;
- OPTIONS is answered 204 with ``Allow`` listing the path's methods;
- a 405 carries ``Allow`` with every method of the path (a path served by several routes, such
  as ``/jobs/{job_id}`` for GET and DELETE, got only the first route's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}
PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """The methods the routes (mounts aside) answer at ``scope``'s path, plus HEAD with GET and
    OPTIONS with any; empty when none answers. Each method is asked of ``route.matches``
    (included routers answer for their routes, without listing them)."""
    candidates = [route for route in routes if not isinstance(route, Mount)]
    methods = {
        method
        for method in PROBED_METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in candidates)
    }
    if "GET" in methods:
        methods.add("HEAD")
    if methods:
        methods.add("OPTIONS")
    return methods


def allow_header(methods: set[str]) -> str:
    return ", ".join(sorted(methods))


class HttpMethodsMiddleware:
    """HEAD as GET without a body, OPTIONS with Allow, 405 with the full Allow."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method in ("HEAD", "OPTIONS"):
            methods = allowed_methods(scope["app"].routes, scope)
            if method == "OPTIONS" and methods:
                await Response(status_code=204, headers={"Allow": allow_header(methods)})(
                    scope, receive, send
                )
                return
            if method == "HEAD" and "GET" in methods:
                await self._head_as_get(scope, receive, send)
                return
        await self.app(scope, receive, self._full_allow(scope, send))

    def _full_allow(self, scope: Scope, send: Send) -> Send:
        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = allowed_methods(scope["app"].routes, scope)
                if methods:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                    headers.append((b"allow", allow_header(methods).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        return send_with_allow

    async def _head_as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the GET; pass its status and headers, end the response right after them, and
        tell a body that is still streaming that the client left (so that it stops)."""
        finished = asyncio.Event()

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.start" and not finished.is_set():
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                finished.set()

        async def receive_until_finished() -> Message:
            if finished.is_set():
                return _DISCONNECT
            waiting = asyncio.ensure_future(receive())
            ended = asyncio.ensure_future(finished.wait())
            try:
                await asyncio.wait({waiting, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the caller gives up (a disconnect check polls and cancels)
                ended.cancel()
                if not waiting.done():
                    waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                return waiting.result()
            return _DISCONNECT

        scope["method"] = "GET"  # in place: the metrics middleware outside sees the route
        try:
            await self.app(scope, receive_until_finished, send_without_body)
        finally:
            scope["method"] = "HEAD"

"""JSON request bodies parsed off the event loop (FastAPI's documented custom Request and
APIRoute classes): a large body parsed on the loop would stall every other request meanwhile.
Small bodies (a job spec is about a kilobyte) are parsed in place: a thread hop costs more."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

INLINE_JSON_BYTES = 64 * 1024


class OffLoopJsonRequest(Request):
    """A Request whose ``json()`` parses a body over INLINE_JSON_BYTES in the thread pool."""

    async def json(self) -> Any:
        body = await self.body()
        if len(body) <= INLINE_JSON_BYTES:
            return json.loads(body)
        return await run_in_threadpool(json.loads, body)


class OffLoopJsonRoute(APIRoute):
    """An APIRoute handing its endpoint an OffLoopJsonRequest (``APIRouter(route_class=...)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def off_loop_json_handler(request: Request) -> Response:
            return await handler(OffLoopJsonRequest(request.scope, request.receive))

        return off_loop_json_handler

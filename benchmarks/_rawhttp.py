"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation.

httpx spends about 1.5 ms of CPU per request on this machine's cores; sharing 2 cores with the
server, the load generator then takes a third of the CPU the server needs. This client writes the
request bytes and reads ``Content-Length`` bodies (all the API's answers to the requests the
load test makes); its cost per request is a small fraction of httpx's. Not a general client: no
chunked bodies, redirects, TLS or proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit


class RawResponse:
    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.content = body

    def json(self) -> Any:
        return json.loads(self.content)


class RawHTTPError(Exception):
    """The connection failed or the answer was not one this client reads."""


class RawClient:
    """One keep-alive connection to ``base_url`` (``http://host:port/prefix``); requests on it
    go one at a time, like one httpx client used by one coroutine."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host:port URLs: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._fixed = f"Host: {self.host}:{self.port}\r\n{extra}".encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, json_body: Any = None) -> RawResponse:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed
        if json_body is not None:
            head += b"Content-Type: application/json\r\n"
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        try:
            reader, writer = await self._connection()
            writer.write(head + body)
            status_line_and_headers = await reader.readuntil(b"\r\n\r\n")
            status, length, close = _parse_head(status_line_and_headers)
            content = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.aclose()
            raise RawHTTPError(f"{type(exc).__name__}: {exc}") from exc
        if close:
            await self.aclose()
        return RawResponse(status, content)


def _parse_head(raw: bytes) -> tuple[int, int, bool]:
    """(status, content length, connection closes) of a response head."""
    lines = raw.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise RawHTTPError(f"bad status line {lines[0]!r}") from exc
    length: int | None = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding":
            raise RawHTTPError("chunked answers are not supported by this client")
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length is None:
        raise RawHTTPError("answer without Content-Length")
    return status, length, close

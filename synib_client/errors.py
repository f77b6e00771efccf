"""Errors raised by the Python client (``synib_client.client``), all ``ValueError`` subclasses.

A user can cause every one of them (a wrong id, a bad file, a server that is down), so the CLI
turns each into one line on stderr and exit code 2.
"""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(ValueError):
    """Base class of everything the client raises on purpose."""


class ApiError(ClientError):
    """The server answered 4xx/5xx.

    Attributes:
        status: the HTTP status code, e.g. 404.
        detail: the server's message; 422 validation errors flattened to ``field: reason`` lines.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class ConnectionFailed(ClientError):
    """The server could not be reached (refused, DNS, timeout, dropped connection)."""

    def __init__(self, url: str, reason: object) -> None:
        text = str(reason) or type(reason).__name__
        super().__init__(f"cannot reach the synib API at {url}: {text}")
        self.url = url


class ChecksumMismatch(ClientError):
    """A downloaded file's sha256 differs from the server's ``X-Checksum-SHA256``."""


def _format_loc(loc: Any) -> str:
    """``["body", "config", "lr"]`` -> ``config.lr``; the request part (body/query/path) is dropped."""
    if not isinstance(loc, list | tuple):
        return str(loc)
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts)


def flatten_detail(detail: Any) -> str:
    """Turn a FastAPI ``detail`` (str, dict or list of validation errors) into readable text.

    A list of ``{"loc": [...], "msg": ...}`` items becomes one ``field: reason`` line per item.
    """
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = _format_loc(item.get("loc", []))
                msg = str(item["msg"]).removeprefix("Value error, ")
                lines.append(msg if not loc or msg.startswith(loc) else f"{loc}: {msg}")
            else:
                lines.append(flatten_detail(item))
        return "\n".join(lines)
    if isinstance(detail, dict):
        if "msg" in detail:
            return flatten_detail([detail])
        if "field" in detail and "reason" in detail:
            return f"{detail['field']}: {detail['reason']}"
        return "; ".join(f"{k}: {flatten_detail(v)}" for k, v in detail.items())
    return str(detail)


def raise_for_response(response: httpx.Response) -> None:
    """Raise ``ApiError`` for a 4xx/5xx answer (the body must already be read)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = flatten_detail(body["detail"])
    else:
        detail = response.text.strip()[:500] or response.reason_phrase
    raise ApiError(response.status_code, detail)

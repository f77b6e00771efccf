"""The client side of a Server-Sent Events stream: a parser (the WHATWG event-stream format) and
the reconnect policy of ``Client.events`` (backoff, Retry-After, an outage budget).

Example:
    >>> list(parse_sse(["id: 3", "event: epoch", 'data: {"epoch": 1}', ""]))
    [SseEvent(id='3', type='epoch', data='{"epoch": 1}')]
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx

from synib_client.errors import (
    ApiError,
    ClientError,
    ConnectionFailed,
    flatten_detail,
    raise_for_response,
)

RETRY_FOR_S = 120.0  # how long a follower waits for an unavailable API before giving up
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})  # answers that say "try again later"


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: ``id`` is the last id seen on the stream (None before any)."""

    id: str | None
    type: str
    data: str


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Yield the events of an event stream given its lines (without or with line endings).

    A blank line dispatches the buffered event; ``:`` lines are comments (keep-alives); an
    event cut off by the end of the stream is dropped, so a reconnect with ``Last-Event-ID``
    fetches it again whole.
    """
    event_type = ""
    data_lines: list[str] = []
    last_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data_lines:
                yield SseEvent(last_id, event_type or "message", "\n".join(data_lines))
            event_type, data_lines = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data_lines.append(value)
        elif field == "event":
            event_type = value
        elif field == "id" and "\0" not in value:
            last_id = value


class Unavailable(Exception):
    """The server answered but cannot serve now (429/502/503/504, or an ``event: error``)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def retry_after_s(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (``"5"`` -> 5.0); None if absent or an HTTP date."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def raise_if_unavailable(response: httpx.Response) -> None:
    """``Unavailable`` (with the ``Retry-After``) for an answer that says 'try again later'."""
    if response.status_code in RETRYABLE_STATUSES:
        try:
            raise_for_response(response)
        except ApiError as exc:
            retry_after = retry_after_s(response.headers.get("Retry-After"))
            raise Unavailable(str(exc), retry_after) from exc


def stream_events(lines: Iterable[str], retry: Reconnector) -> Iterator[SseEvent]:
    """The events of one connection's ``lines``; the server's ``event: error`` (it could not
    read its database) raises ``Unavailable``. A comment after the first line calls
    ``retry.recovered()``: the server greets with one before reading anything, but sends its
    keep-alives only after reading the database, so one proves a quiet job's stream works."""

    def noticing_keepalives() -> Iterator[str]:
        for number, line in enumerate(lines):
            if number and line.startswith(":"):
                retry.recovered()
            yield line

    for event in parse_sse(noticing_keepalives()):
        if event.type == "error":
            try:
                detail = json.loads(event.data)["detail"]
            except (ValueError, TypeError, KeyError):
                detail = event.data
            raise Unavailable(f"event stream error: {flatten_detail(detail)}")
        yield event


class Reconnector:
    """When a follower of an event stream tries again, and when it gives up.

    The first failure starts an outage. Each failure waits before the next try: 0.5 s doubling
    up to 5 s, or longer when the server's ``Retry-After`` asks so. Once the outage has lasted
    ``retry_for`` seconds the next failure raises ``ConnectionFailed`` saying for how long the
    API was unavailable and the last reason. ``recovered()`` ends the outage. ``notify`` gets one
    line when an outage starts and one when it ends, never one per attempt.

    Example:
        >>> slept = []
        >>> retry = Reconnector("http://api", 60, print, sleep=slept.append)
        >>> retry.failed("HTTP 503: database unavailable", retry_after=5)
        the API at http://api is unavailable (HTTP 503: database unavailable); reconnecting for up to 60 s
        >>> retry.failed("[Errno 111] Connection refused"); slept
        [5.0, 1.0]
    """

    def __init__(
        self,
        url: str,
        retry_for: float,
        notify: Callable[[str], None],
        *,
        first_delay: float = 0.5,
        max_delay: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        ok = isinstance(retry_for, int | float) and not isinstance(retry_for, bool)
        if not (ok and math.isfinite(retry_for) and retry_for >= 0):
            raise ClientError(f"retry_for: expected a number of seconds >= 0, got {retry_for!r}")
        self._url, self._retry_for, self._notify = url, float(retry_for), notify
        self._first_delay, self._max_delay = first_delay, max_delay
        self._clock, self._sleep = clock, sleep
        self._delay = first_delay
        self._outage_since: float | None = None
        self.answered = False  # the server has answered once (a refusal before then: a wrong URL)

    def recovered(self) -> None:
        """The API served again (an event, a keep-alive or the job's status): the outage ends."""
        if self._outage_since is None:
            return
        elapsed = self._clock() - self._outage_since
        self._outage_since, self._delay = None, self._first_delay
        self._notify(f"reconnected to the API after {elapsed:.0f} s")

    def failed(self, reason: str, retry_after: float | None = None) -> None:
        """Wait before the next try, or raise ``ConnectionFailed`` when the budget is spent."""
        now = self._clock()
        first = self._outage_since is None
        since = now if self._outage_since is None else self._outage_since
        self._outage_since = since
        remaining = self._retry_for - (now - since)
        if remaining <= 0:
            raise ConnectionFailed(
                self._url, f"unavailable for {now - since:.0f} s; last error: {reason}"
            )
        if first:
            self._notify(
                f"the API at {self._url} is unavailable ({reason}); "
                f"reconnecting for up to {self._retry_for:g} s"
            )
        wait = max(self._delay, float(retry_after or 0.0))
        self._delay = min(self._delay * 2, self._max_delay)
        self._sleep(min(wait, remaining))

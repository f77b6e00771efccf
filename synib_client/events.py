"""The live-events half of ``synib_client.client.Client``: follow a job's Server-Sent Events, waiting out
an unavailable API and resuming with ``Last-Event-ID`` (no event lost or repeated)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from synib_client.errors import ClientError, ConnectionFailed
from synib_client.sse import (
    RETRY_FOR_S,
    Reconnector,
    SseEvent,
    Unavailable,
    raise_if_unavailable,
    stream_events,
)

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
Event = tuple[str | None, str, Any]  # (event id, event type, decoded JSON data)
_log = logging.getLogger("synib_client.client")


def path_segment(value: str) -> str:
    """One URL path segment: an id a user typed can never step to another route."""
    if not value:
        raise ClientError("id: must not be empty")
    return quote(str(value), safe="")


class JobEvents:
    """Mixed into ``Client``, which provides the connection and the error check below."""

    url: str
    _http: httpx.Client
    _stream_timeout: httpx.Timeout

    def _check(self, response: httpx.Response) -> None:
        raise NotImplementedError

    def events(
        self,
        job_id: str,
        last_event_id: str | None = None,
        *,
        retry_for: float = RETRY_FOR_S,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> Generator[Event, None, dict[str, Any]]:
        """Follow a job's event stream: yields ``(id, type, data)`` until the job is terminal,
        then returns (as the generator's return value) the final JobPublic.

        The API being unavailable is waited out: a dropped or refused connection (a restart), a
        429/502/503/504 answer and the server's ``event: error`` (its database is down) are
        retried after 0.5 s doubling to 5 s (or the answer's ``Retry-After``), reconnecting
        with ``Last-Event-ID`` so no event is lost or repeated. ``ConnectionFailed`` once the
        API has been unavailable for ``retry_for`` seconds in a row, or at once when the first
        connection is refused (a wrong URL). Other answers (401, 403, 404, 422) raise
        ``ApiError`` at once. ``on_reconnect`` gets one line when the client starts waiting
        and one when the API is back (default: warnings of the ``synib_client.client`` logger).
        """
        retry = Reconnector(self.url, retry_for, on_reconnect or _log.warning)
        last = last_event_id
        while True:
            try:
                for event in self._event_stream(job_id, last, retry):
                    retry.recovered()
                    last = event.id if event.id is not None else last
                    yield event.id, event.type, _decode(event.data)
                # A clean end: the server closes the stream once the job is terminal.
                job = self._followed_job(job_id, retry)
                if job["status"] in TERMINAL_STATUSES:
                    retry.recovered()
                    return job
                retry.failed(f"the event stream ended while the job is {job['status']}")
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError) and not retry.answered:
                    raise ConnectionFailed(self.url, exc) from exc
                retry.failed(str(exc) or type(exc).__name__)
            except Unavailable as exc:
                retry.failed(exc.reason, exc.retry_after)

    def _event_stream(
        self, job_id: str, last_event_id: str | None, retry: Reconnector
    ) -> Iterator[SseEvent]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        path = f"/jobs/{path_segment(job_id)}/events"
        with self._http.stream(
            "GET", path, headers=headers, timeout=self._stream_timeout
        ) as response:
            retry.answered = True
            if response.status_code >= 400:
                response.read()
                raise_if_unavailable(response)
                self._check(response)
            yield from stream_events(response.iter_lines(), retry)

    def _followed_job(self, job_id: str, retry: Reconnector) -> dict[str, Any]:
        """The job, read for a follower: a 'try again later' answer raises ``Unavailable``."""
        response = self._http.get(f"/jobs/{path_segment(job_id)}")
        retry.answered = True
        raise_if_unavailable(response)
        self._check(response)
        job: dict[str, Any] = response.json()
        return job

    def wait(
        self,
        job_id: str,
        on_event: Callable[[str | None, str, Any], None] | None = None,
        *,
        retry_for: float = RETRY_FOR_S,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the job is terminal (following its events); returns the final JobPublic.

        ``retry_for`` and ``on_reconnect`` as in ``events``: an API restart or a database
        outage shorter than ``retry_for`` seconds is waited out.
        """
        stream = self.events(job_id, retry_for=retry_for, on_reconnect=on_reconnect)
        while True:
            try:
                event_id, event_type, data = next(stream)
            except StopIteration as end:
                final: dict[str, Any] = end.value
                return final
            if on_event is not None:
                on_event(event_id, event_type, data)


def _decode(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data

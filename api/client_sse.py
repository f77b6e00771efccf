"""A small Server-Sent Events parser (the WHATWG event-stream format) for the client.

Example:
    >>> list(parse_sse(["id: 3", "event: epoch", 'data: {"epoch": 1}', ""]))
    [SseEvent(id='3', type='epoch', data='{"epoch": 1}')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


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

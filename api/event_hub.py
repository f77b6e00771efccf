"""One reader of ``job_events`` per API process, for every open event stream.

A stream first reads its backlog itself (a few queries, like any request), then goes live: from
then on the hub reads the new events of every live stream's job in one query per ``poll_s``
(``job_events`` after each job's cursor, and the jobs' statuses) and hands each stream its own
through an asyncio queue. The database load of idle streams does not grow with their number.

The hub also counts open streams (caps per token and per process) and ends them all when the
server stops (``close``, or ``closing`` set by a signal handler: see ``end_streams_on_exit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from infra.db import crud
from infra.db.models import JOB_TERMINAL

log = logging.getLogger(__name__)

BATCH = 500  # events per query
MAX_PENDING = 16  # batches a stream may leave unread before it reads its backlog itself
SHUTTING_DOWN = "server shutting down"

Event = tuple[int, str, dict[str, Any]]
"""(id, type, data) of one ``job_events`` row."""


@dataclass(frozen=True)
class Stop:
    """The stream is over: ``reason`` is None when its job finished and every event was handed
    over, else why it was cut short (the stream says so in an ``event: error``)."""

    reason: str | None


@dataclass(frozen=True)
class CatchUp:
    """The stream left too many batches unread: it reads its backlog from the database."""


Message = list[Event] | Stop | CatchUp


@dataclass(eq=False)
class Subscription:
    """One open stream: the token that opened it, its job, and (once live) the id of the last
    event the hub handed over."""

    token_id: str
    job_id: str
    cursor: int = 0
    live: bool = False
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)


class StreamLimit(Exception):
    """A stream refused by a cap: ``status_code`` (429 or 503) and a ``detail`` naming it."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code, self.detail = status_code, detail


def read_news(
    factory: sessionmaker[Session], after: Mapping[str, int]
) -> tuple[dict[str, str], dict[str, list[Event]], bool]:
    """(statuses, new events per job, whether the batch was full) for ``{job id: after id}``.
    The statuses are read first: a job seen finished has all its events in the batch unless
    the batch was full."""
    with factory() as session:
        statuses = crud.job_statuses(session, job_ids=list(after))
        rows = crud.list_events_of_jobs(session, after=after, limit=BATCH)
        news: dict[str, list[Event]] = defaultdict(list)
        for row in rows:
            news[row.job_id].append((row.id, row.type, row.data))
        return statuses, news, len(rows) >= BATCH


class EventHub:
    """The open event streams of this API process and their one database reader."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        max_per_token: int,
        max_per_process: int,
        poll_s: float = 0.5,
    ) -> None:
        self.poll_s = poll_s
        self.max_per_token, self.max_per_process = max_per_token, max_per_process
        self.closing: str | None = None  # set: every stream ends with this reason
        self._factory = factory
        self._subs: set[Subscription] = set()
        self._per_token: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    @property
    def open_streams(self) -> int:
        return len(self._subs)

    @property
    def live_streams(self) -> int:
        return sum(sub.live for sub in self._subs)

    def open(self, token_id: str, job_id: str) -> Subscription:
        """Count a new stream (``StreamLimit`` over a cap, or while the server stops)."""
        if self.closing is not None:
            raise StreamLimit(503, self.closing)
        if len(self._subs) >= self.max_per_process:
            raise StreamLimit(
                503,
                f"this API process has {self.max_per_process} open event streams, its limit "
                "(SYNIB_MAX_STREAMS_PER_PROCESS); retry later",
            )
        if self._per_token[token_id] >= self.max_per_token:
            raise StreamLimit(
                429,
                f"this token has {self.max_per_token} open event streams, its limit "
                "(SYNIB_MAX_STREAMS_PER_TOKEN); close one or retry later",
            )
        sub = Subscription(token_id, job_id)
        self._subs.add(sub)
        self._per_token[token_id] += 1
        return sub

    def release(self, sub: Subscription) -> None:
        """Forget a stream that ended (however it ended; twice is harmless)."""
        if sub in self._subs:
            self._subs.discard(sub)
            self._per_token[sub.token_id] -= 1
            if self._per_token[sub.token_id] <= 0:
                del self._per_token[sub.token_id]
        sub.live = False

    def go_live(self, sub: Subscription, cursor: int) -> None:
        """Hand ``sub`` every event of its job after ``cursor`` from the next poll on."""
        if self.closing is not None:
            sub.queue.put_nowait(Stop(self.closing))
            return
        sub.cursor, sub.live = cursor, True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="synib-event-hub")

    async def close(self, reason: str = SHUTTING_DOWN) -> None:
        """End every stream with ``reason`` and stop polling (the app's shutdown)."""
        self.closing = reason
        self._stop_all(reason)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while any(sub.live for sub in self._subs):
            if self.closing is not None:
                self._stop_all(self.closing)
                return
            try:
                more = await self._poll_once()
            except SQLAlchemyError as exc:
                log.error("event streams: cannot read job_events: %s", exc)
                self._stop_all("database unavailable")
                return
            if not more:
                await asyncio.sleep(self.poll_s)

    async def _poll_once(self) -> bool:
        """Read and hand over one batch; True when it was full (more may be waiting)."""
        polled = [sub for sub in self._subs if sub.live]
        after: dict[str, int] = {}
        for sub in polled:
            after[sub.job_id] = min(sub.cursor, after.get(sub.job_id, sub.cursor))
        statuses, news, full = await run_in_threadpool(read_news, self._factory, after)
        for sub in polled:
            if sub.live:  # not released nor stopped while the query ran
                status = statuses.get(sub.job_id)
                finished = not full and (status is None or status in JOB_TERMINAL)
                self._hand_over(sub, news.get(sub.job_id, []), finished)
        return full

    def _hand_over(self, sub: Subscription, events: list[Event], finished: bool) -> None:
        new = [event for event in events if event[0] > sub.cursor]
        if new and sub.queue.qsize() >= MAX_PENDING:
            sub.live = False
            sub.queue.put_nowait(CatchUp())
            return
        if new:
            sub.queue.put_nowait(new)
            sub.cursor = new[-1][0]
        if finished:
            sub.live = False
            sub.queue.put_nowait(Stop(None))

    def _stop_all(self, reason: str) -> None:
        """End the live streams (one still reading its backlog meets ``closing`` when it
        goes live, or reads the database itself)."""
        for sub in self._subs:
            if sub.live:
                sub.live = False
                sub.queue.put_nowait(Stop(reason))


def end_streams_on_exit(hub: EventHub) -> None:
    """Make SIGINT/SIGTERM end every stream of ``hub`` at once, then do what they did before.

    uvicorn runs the lifespan shutdown only after every open response has finished (or its
    ``timeout_graceful_shutdown`` has passed), and a stream of a running job does not finish:
    the server's own signal handler (installed before the lifespan starts) is kept and called
    after ``hub.closing`` is set; the hub ends the streams at its next poll. Only from the main
    thread (where signal handlers live) and only over a handler someone installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if callable(previous):
            signal.signal(signum, _closing_then(hub, previous))


def _closing_then(
    hub: EventHub, previous: Callable[[int, FrameType | None], Any]
) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        hub.closing = SHUTTING_DOWN  # a flag: safe to set from a signal handler
        previous(signum, frame)

    return handler

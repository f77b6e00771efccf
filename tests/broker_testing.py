"""Reading the task queue in tests through kombu's public API, on whatever broker the settings
name (the embedded SQLite broker or Redis), as a Celery worker would consume it."""

from __future__ import annotations

from typing import Any

from kombu import Connection

from infra.broker import QUEUE, transport_options


def drain_tasks(settings: Any, queue: str = QUEUE) -> list[tuple[str, str]]:
    """(task name, its single argument) of every message waiting in ``queue``, oldest first;
    the messages are consumed."""
    found: list[tuple[str, str]] = []
    with (
        Connection(settings.broker_url, transport_options=transport_options(settings)) as conn,
        conn.SimpleQueue(queue) as waiting,
    ):
        while True:
            try:
                message = waiting.get(block=False)
            except waiting.Empty:
                return found
            args, _kwargs, _embed = message.decode()
            found.append((str(message.headers["task"]), str(args[0])))
            message.ack()

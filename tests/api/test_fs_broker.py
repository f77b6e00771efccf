"""The embedded broker (``filesystem://``, api/fs_broker.py): message files appear complete or
not at all, and a consumer skips a file it cannot decode instead of crashing the worker.

A real kombu connection on a temporary folder, producer and consumer as the API and the Celery
worker use them. Each test has its own queue name: kombu remembers the queues a process declared
(in memory, for every folder), so a queue declared by another test would not be bound here."""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

import infra.broker  # noqa: F401  (registers the transport, as the API and the worker do)
from infra.fs_broker import PARTIAL_SUFFIX, Transport


@pytest.fixture
def queue() -> str:
    return f"q{uuid.uuid4().hex}"


def connection(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    (folder / "control").mkdir(parents=True, exist_ok=True)
    return Connection("filesystem://", transport_options=options)


def drain(conn: Connection, queue: str) -> list[Any]:
    """Every message waiting in ``queue`` now (acked)."""
    got = []
    with conn.SimpleQueue(queue) as q:
        while True:
            try:
                message = q.get(block=False)
            except q.Empty:
                return got
            got.append(message.payload)
            message.ack()


def test_filesystem_urls_use_the_atomic_transport(tmp_path: Path) -> None:
    with connection(tmp_path) as conn:
        assert isinstance(conn.transport, Transport)


def test_a_message_is_renamed_into_the_queue_once_written(tmp_path: Path, queue: str) -> None:
    with connection(tmp_path) as conn, conn.SimpleQueue(queue) as q:
        q.put({"job": 1})
    files = [p.name for p in tmp_path.iterdir() if p.is_file()]
    assert len(files) == 1 and files[0].endswith(f".{queue}.msg"), files  # no partial left
    with connection(tmp_path) as conn:
        assert drain(conn, queue) == [{"job": 1}]


def test_a_partial_file_is_not_consumed(tmp_path: Path, queue: str) -> None:
    partial = tmp_path / f"1_writer.{queue}.msg{PARTIAL_SUFFIX}"
    partial.write_bytes(b'{"half": ')
    with connection(tmp_path) as conn:
        assert drain(conn, queue) == []
    assert partial.exists()


def test_an_unreadable_message_is_skipped_and_the_next_delivered(
    tmp_path: Path, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What kombu's own transport left while a producer was between creating and writing.
    (tmp_path / f"1_empty.{queue}.msg").write_bytes(b"")
    with connection(tmp_path) as conn, conn.SimpleQueue(queue) as q:
        q.put({"job": 2})
    with caplog.at_level(logging.ERROR, logger="infra.fs_broker"), connection(tmp_path) as conn:
        assert drain(conn, queue) == [{"job": 2}]
    assert f"skipped an unreadable message of queue {queue}" in caplog.text


def test_a_new_exchange_table_appears_complete(tmp_path: Path) -> None:
    """Binding creates the exchange table file with its content (never empty, no partial left),
    and a reader polling meanwhile always gets a table."""
    tables: list[Any] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def read() -> None:
        with connection(tmp_path) as conn:
            channel = conn.default_channel
            started.set()
            for _ in range(2000):
                try:
                    tables.append(channel.get_table("amq.direct"))
                except BaseException as exc:  # what kombu's own transport raised: JSONDecodeError
                    errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    started.wait(10)
    with connection(tmp_path) as conn:
        for name in ("q1", "q2"):
            conn.default_channel._queue_bind("amq.direct", name, None, name)
    reader.join(60)
    assert errors == []
    files = sorted(p.name for p in (tmp_path / "control").iterdir())
    assert files == ["amq.direct.exchange"]
    with connection(tmp_path) as conn:
        assert {q.queue for q in conn.default_channel.get_table("amq.direct")} == {"q1", "q2"}
    assert tables  # the reader ran

"""The producer side of the queue (infra/broker.py) on the embedded broker, kombu's SQLAlchemy
transport on a SQLite file, as ``synib serve`` uses it: tasks go to their queues, the depth is
read through kombu's public API, and a broker that cannot be reached is reported, never raised."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from broker_testing import drain_tasks

from infra.broker import HOUSEKEEPING_QUEUE, TaskProducer
from infra.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def test_tasks_go_to_their_queues_and_are_counted(settings: Settings) -> None:
    producer = TaskProducer(settings)
    try:
        assert producer.check() is None
        assert producer.queue_depth() == 0
        ids = [producer.send("synib.run_job", f"job-{i}") for i in range(3)]
        assert all(ids) and len(set(ids)) == 3
        assert producer.send("synib.make_dataset", "ds-1") is not None
        assert producer.send("synib.housekeeping", "") is not None
        assert producer.queue_depth() == 4
        assert producer.queue_depth(HOUSEKEEPING_QUEUE) == 1
    finally:
        producer.close()
    assert settings.embedded_broker_file is not None and settings.embedded_broker_file.is_file()
    assert drain_tasks(settings) == [
        ("synib.run_job", "job-0"),
        ("synib.run_job", "job-1"),
        ("synib.run_job", "job-2"),
        ("synib.make_dataset", "ds-1"),
    ]
    assert drain_tasks(settings, HOUSEKEEPING_QUEUE) == [("synib.housekeeping", "")]
    producer = TaskProducer(settings)
    try:
        assert producer.queue_depth() == 0  # consumed messages are not counted
    finally:
        producer.close()


def test_nothing_is_created_until_the_first_use(settings: Settings) -> None:
    producer = TaskProducer(settings)
    producer.close()
    assert not settings.state_dir.exists()


def test_an_unreachable_broker_is_reported_not_raised(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    producer = TaskProducer(down)
    try:
        problem = producer.check()
        assert problem is not None and "127.0.0.1:1" in problem
        assert producer.queue_depth() is None
        with caplog.at_level(logging.WARNING, logger="infra.broker"):
            assert producer.send("synib.run_job", "job-x") is None
    finally:
        producer.close()
    assert "could not enqueue synib.run_job(job-x)" in caplog.text
    assert "the housekeeping will resend it" in caplog.text

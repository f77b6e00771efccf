"""Server-Sent Events read from job_events rows written by crud (the worker's functions)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from api_factories import add_job
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from infra.db import crud
from infra.db.models import Dataset


def parse_sse(text: str) -> list[dict[str, Any]]:
    """[{id, event, data}] of the messages in an SSE body (comments skipped)."""
    messages = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            fields["data"] = json.loads(fields["data"])
            messages.append(fields)
    return messages


def _run_to_success(session: Session, job_id: str) -> None:
    trial = crud.upsert_trial(
        session, job_id=job_id, trial_key="vanilla|seed=0", method="vanilla", seed=0, config={}
    )
    crud.set_trial_status(session, trial_id=trial.id, status="running")
    crud.upsert_epoch_metrics(session, trial_id=trial.id, epoch=1, metrics={"val_acc": 0.6})
    crud.set_trial_status(session, trial_id=trial.id, status="succeeded", metrics={"val_acc": 0.6})
    crud.set_job_report(session, job_id=job_id, report={"job_id": job_id})
    crud.set_job_status(session, job_id=job_id, status="succeeded")


def test_stream_of_a_finished_job(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running", trials_total=1)
    _run_to_success(db_session, job.id)
    response = client.get(f"/api/v1/jobs/{job.id}/events", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e["event"] for e in events] == [
        "status",
        "status",
        "trial",
        "trial",
        "epoch",
        "trial",
        "report",
        "status",
    ]
    assert [e["data"].get("status") for e in events if e["event"] == "status"] == [
        "queued",
        "running",
        "succeeded",
    ]
    assert events[4]["data"]["epoch"] == 1 and events[4]["data"]["metrics"] == {"val_acc": 0.6}
    assert events[-1]["data"]["progress"] == 1.0
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    resumed = client.get(
        f"/api/v1/jobs/{job.id}/events", headers={**auth, "Last-Event-ID": str(ids[4])}
    )
    assert [int(e["id"]) for e in parse_sse(resumed.text)] == ids[5:]
    after = client.get(f"/api/v1/jobs/{job.id}/events", headers=auth, params={"after": ids[-2]})
    assert [int(e["id"]) for e in parse_sse(after.text)] == ids[-1:]


def test_stream_follows_a_live_job(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    factory: sessionmaker[Session] = client.app.state.session_factory  # type: ignore[attr-defined]
    hub = client.app.state.event_hub  # type: ignore[attr-defined]

    def worker() -> None:
        deadline = time.monotonic() + 30
        while hub.live_streams == 0 and time.monotonic() < deadline:  # the stream follows
            time.sleep(0.01)
        time.sleep(0.5)  # idle for five keep-alive intervals
        with factory() as session:
            _run_to_success(session, job.id)

    thread = threading.Thread(target=worker)
    thread.start()
    client.app.state.sse_keepalive_s = 0.1  # type: ignore[attr-defined]
    response = client.get(f"/api/v1/jobs/{job.id}/events", headers=auth)
    thread.join()
    assert ": keep-alive" in response.text
    events = parse_sse(response.text)
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"
    assert sum(e["event"] == "epoch" for e in events) == 1


def test_stream_needs_auth(
    client: TestClient, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="cancelled")
    assert client.get(f"/api/v1/jobs/{job.id}/events").status_code == 401

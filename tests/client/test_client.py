"""The Python client against the real API app (uvicorn on a free port), on PostgreSQL and SQLite.

Jobs, trials, events and artifacts are written through crud, as the worker would, so no worker
is needed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_factories import add_job, npz_bytes
from live_server import add_model_artifact, run_trial, sample_report, serve_app
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from tcp_proxy import TcpProxy

from api.main import create_app
from infra.db import crud
from infra.db.models import Dataset
from infra.settings import Settings
from synib_client.client import Client
from synib_client.errors import ApiError, ChecksumMismatch, ClientError, ConnectionFailed


@pytest.fixture
def live_url(app: Any) -> Iterator[str]:
    with serve_app(app) as url:
        yield url


@pytest.fixture
def api(live_url: str, user_token: tuple[str, str]) -> Iterator[Client]:
    with Client(live_url, user_token[0], timeout=10) as client:
        yield client


def test_upload_list_show_delete(api: Client, tmp_path: Path) -> None:
    path = tmp_path / "pair.npz"
    path.write_bytes(npz_bytes())
    calls: list[tuple[int, int]] = []
    ds = api.upload_dataset(
        path, name="pair", progress=lambda done, total: calls.append((done, total))
    )
    assert ds["status"] == "ready" and ds["name"] == "pair" and ds["source"] == "upload"
    assert ds["summary"]["num_classes"] == 2
    size = path.stat().st_size
    assert calls[-1] == (size, size)
    assert [d["id"] for d in api.datasets()["data"]] == [ds["id"]]
    assert api.dataset(ds["id"])["sha256"] == ds["sha256"]
    api.delete_dataset(ds["id"])
    with pytest.raises(ApiError) as info:
        api.dataset(ds["id"])
    assert info.value.status == 404


def test_upload_of_a_bad_file_names_the_problem(api: Client, tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(npz_bytes(y=None))
    with pytest.raises(ApiError) as info:
        api.upload_dataset(path)
    assert info.value.status == 422
    assert "y" in info.value.detail
    assert api.datasets()["count"] == 0


def test_submit_appears_queued_and_lists(api: Client, dataset: Dataset) -> None:
    job = api.submit({"dataset_id": dataset.id, "methods": ["vanilla", "synib"], "seeds": [0, 1]})
    assert (
        job["status"] == "queued" and job["trials_total"] == 14
    )  # 2 seeds x (vanilla + 6 lambdas)
    assert api.jobs(status="queued")["count"] == 1
    assert api.jobs(status="running")["count"] == 0
    shown = api.job(job["id"])
    assert shown["spec"]["seeds"] == [0, 1] and shown["dataset_id"] == dataset.id
    with pytest.raises(ApiError) as info:
        api.submit({"dataset_id": dataset.id, "methods": ["vanilla"], "config": {"lr": -1}})
    assert info.value.status == 422 and "config.lr" in info.value.detail


def test_submit_yaml_registers_builtin_once(api: Client, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "dataset: {builtin: xor_pid, params: {n_train: 100}, seed: 3}\n"
        "methods: [vanilla]\nepochs: 2\n"
    )
    first = api.submit(spec)
    second = api.submit(spec)
    assert first["dataset_id"] == second["dataset_id"]
    page = api.datasets()
    assert page["count"] == 1
    assert page["data"][0]["params"] == {"n_train": 100, "seed": 3}


def test_events_replay_and_resume_after_last_event_id(
    api: Client, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    run_trial(db_session, job, "vanilla|seed=0", [0.5, 0.75])
    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    events = list(api.events(job.id))
    types = [t for _, t, _ in events]
    # queued, running; trial pending, running; 2 epochs; trial succeeded; job succeeded
    assert types == ["status", "status", "trial", "trial", "epoch", "epoch", "trial", "status"]
    ids = [int(i) for i, _, _ in events if i is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(events)
    assert events[5][2]["metrics"]["val_acc"] == 0.75 and events[5][2]["epoch"] == 2
    assert events[-1][2]["status"] == "succeeded"
    resumed = list(api.events(job.id, last_event_id=events[4][0]))
    assert resumed == events[5:]


def test_events_follow_a_live_job_until_terminal(
    api: Client, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    seen: list[str] = []
    got_running = threading.Event()

    def follow() -> None:
        for _id, kind, data in api.events(job.id):
            seen.append(kind)
            if kind == "status" and data["status"] == "running":
                got_running.set()

    thread = threading.Thread(target=follow)
    thread.start()
    assert got_running.wait(10)
    run_trial(db_session, job, "synib|lambda=1|seed=0", [0.6])
    crud.set_job_status(db_session, job_id=job.id, status="failed", failure_reason="boom")
    thread.join(10)
    assert not thread.is_alive()
    assert seen[-1] == "status" and seen.count("epoch") == 1
    assert api.wait(job.id)["failure_reason"] == "boom"


def test_report_download_best_and_checksum(
    api: Client,
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    api_settings: Settings,
    tmp_path: Path,
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    good = add_model_artifact(db_session, api_settings.artifact_root, job, "synib-best")
    crud.set_job_report(db_session, job_id=job.id, report=sample_report(job.id, good))
    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    assert api.report(job.id)["methods"]["synib"]["best_artifact_id"] == good
    assert [a["id"] for a in api.artifacts(job.id)["data"]] == [good]
    downloads = tmp_path / "downloads"
    out = api.download_best(job.id, "synib", downloads / "model")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "weights.bin"]
    with pytest.raises(ClientError, match="no stored model"):
        api.download_best(job.id, "vanilla", downloads / "v")
    with pytest.raises(ClientError, match="not in the report"):
        api.download_best(job.id, "ogm_ge", downloads / "o")
    bad = add_model_artifact(db_session, api_settings.artifact_root, job, "corrupt", "ab" * 32)
    with pytest.raises(ChecksumMismatch):
        api.download(bad, downloads / "corrupt")
    assert sorted(p.name for p in downloads.iterdir()) == ["model"]  # nothing half-written


def test_unknown_ids_missing_token_and_unreachable_server(
    api: Client, live_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ApiError) as info:
        api.job("no-such-job")
    assert info.value.status == 404 and "not found" in info.value.detail
    with pytest.raises(ApiError) as info:
        list(api.events("no-such-job"))
    assert info.value.status == 404
    monkeypatch.setenv("SYNIB_CONFIG_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("SYNIB_TOKEN", raising=False)
    with pytest.raises(ApiError, match="SYNIB_TOKEN"):
        Client(live_url).jobs()
    with pytest.raises(ConnectionFailed, match=r"http://127\.0\.0\.1:9"):
        Client("http://127.0.0.1:9", "synib_x").jobs()


def test_events_reconnect_with_last_event_id_after_a_drop() -> None:
    """A stream that breaks after two events: the client reconnects from the last id."""
    requests: list[str | None] = []

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'id: 1\nevent: status\ndata: {"status": "running"}\n\n'
            yield b'id: 2\nevent: epoch\ndata: {"epoch": 1}\n\nid: 3\nevent: ep'
            raise httpx.RemoteProtocolError("peer closed connection")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            requests.append(request.headers.get("Last-Event-ID"))
            if len(requests) == 1:
                return httpx.Response(200, stream=Broken())
            body = b'id: 3\nevent: epoch\ndata: {"epoch": 2}\n\nid: 4\nevent: status\ndata: {"status": "succeeded"}\n\n'
            return httpx.Response(200, content=body)
        return httpx.Response(200, json={"id": "j", "status": "succeeded"})

    client = Client("http://testserver", "synib_x", transport=httpx.MockTransport(handler))
    events = list(client.events("j"))
    assert requests == [None, "2"]
    assert [(i, t) for i, t, _ in events] == [
        ("1", "status"),
        ("2", "epoch"),
        ("3", "epoch"),
        ("4", "status"),
    ]
    assert events[2][2] == {"epoch": 2}


def _follow_in_thread(
    client: Client, job_id: str, seen: list[tuple[str | None, str, Any]]
) -> tuple[threading.Thread, threading.Event, dict[str, Any]]:
    """``client.wait(job_id)`` in a thread: events go to ``seen``, the event is set once the job
    is seen running, the outcome dict gets ``job`` (the final JobPublic) or ``error`` and ``at``."""
    running, outcome = threading.Event(), {}

    def on_event(event_id: str | None, kind: str, data: Any) -> None:
        seen.append((event_id, kind, data))
        if kind == "status" and data.get("status") == "running":
            running.set()

    def follow() -> None:
        try:
            outcome["job"] = client.wait(job_id, on_event)
        except Exception as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread, running, outcome


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite cannot be cut
def test_wait_outlasts_a_database_outage_and_loses_no_event(
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    api_settings: Settings,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The API reaches PostgreSQL through a proxy that the test cuts while a job is followed:
    the server ends the stream with ``event: error`` and answers 503 with Retry-After; the
    client waits, reconnects with Last-Event-ID and gets every event once, then the job's end.
    The job is finished during the outage (the test writes to the database directly)."""
    caplog.set_level(logging.WARNING)
    target = make_url(db_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.restore()
    proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
    app = create_app(api_settings.model_copy(update={"database_url": proxied}))
    app.state.event_hub.poll_s = 0.05
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    seen: list[tuple[str | None, str, Any]] = []
    try:
        with serve_app(app) as url, Client(url, user_token[0], timeout=10) as client:
            thread, running, outcome = _follow_in_thread(client, job.id, seen)
            assert running.wait(10)
            proxy.cut()  # the fault
            refused = f"database unavailable during GET /api/v1/jobs/{job.id}/events"
            deadline = time.monotonic() + 10
            while refused not in caplog.text and thread.is_alive():
                assert time.monotonic() < deadline, "the client never reconnected"
                time.sleep(0.05)
            run_trial(db_session, job, "synib|lambda=1|seed=0", [0.5, 0.75])
            crud.set_job_status(db_session, job_id=job.id, status="succeeded")
            proxy.restore()
            thread.join(20)
            assert not thread.is_alive()
    finally:
        proxy.cut()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["job"]["status"] == "succeeded"
    assert refused in caplog.text  # a reconnect was answered 503 (with Retry-After: 5)
    kinds = [kind for _, kind, _ in seen]
    assert kinds == ["status", "status", "trial", "trial", "epoch", "epoch", "trial", "status"]
    ids = [int(i) for i, _, _ in seen if i is not None]
    assert len(ids) == len(seen) and ids == sorted(set(ids))  # each event once, in order
    lines = [r.getMessage() for r in caplog.records if r.name == "synib_client.client"]
    assert len(lines) == 2, lines  # one when the waiting starts, one when the API is back
    assert lines[0] == (
        f"the API at {url} is unavailable (event stream error: database unavailable); "
        "reconnecting for up to 120 s"
    )
    back_after = int(lines[1].removeprefix("reconnected to the API after ").removesuffix(" s"))
    assert 5 <= back_after <= 9  # the 503's Retry-After (5 s) was honoured, and no more


def test_a_job_deleted_while_followed_fails_at_once_with_404(
    api: Client,
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """404 (like 401, 403, 422) is an answer, not an outage: no retry, no waiting."""
    caplog.set_level(logging.WARNING, logger="synib_client.client")
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    seen: list[tuple[str | None, str, Any]] = []
    thread, running, outcome = _follow_in_thread(api, job.id, seen)
    assert running.wait(10)
    deleted_at = time.monotonic()
    crud.delete_job(db_session, job_id=job.id)
    thread.join(10)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, ApiError) and (error.status, error.detail) == (404, "job not found")
    assert outcome["at"] - deleted_at < 1.0  # the first backoff alone would be 0.5 s
    assert [r.getMessage() for r in caplog.records if r.name == "synib_client.client"] == []


def test_models_lists_what_the_serving_workers_offer(api: Client, db_session: Session) -> None:
    from synib_spec.backbones import PACKAGED_MODELS

    assert api.models() == {"data": [], "count": 0}
    minilm = PACKAGED_MODELS[0][0].to_json()
    crud.record_worker(db_session, name="w1@host", hostname="host", pid=1, models=[minilm])
    [model] = api.models()["data"]
    assert (model["name"], model["modality"], model["output_dim"]) == (
        "all-minilm-l6-v2",
        "text",
        384,
    )
    assert model["workers"] == 1 and "Apache-2.0" in model["licence"]

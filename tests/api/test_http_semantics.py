"""HTTP as RFC 9110 defines it and the API's own limits, in process (TestClient, real
databases): HEAD, OPTIONS, 405 Allow, Range, token before body, the JSON body cap, /docs off by
default, per-user /metrics, /ready without writes, error text or missing workers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_factories import add_job, add_ready_dataset
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.main import create_app
from infra.db import crud
from infra.settings import Settings

URL = "/api/v1"


@pytest.fixture
def dashboard_client(api_settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    """The app with a dashboard mounted at / (its catch-all used to answer every HEAD)."""
    static = tmp_path / "dist"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>synib</title>")
    with TestClient(create_app(api_settings.model_copy(update={"static_dir": static}))) as client:
        yield client


@pytest.fixture
def artifact(db_session: Session, user_token: tuple[str, str], api_settings: Settings) -> str:
    dataset = add_ready_dataset(db_session, user_token[1])
    job = add_job(db_session, user_token[1], dataset.id, status="succeeded")
    payload = bytes(range(256)) * 40  # 10240 bytes
    relative = f"jobs/{job.id}/best.zip"
    path = api_settings.artifact_root / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    row = crud.add_artifact(
        db_session,
        owner_id=user_token[1],
        job_id=job.id,
        kind="model",
        name="best",
        path=relative,
        sha256=hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
    )
    return row.id


@pytest.mark.parametrize("path", ["/health", f"{URL}/health", f"{URL}/jobs", f"{URL}/me"])
def test_head_answers_like_get_without_a_body(
    dashboard_client: TestClient, auth: dict[str, str], path: str
) -> None:
    get = dashboard_client.get(path, headers=auth)
    head = dashboard_client.head(path, headers=auth)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_of_a_download_sends_its_headers_only(
    client: TestClient, auth: dict[str, str], artifact: str
) -> None:
    head = client.head(f"{URL}/artifacts/{artifact}", headers=auth)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "10240"
    assert head.headers["x-checksum-sha256"]
    assert client.head(f"{URL}/artifacts/nope", headers=auth).status_code == 404
    assert client.head(f"{URL}/artifacts/{artifact}").status_code == 401


def test_head_of_an_open_event_stream_ends_after_its_headers(
    client: TestClient, auth: dict[str, str], db_session: Session, user_token: tuple[str, str]
) -> None:
    dataset = add_ready_dataset(db_session, user_token[1])
    running = add_job(db_session, user_token[1], dataset.id, status="running")
    head = client.head(f"{URL}/jobs/{running.id}/events", headers=auth)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        (f"{URL}/jobs", "GET, HEAD, OPTIONS, POST"),
        (f"{URL}/jobs/some-id", "DELETE, GET, HEAD, OPTIONS"),
        (f"{URL}/jobs/some-id/cancel", "OPTIONS, POST"),
    ],
)
def test_options_and_405_list_every_method_of_the_path(
    dashboard_client: TestClient, auth: dict[str, str], path: str, allow: str
) -> None:
    options = dashboard_client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == allow
    refused = dashboard_client.put(path, headers=auth, json={})
    assert refused.status_code == 405
    assert refused.headers["allow"] == allow


@pytest.mark.parametrize(
    "header", ["bytes=50-10", "items=0-1", "bytes=x-1", "bytes=", "bytes=-", "bytes=0-1,5-9"]
)
def test_a_malformed_range_is_ignored(
    client: TestClient, auth: dict[str, str], artifact: str, header: str
) -> None:
    response = client.get(f"{URL}/artifacts/{artifact}", headers={**auth, "Range": header})
    assert response.status_code == 200
    assert len(response.content) == 10240 and "content-range" not in response.headers


def test_body_without_a_valid_token_is_refused_first(client: TestClient) -> None:
    body = json.dumps({"x": "a" * (2 * 1024 * 1024)})  # over the cap too: 401 comes first
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer synib_" + "a" * 43},
    ):
        response = client.post(
            f"{URL}/jobs", content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"


def test_json_body_over_the_cap_is_413_naming_the_limit(
    client: TestClient, auth: dict[str, str]
) -> None:
    body = json.dumps({"name": "a" * (2 * 1024 * 1024)}).encode()
    response = client.post(
        f"{URL}/jobs", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "request body larger than the limit of 1024 KiB (SYNIB_MAX_JSON_BODY_KB)"
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    chunked = client.post(
        f"{URL}/datasets/builtin",
        content=chunks(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert "1024 KiB" in chunked.json()["detail"]


def test_json_body_under_the_cap_reaches_the_route(
    client: TestClient, auth: dict[str, str]
) -> None:
    big_name = {"generator": "xor_spurious", "name": "n" * (200 * 1024)}  # parsed off the loop
    response = client.post(f"{URL}/datasets/builtin", json=big_name, headers=auth)
    assert response.status_code == 422
    assert any(item["loc"][-1] == "name" for item in response.json()["detail"])


def test_metrics_show_job_counts_of_the_token_user_only(
    client: TestClient,
    db_session: Session,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    alice, alice_id = make_token("alice")
    _, bob_id = make_token("bob")
    add_job(db_session, bob_id, add_ready_dataset(db_session, bob_id).id)
    add_job(db_session, alice_id, add_ready_dataset(db_session, alice_id).id)
    body = client.get(f"{URL}/metrics", headers={"Authorization": f"Bearer {alice}"}).text
    assert 'synib_jobs{status="queued"} 1.0' in body
    from infra.tokens import issue_token

    admin = issue_token(db_session, user_name="root", is_admin=True).token
    body = client.get(f"{URL}/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    assert 'synib_jobs{status="queued"} 2.0' in body


def test_ready_writes_no_file_and_names_no_backend_error(api_settings: Settings) -> None:
    broken = api_settings.model_copy(
        update={
            "broker_url": "redis://127.0.0.1:1/0",
            "database_url": "postgresql+psycopg://secretuser@127.0.0.1:1/none",
        }
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "unavailable",
        "broker": "unavailable",
        "artifact_store": "ok",
        "workers": "unknown",
    }
    assert "secretuser" not in response.text and "127.0.0.1" not in response.text


def test_ready_creates_no_file_per_call(client: TestClient, api_settings: Settings) -> None:
    client.get("/ready")
    root = api_settings.artifact_root
    before = root.stat().st_mtime_ns  # a file made and removed there would change it
    for _ in range(3):
        assert client.get("/ready").status_code == 200
    assert root.stat().st_mtime_ns == before
    assert list(root.iterdir()) == []


def test_ready_reports_serving_workers(client: TestClient, db_session: Session) -> None:
    assert client.get("/ready").json()["status"] == "degraded"
    crud.record_worker(db_session, name="synib@host", hostname="host", pid=123)
    body = client.get("/ready").json()
    assert body == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "broker": "ok",
            "artifact_store": "ok",
            "workers": "ok: 1 serving",
        },
    }
    crud.remove_worker(db_session, name="synib@host", pid=123)
    assert client.get("/ready").json()["checks"]["workers"] == "none serving: jobs stay queued"

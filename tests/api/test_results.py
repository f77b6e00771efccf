"""Trials, per-epoch metrics, CSV/JSON exports, the report and artifact downloads, with rows
written through the same crud functions the worker uses."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from api_factories import add_job
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset, Job
from infra.settings import Settings

URL = "/api/v1"


@pytest.fixture
def job_with_trials(db_session: Session, dataset: Dataset, user_token: tuple[str, str]) -> Job:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    a = crud.upsert_trial(
        db_session,
        job_id=job.id,
        trial_key="synib|lambda=1|seed=0",
        method="synib",
        seed=0,
        config={"lambda": 1.0},
    )
    crud.upsert_trial(
        db_session, job_id=job.id, trial_key="vanilla|seed=0", method="vanilla", seed=0, config={}
    )
    crud.set_trial_status(db_session, trial_id=a.id, status="running")
    for epoch, acc in ((1, 0.5), (2, 0.75)):
        crud.upsert_epoch_metrics(
            db_session,
            trial_id=a.id,
            epoch=epoch,
            metrics={"train_loss": 1.0 / epoch, "val_acc": acc},
        )
    crud.set_trial_status(
        db_session,
        trial_id=a.id,
        status="succeeded",
        best_epoch=2,
        metrics={"val_acc": 0.75, "test_acc": 0.7},
    )
    return job


def test_trials_and_metrics(client: TestClient, auth: dict[str, str], job_with_trials: Job) -> None:
    job_id = job_with_trials.id
    page = client.get(f"{URL}/jobs/{job_id}/trials", headers=auth).json()
    assert page["count"] == 2
    by_key = {t["trial_key"]: t for t in page["data"]}
    synib = by_key["synib|lambda=1|seed=0"]
    assert synib["status"] == "succeeded" and synib["epochs_done"] == 2 and synib["best_epoch"] == 2
    assert synib["metrics"] == {"val_acc": 0.75, "test_acc": 0.7}
    assert by_key["vanilla|seed=0"]["status"] == "pending"
    one = client.get(f"{URL}/trials/{synib['id']}", headers=auth).json()
    assert one["config"] == {"lambda": 1.0}
    curve = client.get(f"{URL}/trials/{synib['id']}/metrics", headers=auth).json()
    assert curve == {
        "data": [
            {"epoch": 1, "metrics": {"train_loss": 1.0, "val_acc": 0.5}},
            {"epoch": 2, "metrics": {"train_loss": 0.5, "val_acc": 0.75}},
        ]
    }
    per_job = client.get(f"{URL}/jobs/{job_id}/metrics", headers=auth).json()
    assert per_job == {synib["id"]: curve["data"]}
    job = client.get(f"{URL}/jobs/{job_id}", headers=auth).json()
    assert job["trials_done"] == 1 and job["progress"] == 0.5


def test_exports(client: TestClient, auth: dict[str, str], job_with_trials: Job) -> None:
    response = client.get(f"{URL}/jobs/{job_with_trials.id}/trials.csv", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["trial_key"] for r in rows] == ["synib|lambda=1|seed=0", "vanilla|seed=0"]
    assert rows[0]["config.lambda"] == "1.0" and rows[0]["test_acc"] == "0.7"
    assert rows[1]["config.lambda"] == "" and rows[1]["status"] == "pending"
    data = client.get(f"{URL}/jobs/{job_with_trials.id}/trials.json", headers=auth).json()
    assert [t["trial_key"] for t in data] == [r["trial_key"] for r in rows]
    assert data[0]["metrics"]["val_acc"] == 0.75


def test_report_404_then_200(
    client: TestClient, auth: dict[str, str], db_session: Session, job_with_trials: Job
) -> None:
    url = f"{URL}/jobs/{job_with_trials.id}/report"
    assert client.get(url, headers=auth).status_code == 404
    report = {"job_id": job_with_trials.id, "baseline": "vanilla", "methods": {"synib": {}}}
    crud.set_job_report(db_session, job_id=job_with_trials.id, report=report)
    response = client.get(url, headers=auth)
    assert response.status_code == 200 and response.json() == report


def test_trial_of_another_user_is_404(client: TestClient, job_with_trials: Job, make_token) -> None:  # type: ignore[no-untyped-def]
    mallory, _ = make_token("mallory")
    trial = client.get(
        f"{URL}/jobs/{job_with_trials.id}/trials",
        headers={"Authorization": f"Bearer {make_token('alice')[0]}"},
    ).json()["data"][0]
    headers = {"Authorization": f"Bearer {mallory}"}
    assert client.get(f"{URL}/trials/{trial['id']}", headers=headers).status_code == 404
    assert client.get(f"{URL}/trials/{trial['id']}/metrics", headers=headers).status_code == 404


@pytest.fixture
def artifact(
    db_session: Session, job_with_trials: Job, api_settings: Settings
) -> tuple[str, bytes]:
    payload = bytes(range(256)) * 40  # 10240 bytes
    relative = f"jobs/{job_with_trials.id}/best.zip"
    path = api_settings.artifact_root / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    row = crud.add_artifact(
        db_session,
        owner_id=job_with_trials.owner_id,
        job_id=job_with_trials.id,
        kind="model",
        name="synib-best",
        path=relative,
        sha256=hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
    )
    return row.id, payload


def test_artifact_download_checksum_etag(
    client: TestClient, auth: dict[str, str], artifact: tuple[str, bytes], job_with_trials: Job
) -> None:
    artifact_id, payload = artifact
    listed = client.get(f"{URL}/jobs/{job_with_trials.id}/artifacts", headers=auth).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == artifact_id
    response = client.get(f"{URL}/artifacts/{artifact_id}", headers=auth)
    assert response.status_code == 200
    assert response.content == payload
    digest = hashlib.sha256(payload).hexdigest()
    assert response.headers["x-checksum-sha256"] == digest
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="synib-best.zip"' in response.headers["content-disposition"]
    cached = client.get(
        f"{URL}/artifacts/{artifact_id}", headers={**auth, "If-None-Match": f'"{digest}"'}
    )
    assert cached.status_code == 304 and cached.content == b""
    stale = client.get(f"{URL}/artifacts/{artifact_id}", headers={**auth, "If-None-Match": '"x"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-40", 10200, 10239),
        ("bytes=10200-99999", 10200, 10239),
    ],
)
def test_artifact_ranges(
    client: TestClient,
    auth: dict[str, str],
    artifact: tuple[str, bytes],
    header: str,
    start: int,
    end: int,
) -> None:
    artifact_id, payload = artifact
    response = client.get(f"{URL}/artifacts/{artifact_id}", headers={**auth, "Range": header})
    assert response.status_code == 206
    assert response.content == payload[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(payload)}"
    assert response.headers["content-length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=-0"])
def test_artifact_bad_ranges_are_416(
    client: TestClient, auth: dict[str, str], artifact: tuple[str, bytes], header: str
) -> None:
    response = client.get(f"{URL}/artifacts/{artifact[0]}", headers={**auth, "Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */10240"


def test_artifact_path_traversal_is_404(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    job_with_trials: Job,
    api_settings: Settings,
) -> None:
    secret = api_settings.state_dir / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("top secret")
    for bad in ("../secret.txt", "/etc/passwd", "jobs/../../secret.txt", str(secret), "a\\..\\b"):
        row = crud.add_artifact(
            db_session,
            owner_id=job_with_trials.owner_id,
            job_id=job_with_trials.id,
            kind="model",
            name="x",
            path=bad,
            sha256="0" * 64,
            size_bytes=1,
        )
        response = client.get(f"{URL}/artifacts/{row.id}", headers=auth)
        assert response.status_code == 404, bad
        assert "secret" not in response.text
    for url in ("/api/v1/artifacts/..%2F..%2Fsecret.txt", "/api/v1/artifacts/../../etc/passwd"):
        assert client.get(url, headers=auth).status_code == 404


def test_artifact_of_another_user_is_404(
    client: TestClient, artifact: tuple[str, bytes], make_token
) -> None:  # type: ignore[no-untyped-def]
    eve, _ = make_token("eve")
    response = client.get(
        f"{URL}/artifacts/{artifact[0]}", headers={"Authorization": f"Bearer {eve}"}
    )
    assert response.status_code == 404

"""A bucket's credentials, against moto's S3 server on loopback (which checks them, see
``s3_server``): the server refuses a wrong secret; a store opened in a process with a wrong
secret or with no credentials at all fails with ``StorageError`` (the API: 503 on a download,
503 from /ready), and the secret never shows in an error's text or in the log."""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path

import httpx
import pytest
from api_factories import add_job
from fastapi.testclient import TestClient
from s3_server import S3Server
from sqlalchemy.orm import Session

from api.main import create_app
from infra.db import crud
from infra.db.models import Dataset
from infra.object_store import open_store
from infra.settings import Settings
from infra.storage import StorageError

WRONG_SECRET = f"wrong-secret-{secrets.token_hex(8)}"
UNAVAILABLE = "artifact storage is unavailable (object store error "


@pytest.fixture(params=["wrong secret", "no credentials"])
def bad_credentials(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """This process's AWS environment made wrong for the test: the right key id with
    ``WRONG_SECRET``, or nothing at all (no AWS_* keys or profile, empty config and credentials
    files, no instance metadata). Returns the case's name."""
    if request.param == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
        return str(request.param)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return str(request.param)


def bucket_settings(s3: S3Server) -> dict[str, str]:
    """The settings of a store in the test bucket under a prefix of its own."""
    env = s3.env(f"creds-{secrets.token_hex(3)}")
    return {
        "storage_uri": env["SYNIB_STORAGE_URI"],
        "s3_endpoint_url": env["SYNIB_S3_ENDPOINT_URL"],
        "s3_region": env["SYNIB_S3_REGION"],
    }


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, s3: S3Server) -> Settings:
    """The conftest's settings with the artifact store in the test bucket."""
    return Settings(
        state_dir=tmp_path / "state",
        database_url=db_url,
        static_dir=tmp_path / "no-dashboard",
        config_dir=tmp_path / "config",
        **bucket_settings(s3),  # type: ignore[arg-type]
    )


def assert_secrets_hidden(s3: S3Server, *texts: str) -> None:
    for text in texts:
        assert WRONG_SECRET not in text and s3.credentials["AWS_SECRET_ACCESS_KEY"] not in text


def test_the_server_refuses_a_wrong_secret_and_unsigned_requests(s3: S3Server) -> None:
    assert s3.filesystem().get_file_info(s3.bucket).type.name == "Directory"
    wrong = s3.filesystem(secret_key=WRONG_SECRET)
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        wrong.get_file_info(s3.bucket)
    with (
        pytest.raises(OSError, match="SIGNATURE_DOES_NOT_MATCH"),
        wrong.open_output_stream(f"{s3.bucket}/x") as out,
    ):
        out.write(b"x")
    unsigned = httpx.get(f"{s3.endpoint}/{s3.bucket}?list-type=2", timeout=10)
    assert unsigned.status_code >= 400  # moto answers 500 to a request without a signature


def test_store_with_bad_credentials_is_a_storage_error(
    s3: S3Server, tmp_path: Path, bad_credentials: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings(state_dir=tmp_path / "state", **bucket_settings(s3))  # type: ignore[arg-type]
    store = open_store(settings)
    tmp = store.new_temp_file(".npz")
    tmp.write_bytes(b"payload")
    failures = []
    for call in (lambda: store.put(tmp, "datasets/x.npz"), lambda: store.exists("x.npz")):
        with pytest.raises(StorageError) as caught:
            call()
        failures.append(str(caught.value))
    assert all(message.startswith(UNAVAILABLE) for message in failures), failures
    if bad_credentials == "wrong secret":
        assert "SIGNATURE_DOES_NOT_MATCH" in failures[0] and "ACCESS_DENIED" in failures[1]
    assert not store.is_ready()
    assert "object store" in caplog.text  # the full errors were logged ...
    assert_secrets_hidden(s3, *failures, caplog.text)  # ... without the secret


@pytest.fixture
def artifact(db_session: Session, dataset: Dataset, api_settings: Settings) -> str:
    """A model artifact stored with the right credentials; returns its id."""
    job = add_job(db_session, dataset.owner_id, dataset.id, status="succeeded")
    store = open_store(api_settings)
    tmp = store.new_temp_file(".zip")
    tmp.write_bytes(b"model")
    store.put(tmp, f"jobs/{job.id}/best.zip")
    row = crud.add_artifact(
        db_session,
        owner_id=job.owner_id,
        job_id=job.id,
        kind="model",
        name="synib-best",
        path=f"jobs/{job.id}/best.zip",
        sha256=hashlib.sha256(b"model").hexdigest(),
        size_bytes=5,
    )
    return str(row.id)


def test_api_with_bad_credentials_answers_503(
    s3: S3Server,
    api_settings: Settings,
    auth: dict[str, str],
    artifact: str,
    bad_credentials: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as client:
        response = client.get(f"/api/v1/artifacts/{artifact}", headers=auth)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert response.json()["detail"].startswith(UNAVAILABLE)
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["artifact_store"] == "not writable"
    assert "artifact storage error" in caplog.text
    assert_secrets_hidden(s3, response.text, ready.text, caplog.text)

"""The API over an artifact store in a bucket (moto's S3 server on loopback): artifact
downloads stream from the object with the same sha256 header, ETag, If-None-Match, Range and
416 as from a folder; an uploaded dataset lands in the bucket and its deletion removes it;
/ready writes a probe object; a store that does not answer is a 503."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
from api_factories import add_job, npz_bytes
from fastapi.testclient import TestClient
from processes import free_port
from s3_server import S3Server
from sqlalchemy.orm import Session

from api.main import create_app
from infra.db import crud
from infra.db.models import Dataset
from infra.object_store import open_store
from infra.settings import Settings

URL = "/api/v1"
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, s3: S3Server) -> Settings:
    """The conftest's settings with the artifact store in the test bucket, under a prefix of
    this test's own."""
    env = s3.env(f"api-{secrets.token_hex(3)}")
    return Settings(
        state_dir=tmp_path / "state",
        database_url=db_url,
        static_dir=tmp_path / "no-dashboard",
        config_dir=tmp_path / "config",
        rate_limit_per_minute=100_000,
        storage_uri=env["SYNIB_STORAGE_URI"],
        s3_endpoint_url=env["SYNIB_S3_ENDPOINT_URL"],
        s3_region=env["SYNIB_S3_REGION"],
    )


def prefix_of(settings: Settings, s3: S3Server) -> str:
    return settings.storage_uri.removeprefix(f"s3://{s3.bucket}/")


@pytest.fixture
def artifact(db_session: Session, dataset: Dataset, api_settings: Settings) -> str:
    """A model artifact whose file is an object in the bucket; returns its id."""
    job = add_job(db_session, dataset.owner_id, dataset.id, status="succeeded")
    relative = f"jobs/{job.id}/best.zip"
    store = open_store(api_settings)
    tmp = store.new_temp_file(".zip")
    tmp.write_bytes(PAYLOAD)
    store.put(tmp, relative)
    row = crud.add_artifact(
        db_session,
        owner_id=job.owner_id,
        job_id=job.id,
        kind="model",
        name="synib-best",
        path=relative,
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        size_bytes=len(PAYLOAD),
    )
    return str(row.id)


def test_download_streams_the_object_with_checksum_etag_and_ranges(
    client: TestClient, auth: dict[str, str], artifact: str, api_settings: Settings
) -> None:
    url = f"{URL}/artifacts/{artifact}"
    response = client.get(url, headers=auth)
    assert response.status_code == 200 and response.content == PAYLOAD
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert response.headers["x-checksum-sha256"] == digest
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["content-length"] == str(len(PAYLOAD))
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="synib-best.zip"' in response.headers["content-disposition"]
    cached = client.get(url, headers={**auth, "If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304 and cached.content == b""
    for header, start, end in (("bytes=0-99", 0, 99), ("bytes=-40", 10200, 10239)):
        part = client.get(url, headers={**auth, "Range": header})
        assert part.status_code == 206 and part.content == PAYLOAD[start : end + 1]
        assert part.headers["content-range"] == f"bytes {start}-{end}/{len(PAYLOAD)}"
    beyond = client.get(url, headers={**auth, "Range": "bytes=10240-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */10240"
    assert not (api_settings.artifact_root).exists()  # nothing in the local folder


def test_missing_object_is_404(
    client: TestClient, auth: dict[str, str], artifact: str, api_settings: Settings
) -> None:
    open_store(api_settings).delete("jobs")  # the object is gone, the row stays
    response = client.get(f"{URL}/artifacts/{artifact}", headers=auth)
    assert response.status_code == 404 and response.json()["detail"] == "artifact file not found"


def test_upload_lands_in_the_bucket_and_delete_removes_it(
    client: TestClient, auth: dict[str, str], api_settings: Settings, s3: S3Server
) -> None:
    payload = npz_bytes()
    response = client.post(f"{URL}/datasets", headers=auth, files={"file": ("toy.npz", payload)})
    assert response.status_code == 201, response.text
    dataset_id = response.json()["id"]
    prefix = prefix_of(api_settings, s3)
    assert s3.keys(prefix) == {f"{prefix}/datasets/{dataset_id}.npz": len(payload)}
    assert not any((api_settings.state_dir / "tmp").iterdir())  # the staged upload is gone
    assert client.delete(f"{URL}/datasets/{dataset_id}", headers=auth).status_code == 204
    assert s3.keys(prefix) == {}


def test_ready_probes_the_bucket(client: TestClient, api_settings: Settings, s3: S3Server) -> None:
    response = client.get("/api/v1/ready")
    assert response.json()["checks"]["artifact_store"] == "ok"
    assert s3.keys(prefix_of(api_settings, s3)) == {}  # the probe object is gone again


def test_store_down_is_503_with_retry_after(
    api_settings: Settings, auth: dict[str, str], artifact: str
) -> None:
    down = api_settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        response = client.get(f"{URL}/artifacts/{artifact}", headers=auth)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        detail = response.json()["detail"]
        assert detail.startswith("artifact storage is unavailable (object store error")
        assert "jobs/" not in detail and "127.0.0.1" not in detail
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["artifact_store"] == "not writable"

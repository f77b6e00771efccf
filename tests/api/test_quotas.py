"""Limits and quotas at the API (docs/USER_GUIDE.md, "Limits and quotas"): spec limits (422
naming the field, the value and the limit), active jobs per user (429 with Retry-After),
storage per user (413) and datasets per user (409), each naming its setting."""

from __future__ import annotations

from typing import Any

import pytest
from api_factories import add_job, add_ready_dataset, npz_bytes
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset
from infra.settings import Settings

JOBS = "/api/v1/jobs"
DATASETS = "/api/v1/datasets"


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    """Small quotas: 2 active jobs, 3 datasets, 1 KiB of storage per user."""
    return api_settings.model_copy(
        update={
            "max_active_jobs_per_user": 2,
            "max_datasets_per_user": 3,
            "max_storage_mb_per_user": 1 / 1024,
        }
    )


def job_spec(dataset: Dataset, **fields: Any) -> dict[str, Any]:
    return {"dataset_id": dataset.id, "methods": ["vanilla"], "sweep": {}, **fields}


def field_error(response: Any) -> tuple[str, str]:
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    return item["field"], item["msg"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"epochs": 2**31 - 1}, "epochs", "2147483647 epochs, at most 1000 allowed (limit max_epochs)"),
        ({"config": {"epochs": 1001}}, "config.epochs", "limit max_epochs"),
        ({"resources": {"cpus_per_trial": 1e-9}}, "resources.cpus_per_trial",
         "1e-09 CPUs, at least 0.1 per trial (limit min_cpus_per_trial)"),
        ({"resources": {"gpus_per_trial": 0.01}}, "resources.gpus_per_trial",
         "(limit min_gpus_per_trial)"),
        ({"methods": ["synib"], "num_samples": 1000, "seeds": [0, 1, 2, 3, 4],
          "sweep": {"lambda": {"type": "uniform", "low": 0.0, "high": 9.0}}}, "sweep",
         "5000 trials (methods x sweep points x samples x seeds), at most 200 allowed "
         "(limit max_trials_per_job)"),
    ],
)  # fmt: skip
def test_specs_over_the_limits_are_422_naming_field_value_and_limit(
    client: TestClient,
    auth: dict[str, str],
    dataset: Dataset,
    fields: dict[str, Any],
    field: str,
    words: str,
) -> None:
    found, message = field_error(client.post(JOBS, headers=auth, json=job_spec(dataset, **fields)))
    assert found == field
    assert words in message


def test_the_spec_limits_are_settings(
    api_settings: Settings, auth: dict[str, str], dataset: Dataset
) -> None:
    from api.main import create_app

    tight = api_settings.model_copy(update={"max_epochs": 5, "min_cpus_per_trial": 0.5})
    with TestClient(create_app(tight)) as client:
        found, message = field_error(
            client.post(JOBS, headers=auth, json=job_spec(dataset, epochs=6))
        )
        assert (found, "at most 5 allowed" in message) == ("epochs", True)
        half = {"epochs": 5, "resources": {"cpus_per_trial": 0.5}}
        assert client.post(JOBS, headers=auth, json=job_spec(dataset, **half)).status_code == 202


def test_active_jobs_over_the_limit_are_429_until_one_ends(
    client: TestClient, auth: dict[str, str], dataset: Dataset, make_token: Any
) -> None:
    ids = [client.post(JOBS, headers=auth, json=job_spec(dataset)).json()["id"] for _ in range(2)]
    response = client.post(JOBS, headers=auth, json=job_spec(dataset))
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "60"
    detail = response.json()["detail"]
    assert detail.startswith("limit max_active_jobs_per_user: you have 2 queued or running jobs")
    assert "at most 2 allowed" in detail
    # Another user is not held back by alice's jobs.
    bob_token, bob_id = make_token("bob")
    bob_data = add_ready_dataset_for(client, bob_id)
    bob = {"Authorization": f"Bearer {bob_token}"}
    assert client.post(JOBS, headers=bob, json=job_spec(bob_data)).status_code == 202
    # A cancelled job frees its place.
    assert client.post(f"{JOBS}/{ids[0]}/cancel", headers=auth).status_code == 202
    assert client.post(JOBS, headers=auth, json=job_spec(dataset)).status_code == 202


def add_ready_dataset_for(client: TestClient, owner_id: str) -> Dataset:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return add_ready_dataset(session, owner_id)


def test_a_rerun_over_the_active_jobs_limit_is_429(
    client: TestClient,
    auth: dict[str, str],
    dataset: Dataset,
    db_session: Session,
    user_token: tuple[str, str],
) -> None:
    failed = add_job(db_session, user_token[1], dataset.id, status="failed")
    for _ in range(2):
        add_job(db_session, user_token[1], dataset.id, status="running")
    response = client.post(f"{JOBS}/{failed.id}/rerun-failed", headers=auth)
    assert response.status_code == 429, response.text
    assert "max_active_jobs_per_user" in response.json()["detail"]
    db_session.expire_all()
    assert crud.get_job(db_session, job_id=failed.id).status == "failed"  # type: ignore[union-attr]


def test_storage_over_the_limit_is_413_for_datasets_and_jobs(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    first = client.post(DATASETS, headers=auth, files={"file": ("a.npz", npz_bytes())})
    assert first.status_code == 201, first.text
    assert first.json()["size_bytes"] > 1024  # alice's storage (1 KiB) is now full
    second = client.post(DATASETS, headers=auth, files={"file": ("b.npz", npz_bytes())})
    assert second.status_code == 413, second.text
    detail = second.json()["detail"]
    assert detail.startswith("limit max_storage_mb_per_user: your datasets and job artifacts")
    assert "at most 0.000976562 MiB allowed" in detail
    builtin = {"generator": "xor_spurious", "params": {}, "seed": 1}
    assert client.post(f"{DATASETS}/builtin", headers=auth, json=builtin).status_code == 413
    job = client.post(JOBS, headers=auth, json=job_spec(dataset))
    assert job.status_code == 413 and "max_storage_mb_per_user" in job.json()["detail"]


def test_datasets_over_the_limit_are_409(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    builtin = {"generator": "xor_spurious", "params": {}, "seed": 1}
    for _ in range(2):
        assert client.post(f"{DATASETS}/builtin", headers=auth, json=builtin).status_code == 201
    fourth = client.post(f"{DATASETS}/builtin", headers=auth, json=builtin)
    assert fourth.status_code == 409, fourth.text
    assert fourth.json()["detail"] == (
        "limit max_datasets_per_user: you have 3 datasets, at most 3 allowed; delete one first"
    )
    upload = client.post(DATASETS, headers=auth, files={"file": ("c.npz", npz_bytes())})
    assert upload.status_code == 409

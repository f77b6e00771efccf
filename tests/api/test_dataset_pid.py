"""POST /datasets/{id}/pid: owner-only, ready datasets only, 202 + synib.dataset_pid enqueued
after the commit; GET /datasets/{id} returns the stored PID."""

from __future__ import annotations

from api_factories import add_ready_dataset
from broker_testing import drain_tasks
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset
from infra.settings import Settings

URL = "/api/v1/datasets"


def test_request_queues_the_task_and_get_shows_the_state(
    client: TestClient, auth: dict[str, str], api_settings: Settings, dataset: Dataset
) -> None:
    assert client.get(f"{URL}/{dataset.id}", headers=auth).json()["pid"] is None
    response = client.post(f"{URL}/{dataset.id}/pid", headers=auth, json={"clusters": 7})
    assert response.status_code == 202, response.text
    queued = {"status": "queued", "clusters": 7, "pairs": [], "verdict": None, "error": None}
    assert response.json()["pid"] == queued
    assert drain_tasks(api_settings) == [("synib.dataset_pid", dataset.id)]
    assert client.get(f"{URL}/{dataset.id}", headers=auth).json()["pid"] == queued
    # no body: the default clusters (None until the worker picks them)
    response = client.post(f"{URL}/{dataset.id}/pid", headers=auth)
    assert response.status_code == 202 and response.json()["pid"]["clusters"] is None
    assert drain_tasks(api_settings) == [("synib.dataset_pid", dataset.id)]


def test_a_finished_pid_is_returned_by_get_and_the_list(
    client: TestClient, auth: dict[str, str], db_session: Session, dataset: Dataset
) -> None:
    pair = {
        "modalities": ["a", "b"],
        "target": "label",
        "redundancy": 0.4,
        "unique": {"a": 0.3, "b": 0.0},
        "synergy": 0.2,
        "total": 0.9,
        "states": {"a": 5, "b": 5},
        "n": 40,
    }
    done = {
        "status": "succeeded",
        "clusters": 5,
        "pairs": [pair],
        "verdict": "much synergy (0.20 bits of 0.90 between a and b): SynIB is likely to help",
        "error": None,
    }
    crud.set_dataset_pid(db_session, dataset_id=dataset.id, pid=done)
    assert client.get(f"{URL}/{dataset.id}", headers=auth).json()["pid"] == done
    assert client.get(URL, headers=auth).json()["data"][0]["pid"] == done


def test_not_ready_is_409_and_nothing_is_queued(
    client: TestClient,
    auth: dict[str, str],
    api_settings: Settings,
    db_session: Session,
    user_token: tuple[str, str],
) -> None:
    for status in ("pending", "failed"):
        row = add_ready_dataset(db_session, user_token[1], status=status)
        response = client.post(f"{URL}/{row.id}/pid", headers=auth)
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert detail.startswith(f"dataset is {status}: its PID can be computed once it is ready")
        assert client.get(f"{URL}/{row.id}", headers=auth).json()["pid"] is None
    assert drain_tasks(api_settings) == []


def test_unknown_or_other_owners_dataset_is_404(
    client: TestClient,
    api_settings: Settings,
    dataset: Dataset,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    bob = {"Authorization": f"Bearer {make_token('bob')[0]}"}
    assert client.post(f"{URL}/{dataset.id}/pid", headers=bob).status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    response = client.post(f"{URL}/{missing}/pid", headers=bob)
    assert response.status_code == 404 and response.json()["detail"] == "dataset not found"
    assert client.post(f"{URL}/{dataset.id}/pid").status_code == 401
    assert drain_tasks(api_settings) == []


def test_bad_clusters_are_422(
    client: TestClient, auth: dict[str, str], api_settings: Settings, dataset: Dataset
) -> None:
    for body in ({"clusters": 1}, {"clusters": 101}, {"clusters": "many"}, {"k": 3}):
        response = client.post(f"{URL}/{dataset.id}/pid", headers=auth, json=body)
        assert response.status_code == 422, (body, response.text)
    assert client.post(f"{URL}/not-a-uuid/pid", headers=auth).status_code == 404
    assert drain_tasks(api_settings) == []

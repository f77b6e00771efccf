"""Dataset upload (streamed, validated, checksummed), built-in registration, list/get/delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from api_factories import N, add_job, add_ready_dataset, npz_bytes
from broker_testing import drain_tasks
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.main import create_app
from infra.db import crud
from infra.settings import Settings

URL = "/api/v1/datasets"


def _stored_files(settings: Settings) -> list[Path]:
    root = settings.artifact_root / "datasets"
    return sorted(root.iterdir()) if root.exists() else []


def test_upload_good_file(client: TestClient, auth: dict[str, str], api_settings: Settings) -> None:
    payload = npz_bytes()
    response = client.post(
        URL, headers=auth, files={"file": ("toy.npz", payload)}, data={"name": "toy data"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "toy data"
    assert body["source"] == "upload" and body["status"] == "ready"
    assert body["sha256"] == hashlib.sha256(payload).hexdigest()
    assert body["size_bytes"] == len(payload)
    summary = body["summary"]
    assert summary["num_classes"] == 2
    assert summary["split_sizes"] == {"train": 28, "val": 6, "test": 6}
    assert [m["name"] for m in summary["modalities"]] == ["a", "b"]
    assert summary["modalities"][0]["shape"] == [N, 4]
    files = _stored_files(api_settings)
    assert [f.name for f in files] == [f"{body['id']}.npz"]
    assert files[0].read_bytes() == payload
    assert not any((api_settings.artifact_root / ".tmp").iterdir())
    listed = client.get(URL, headers=auth).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == body["id"]
    assert client.get(f"{URL}/{body['id']}", headers=auth).json()["sha256"] == body["sha256"]


def test_upload_of_raw_text_audio_and_images_stores_their_kinds(
    client: TestClient, auth: dict[str, str]
) -> None:
    """The raw kinds pass the same validation; the summary says each modality's kind (and the
    sample rate of audio); an object array of strings is a 422 saying how to save text."""
    rng = np.random.default_rng(1)
    raw = {
        "x_a": None,
        "x_b": None,
        "x_text": np.array([f"review {i}" for i in range(N)], dtype=str),
        "x_voice": rng.normal(size=(N, 80)).astype(np.float32),
        "rate_voice": np.array(8000),
        "len_voice": np.full(N, 60),
        "x_photo": rng.integers(0, 256, size=(N, 4, 4, 3), dtype=np.uint8),
    }
    response = client.post(URL, headers=auth, files={"file": ("raw.npz", npz_bytes(**raw))})
    assert response.status_code == 201, response.text
    assert response.json()["summary"]["modalities"] == [
        {"name": "text", "shape": [N], "kind": "text", "rate": None},
        {"name": "voice", "shape": [N, 80], "kind": "audio", "rate": 8000},
        {"name": "photo", "shape": [N, 4, 4, 3], "kind": "image", "rate": None},
    ]
    texts = np.array([f"review {i}" for i in range(N)], dtype=object)
    bad = npz_bytes(**(raw | {"x_text": texts}))
    response = client.post(URL, headers=auth, files={"file": ("bad.npz", bad)})
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert item["field"] == "x_text" and "np.array(texts, dtype=str)" in item["msg"]


def test_upload_name_defaults_to_file_stem(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(URL, headers=auth, files={"file": ("my_set.npz", npz_bytes())})
    assert response.status_code == 201
    assert response.json()["name"] == "my_set"


def test_bad_files_are_422_naming_the_field_and_not_stored(
    client: TestClient, auth: dict[str, str], api_settings: Settings
) -> None:
    cases = {
        "y": npz_bytes(y=None),
        "x_a": npz_bytes(x_a=np.full((N, 4), np.nan, dtype=np.float32)),
        "file": b"this is not a zip archive",
    }
    for field, payload in cases.items():
        response = client.post(URL, headers=auth, files={"file": ("bad.npz", payload)})
        assert response.status_code == 422, (field, response.text)
        [item] = response.json()["detail"]
        assert item["field"] == field
        assert item["msg"].startswith(f"{field}: ") and len(item["msg"]) > len(field) + 3
    assert _stored_files(api_settings) == []
    assert client.get(URL, headers=auth).json()["count"] == 0


def test_missing_file_part_is_422(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(URL, headers=auth, files={"other": ("x.npz", b"abc")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "file"
    response = client.post(URL, headers=auth, json={"file": "x"})
    assert response.status_code == 422


def test_upload_over_the_limit_is_413(api_settings: Settings, auth: dict[str, str]) -> None:
    small = api_settings.model_copy(update={"max_upload_mb": 0.01})  # 10 KiB
    payload = npz_bytes(x_a=np.zeros((N, 200), dtype=np.float32))
    assert len(payload) > 0.01 * 1024 * 1024
    with TestClient(create_app(small)) as client:
        response = client.post(URL, headers=auth, files={"file": ("big.npz", payload)})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert _stored_files(api_settings) == []


def test_upload_needs_auth(client: TestClient) -> None:
    assert client.post(URL, files={"file": ("a.npz", npz_bytes())}).status_code == 401


def test_builtin_registration_enqueues_make_dataset(
    client: TestClient, auth: dict[str, str], api_settings: Settings
) -> None:
    body = {"generator": "xor_spurious", "params": {"alpha": 0.9}, "seed": 3}
    response = client.post(f"{URL}/builtin", headers=auth, json=body)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["status"] == "pending" and dataset["source"] == "builtin"
    assert dataset["builtin_name"] == "xor_spurious"
    assert dataset["params"] == {"alpha": 0.9, "seed": 3}
    assert drain_tasks(api_settings) == [("synib.make_dataset", dataset["id"])]
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        row = crud.get_dataset(session, dataset_id=dataset["id"])
        assert row is not None and (row.send_count, row.last_sent_at) == (0, None)  # no resend
    # The embedded broker lives in the state folder, whatever directory the API runs from.
    assert api_settings.embedded_broker_file == api_settings.state_dir / "broker.sqlite"
    assert api_settings.embedded_broker_file.is_file()


def test_builtin_unknown_generator_is_422(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(f"{URL}/builtin", headers=auth, json={"generator": "nope"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "generator"]


def test_pagination_limits(
    client: TestClient, auth: dict[str, str], db_session: Session, user_token: tuple[str, str]
) -> None:
    for _ in range(3):
        add_ready_dataset(db_session, user_token[1])
    page = client.get(URL, headers=auth, params={"limit": 2, "offset": 2}).json()
    assert page["count"] == 3 and len(page["data"]) == 1
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        assert client.get(URL, headers=auth, params=bad).status_code == 422


def test_delete_dataset(
    client: TestClient,
    auth: dict[str, str],
    api_settings: Settings,
    db_session: Session,
    user_token: tuple[str, str],
) -> None:
    uploaded = client.post(URL, headers=auth, files={"file": ("d.npz", npz_bytes())}).json()
    job = add_job(db_session, user_token[1], uploaded["id"], status="running")
    assert client.delete(f"{URL}/{uploaded['id']}", headers=auth).status_code == 409
    from infra.db import crud

    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    assert client.delete(f"{URL}/{uploaded['id']}", headers=auth).status_code == 204
    assert client.get(f"{URL}/{uploaded['id']}", headers=auth).status_code == 404
    assert _stored_files(api_settings) == []
    db_session.expire_all()
    assert crud.get_job(db_session, job_id=job.id).dataset_id is None  # type: ignore[union-attr]


def test_other_users_dataset_is_404(client: TestClient, make_token, db_session: Session) -> None:  # type: ignore[no-untyped-def]
    _, bob_id = make_token("bob")
    alice, _ = make_token("alice")
    bobs = add_ready_dataset(db_session, bob_id)
    headers = {"Authorization": f"Bearer {alice}"}
    assert client.get(f"{URL}/{bobs.id}", headers=headers).status_code == 404
    assert client.delete(f"{URL}/{bobs.id}", headers=headers).status_code == 404
    assert client.get(URL, headers=headers).json()["count"] == 0


def test_builtin_params_must_be_plain_finite_json(
    client: TestClient, auth: dict[str, str], api_settings: Settings
) -> None:
    # Raw bodies: NaN and Infinity are what Python's json module (so FastAPI) reads from them,
    # and PostgreSQL's json type cannot store them (a 500 before this was checked).
    headers = {**auth, "Content-Type": "application/json"}
    for params, field in (
        ('{"signal": NaN}', "params.signal"),
        ('{"p": [0.4, Infinity]}', "params.p[1]"),
        ('{"n": 1' + "0" * 400 + "}", "params.n"),
        ('{"nested": {"a": 1}}', "params.nested"),
    ):
        body = '{"generator": "xor_pid", "params": ' + params + "}"
        response = client.post(f"{URL}/builtin", headers=headers, content=body)
        assert response.status_code == 422, (params, response.text)
        [item] = response.json()["detail"]
        assert f"{field}: " in item["msg"], item
    assert client.get(URL, headers=auth).json()["count"] == 0
    good = {"generator": "xor_pid", "params": {"p": [0.45, 0, 0.45, 0.1], "n_train": 100}}
    assert client.post(f"{URL}/builtin", headers=auth, json=good).status_code == 201


def test_upload_with_too_many_form_fields_is_422_and_not_stored(
    client: TestClient, auth: dict[str, str], api_settings: Settings
) -> None:
    fields = {f"f{i}": "x" for i in range(17)}
    response = client.post(URL, headers=auth, files={"file": ("a.npz", npz_bytes())}, data=fields)
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert item["field"] == "form" and "more than 16 form fields" in item["msg"]
    assert _stored_files(api_settings) == []
    ok = client.post(URL, headers=auth, files={"file": ("a.npz", npz_bytes())}, data={"name": "n"})
    assert ok.status_code == 201, ok.text


def test_uploads_are_validated_one_at_a_time(
    client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation reads every byte and holds the per-sample arrays: concurrent uploads must not
    add up. The real validator runs; the wrapper only counts how many run at once (and makes
    each last)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from api.routes import datasets as route

    real = route.validate_npz
    lock = threading.Lock()
    running, most = [0], [0]

    def counted(path: Path) -> dict:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.3)
            return real(path)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(route, "validate_npz", counted)

    def upload(i: int) -> int:  # three different files: the same one would be reused
        files = {"file": (f"d{i}.npz", npz_bytes(x_b=np.full((N, 3), i, dtype=np.float32)))}
        return client.post(URL, headers=auth, files=files).status_code

    with ThreadPoolExecutor(max_workers=3) as pool:
        codes = list(pool.map(upload, range(3)))
    assert codes == [201, 201, 201]
    assert most[0] == 1


def test_the_generators_and_their_parameters_come_from_the_vocabulary(
    client: TestClient, auth: dict[str, str]
) -> None:
    from synib_spec.builtin import GENERATOR_PARAMS

    response = client.get("/api/v1/datasets/generators", headers=auth)
    assert response.status_code == 200, response.text
    table = response.json()["data"]
    assert [g["name"] for g in table] == list(GENERATOR_PARAMS)
    xor_pid = next(g for g in table if g["name"] == "xor_pid")
    assert {p["name"] for p in xor_pid["params"]} == set(GENERATOR_PARAMS["xor_pid"])
    n_train = next(p for p in xor_pid["params"] if p["name"] == "n_train")
    assert n_train == {"name": "n_train", "default": 1800, "allowed": "an integer in 2..10000000"}
    assert client.get("/api/v1/datasets/generators").status_code == 401

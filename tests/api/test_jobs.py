"""Jobs: validation (422 naming the field), trial count, enqueueing, list/get, cancel, rerun,
delete, and isolation between users."""

from __future__ import annotations

from typing import Any

import pytest
from api_factories import add_job, add_ready_dataset
from broker_testing import drain_tasks
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.main import create_app
from infra.db import crud
from infra.db.models import Dataset, Job
from infra.settings import Settings

URL = "/api/v1/jobs"


def _messages(client: TestClient) -> list[tuple[str, str]]:
    """(task, argument) of the messages the API sent (consumed)."""
    app: Any = client.app
    return drain_tasks(app.state.settings)


def test_create_job_counts_trials_and_enqueues(
    client: TestClient, auth: dict[str, str], dataset: Dataset, api_settings: Settings
) -> None:
    spec = {
        "dataset_id": dataset.id,
        "methods": ["vanilla", {"name": "synib", "config": {"mask": "full"}}],
        "config": {"hidden": 16, "lr": 1e-3},
        "sweep": {
            "lambda": {"type": "grid", "values": [0.1, 1, 10]},
            "dropout": {"type": "choice", "values": [0.0, 0.2]},
        },
        "seeds": [0, 1],
        "epochs": 3,
    }
    response = client.post(URL, headers=auth, json=spec)
    assert response.status_code == 202, response.text
    job = response.json()
    # vanilla reads dropout only: 2 x 2 seeds = 4; synib reads both: 3 x 2 x 2 seeds = 12
    assert job["trials_total"] == 16
    assert job["status"] == "queued" and job["progress"] == 0.0
    assert job["spec"]["config"] == {"hidden": 16, "lr": 0.001}
    assert job["spec"]["sweep"]["lambda"] == {"type": "grid", "values": [0.1, 1.0, 10.0]}
    assert _messages(client) == [("synib.run_job", job["id"])]
    # Closed at once: a session left to the garbage collector keeps its transaction (and a lock
    # on jobs) open, and the next test's TRUNCATE waited for it.
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        row = crud.get_job(session, job_id=job["id"])
        assert row is not None and row.task_id
        # Sent once, with the job: no resend by the housekeeping yet.
        assert (row.send_count, row.last_sent_at) == (0, None)


def test_random_sweep_counts_num_samples(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    spec = {
        "dataset_id": dataset.id,
        "methods": ["vanilla", "synib"],
        "sweep": {"lambda": {"type": "loguniform", "low": 0.01, "high": 100}},
        "num_samples": 5,
        "seeds": [0, 1, 2],
    }
    response = client.post(URL, headers=auth, json=spec)
    assert response.status_code == 202
    assert response.json()["trials_total"] == 1 * 3 + 5 * 3


BAD_SPECS = [
    ({"methods": ["nope"]}, "methods", "methods[0]: unknown method"),
    ({"methods": []}, "methods", "at least 1"),
    ({"methods": ["vanilla", "vanilla"]}, "methods", "repeated"),
    (
        {"methods": [{"name": "synib", "config": {"mask": "bad"}}]},
        "methods",
        "methods[0].config.mask",
    ),
    ({"config": {"lr": -1}}, "config", "config.lr"),
    ({"config": {"no_such_knob": 1}}, "config", "unknown knob"),
    ({"sweep": {"lambda": {"type": "grid", "values": []}}}, "sweep", "sweep.lambda.values"),
    ({"sweep": {"lambda": {"type": "grid", "values": [1, 1.0]}}}, "sweep", "distinct"),
    ({"sweep": {"lambda": {"type": "loguniform", "low": 0, "high": 1}}}, "sweep", "low > 0"),
    ({"sweep": {"hidden": {"type": "uniform", "low": 1, "high": 9}}}, "sweep", "float knob"),
    ({"sweep": {"lambda": {"type": "normal", "low": 1, "high": 2}}}, "sweep.lambda.type", ""),
    ({"sweep": {"encoder": {"type": "grid", "values": ["mlp", "rnn"]}}}, "sweep", "values[1]"),
    ({"seeds": []}, "seeds", "at least 1"),
    ({"seeds": [0, 0]}, "seeds", "unique"),
    ({"baseline": "nope"}, "baseline", "unknown method"),
    ({"scheduler": {"type": "hyperband"}}, "scheduler.type", ""),
    ({"epochs": 0}, "epochs", ""),
    ({"epochs": 10**400}, "epochs", ""),
    ({"config": {"epochs": 10**400}}, "config", "config.epochs"),
    ({"scheduler": {"grace_period": 2**40}}, "scheduler.grace_period", ""),
    # Rules between knobs (api.knobs.check_cross_fields, the library's): refused at submission,
    # not by the worker once the job runs.
    ({"methods": ["synib"], "config": {"penalty": "anchor"}}, "config.w_uni", "unimodal heads"),
    ({"config": {"feature_norm": "none"}}, "config.feature_norm", "method 'synib'"),
    (
        {"sweep": {"mask": {"type": "grid", "values": ["random", "learned"]}}},
        "config.w_uni",
        "method 'synib' at sweep point mask=learned",
    ),
    ({"unexpected": 1}, "unexpected", ""),
]


@pytest.mark.parametrize(("change", "loc", "message"), BAD_SPECS)
def test_invalid_specs_are_422_naming_the_field(
    client: TestClient,
    auth: dict[str, str],
    dataset: Dataset,
    api_settings: Settings,
    change: dict[str, Any],
    loc: str,
    message: str,
) -> None:
    spec = {"dataset_id": dataset.id, "methods": ["vanilla", "synib"], **change}
    response = client.post(URL, headers=auth, json=spec)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    locs = [".".join(str(p) for p in e["loc"][1:]) for e in errors]
    assert any(item.startswith(loc) for item in locs), locs
    assert any(message in e["msg"] for e in errors), errors
    assert _messages(client) == []


def test_dataset_must_exist_be_owned_and_not_failed(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    make_token,
    user_token,  # type: ignore[no-untyped-def]
) -> None:
    _, bob_id = make_token("bob")
    bobs = add_ready_dataset(db_session, bob_id)
    failed = add_ready_dataset(db_session, user_token[1], status="failed")
    for dataset_id, reason in (
        ("missing", "no dataset"),
        (bobs.id, "no dataset"),
        (failed.id, "dataset failed"),
    ):
        response = client.post(
            URL, headers=auth, json={"dataset_id": dataset_id, "methods": ["vanilla"]}
        )
        assert response.status_code == 422
        [item] = response.json()["detail"]
        assert item["field"] == "dataset_id" and reason in item["msg"]


def test_enqueue_failure_still_202_and_job_stays_queued_unsent(
    api_settings: Settings, auth: dict[str, str], dataset: Dataset
) -> None:
    down = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down)) as client:
        response = client.post(
            URL, headers=auth, json={"dataset_id": dataset.id, "methods": ["vanilla"]}
        )
        assert response.status_code == 202
        job = client.get(f"{URL}/{response.json()['id']}", headers=auth).json()
        with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
            row = crud.get_job(session, job_id=job["id"])
            assert row is not None
            # Nothing on the row tells a failed send from a message lost later: the
            # housekeeping resends either once the job has waited requeue_queued_after_s.
            assert (row.status, row.send_count, row.last_sent_at) == ("queued", 0, None)
    assert job["status"] == "queued"


def test_list_filter_get_and_best(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    owner = user_token[1]
    queued = add_job(db_session, owner, dataset.id)
    done = add_job(db_session, owner, dataset.id, status="running")
    trials = (
        ("synib|lambda=1|seed=0", "succeeded", 0.7),
        ("synib|lambda=10|seed=0", "succeeded", 0.9),
        # A failed trial never counts as the best, whatever it measured before failing.
        ("synib|lambda=0.1|seed=0", "failed", 0.99),
    )
    for key, status, val_acc in trials:
        trial = crud.upsert_trial(
            db_session,
            job_id=done.id,
            trial_key=key,
            method="synib",
            seed=0,
            config={"lambda": float(key.split("=")[1].split("|")[0])},
        )
        crud.set_trial_status(
            db_session,
            trial_id=trial.id,
            status=status,
            metrics={"val_acc": val_acc, "test_acc": val_acc - 0.1, "synergy_acc": 0.5},
        )
    crud.set_job_status(db_session, job_id=done.id, status="succeeded")
    listed = client.get(URL, headers=auth).json()
    assert listed["count"] == 2
    assert {j["id"] for j in listed["data"]} == {queued.id, done.id}
    only = client.get(URL, headers=auth, params={"status": "succeeded"}).json()
    assert [j["id"] for j in only["data"]] == [done.id]
    assert client.get(URL, headers=auth, params={"status": "bogus"}).status_code == 422
    job = client.get(f"{URL}/{done.id}", headers=auth).json()
    assert job["progress"] == 1.0 and job["trials_done"] == 3
    assert job["best"]["synib"]["config"] == {"lambda": 10.0}
    assert job["best"]["synib"]["val_acc"] == 0.9
    assert job["best"]["synib"]["test_acc"] == pytest.approx(0.8)
    assert only["data"][0]["best"]["synib"]["val_acc"] == 0.9


def test_best_is_the_reported_point_over_seeds_and_then_the_report_itself(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    """One definition of "best" (issue: the list, GET /jobs/{id}, the report and the download
    named different trials): the sweep point with the highest MEAN val_acc over seeds, then its
    best seed; once the job has a report, the report's own choice."""
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    spec = {**job.spec, "sweep": {"lambda": {"type": "grid", "values": [1.0, 10.0]}}}
    db_session.execute(update(Job).where(Job.id == job.id).values(spec=spec))
    db_session.commit()
    ids = {}
    for lam, seed, val_acc in ((1.0, 0, 0.95), (1.0, 1, 0.55), (10.0, 0, 0.8), (10.0, 1, 0.82)):
        key = f"synib|lambda={lam:g}|seed={seed}"
        trial = crud.upsert_trial(
            db_session, job_id=job.id, trial_key=key, method="synib", seed=seed,
            config={"lambda": lam},
        )  # fmt: skip
        crud.set_trial_status(
            db_session, trial_id=trial.id, status="succeeded", metrics={"val_acc": val_acc}
        )
        ids[key] = trial.id
    best = client.get(f"{URL}/{job.id}", headers=auth).json()["best"]["synib"]
    # lambda=1 has the single best trial (0.95) but the lower mean (0.75 < 0.81)
    assert best["trial_id"] == ids["synib|lambda=10|seed=1"]
    report = {"methods": {"synib": {"best_trial_id": ids["synib|lambda=10|seed=0"]}}}
    crud.set_job_report(db_session, job_id=job.id, report=report)
    best = client.get(f"{URL}/{job.id}", headers=auth).json()["best"]["synib"]
    assert best["trial_id"] == ids["synib|lambda=10|seed=0"]  # the report's, as downloads


def test_cancel(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    queued = add_job(db_session, user_token[1], dataset.id)
    running = add_job(db_session, user_token[1], dataset.id, status="running")
    finished = add_job(db_session, user_token[1], dataset.id, status="succeeded")
    response = client.post(f"{URL}/{queued.id}/cancel", headers=auth)
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    response = client.post(f"{URL}/{running.id}/cancel", headers=auth)
    assert response.status_code == 202 and response.json()["status"] == "cancelling"
    assert client.post(f"{URL}/{finished.id}/cancel", headers=auth).status_code == 409
    assert client.post(f"{URL}/missing/cancel", headers=auth).status_code == 404


def test_rerun_failed(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    api_settings: Settings,
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    ok = crud.upsert_trial(
        db_session, job_id=job.id, trial_key="vanilla|seed=0", method="vanilla", seed=0, config={}
    )
    bad = crud.upsert_trial(
        db_session, job_id=job.id, trial_key="synib|seed=0", method="synib", seed=0, config={}
    )
    crud.set_trial_status(db_session, trial_id=ok.id, status="succeeded", metrics={"val_acc": 0.5})
    assert client.post(f"{URL}/{job.id}/rerun-failed", headers=auth).status_code == 409  # running
    crud.set_trial_status(db_session, trial_id=bad.id, status="failed", failure_reason="boom")
    crud.set_job_status(db_session, job_id=job.id, status="failed", failure_reason="1 trial failed")
    response = client.post(f"{URL}/{job.id}/rerun-failed", headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["failure_reason"] is None
    assert body["trials_done"] == 1 and body["progress"] == 0.5
    trials = {
        t["trial_key"]: t for t in client.get(f"{URL}/{job.id}/trials", headers=auth).json()["data"]
    }
    assert trials["synib|seed=0"]["status"] == "pending"
    assert trials["synib|seed=0"]["failure_reason"] is None
    assert trials["vanilla|seed=0"]["status"] == "succeeded"
    assert [task for task, _ in _messages(client)] == ["synib.run_job"]


def test_delete_job_removes_rows_and_files(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    api_settings: Settings,
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    model = api_settings.artifact_root / "jobs" / job.id / "model.zip"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"zip")
    crud.add_artifact(
        db_session,
        owner_id=user_token[1],
        job_id=job.id,
        kind="model",
        name="model",
        path=f"jobs/{job.id}/model.zip",
        sha256="0" * 64,
        size_bytes=3,
    )
    assert client.delete(f"{URL}/{job.id}", headers=auth).status_code == 409
    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    assert client.delete(f"{URL}/{job.id}", headers=auth).status_code == 204
    assert not model.exists()
    assert client.get(f"{URL}/{job.id}", headers=auth).status_code == 404


def test_user_cannot_see_or_touch_another_users_job(
    client: TestClient,
    db_session: Session,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    alice, _ = make_token("alice")
    _, bob_id = make_token("bob")
    bobs_job = add_job(
        db_session, bob_id, add_ready_dataset(db_session, bob_id).id, status="failed"
    )
    headers = {"Authorization": f"Bearer {alice}"}
    for method, path in (
        ("GET", ""),
        ("POST", "/cancel"),
        ("POST", "/rerun-failed"),
        ("DELETE", ""),
        ("GET", "/trials"),
        ("GET", "/metrics"),
        ("GET", "/report"),
        ("GET", "/artifacts"),
        ("GET", "/events"),
        ("GET", "/trials.csv"),
        ("GET", "/trials.json"),
    ):
        response = client.request(method, f"{URL}/{bobs_job.id}{path}", headers=headers)
        assert response.status_code == 404, (method, path)
    assert client.get(URL, headers=headers).json()["count"] == 0


def test_non_finite_resources_and_scheduler_are_422(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    # Raw bodies: Python's json module (so FastAPI) reads NaN and Infinity from them.
    headers = {**auth, "Content-Type": "application/json"}
    for part, loc in (
        ('"resources": {"cpus_per_trial": Infinity}', "resources.cpus_per_trial"),
        ('"resources": {"gpus_per_trial": NaN}', "resources.gpus_per_trial"),
        ('"config": {"lr": NaN}', "config.lr"),  # the 422 echoes the input: it must stay JSON
        (
            '"scheduler": {"type": "asha", "reduction_factor": Infinity}',
            "scheduler.reduction_factor",
        ),
    ):
        body = f'{{"dataset_id": "{dataset.id}", "methods": ["vanilla"], {part}}}'
        response = client.post(URL, headers=headers, content=body)
        assert response.status_code == 422, (part, response.text)
        locs = [".".join(str(p) for p in e["loc"][1:]) for e in response.json()["detail"]]
        assert loc in locs, locs
    assert _messages(client) == []


def test_spec_needing_what_the_dataset_lacks_is_422(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    """The dataset (modality ``a``, no oracle coordinates) cannot serve these trials."""
    for config, field, reason in (
        ({"mask": "oracle", "mask_level": "input"}, "config.mask", "oracle coordinates"),
        ({"modality_weights": "a=1,b=2"}, "config.modality_weights", "unknown modalities ['b']"),
    ):
        spec = {"dataset_id": dataset.id, "methods": [{"name": "synib", "config": config}]}
        response = client.post(URL, headers=auth, json=spec)
        assert response.status_code == 422, response.text
        [item] = response.json()["detail"]
        assert item["field"] == field and reason in item["msg"], item
    # A method that does not read the knob is not held to it; a known modality is fine.
    for spec in (
        {"dataset_id": dataset.id, "methods": ["vanilla"], "config": {"mask": "oracle"}},
        {"dataset_id": dataset.id, "methods": ["synib"], "config": {"modality_weights": "a=2"}},
    ):
        assert client.post(URL, headers=auth, json=spec).status_code == 202, spec


def test_a_combination_that_measurably_hurts_is_accepted_with_a_warning(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    """Input-level masks with the LayerNorm kept by hand: 202, and the answer says why it may
    hurt, naming the knob and the method (vanilla never masks: no warning for it)."""
    spec = {"dataset_id": dataset.id, "methods": ["vanilla", "synib"], "seeds": [0]}
    plain = client.post(URL, headers=auth, json=spec)
    assert plain.status_code == 202 and plain.json()["warnings"] == []
    risky = {**spec, "config": {"mask_level": "input", "feature_norm": "layernorm"}}
    response = client.post(URL, headers=auth, json=risky)
    assert response.status_code == 202, response.text
    warnings = response.json()["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("config.feature_norm: ")
    assert "(method 'synib')" in warnings[0] and "feature_norm='auto'" in warnings[0]
    assert client.get(f"{URL}/{response.json()['id']}", headers=auth).status_code == 200

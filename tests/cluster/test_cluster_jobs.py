"""A job on a real two-node Ray cluster (``ray start`` on loopback) with its storage in a bucket
(moto's S3 server on loopback, ``storage_env``): the service's Celery worker joins the cluster
as a driver, the trials run on both nodes (each trial's recorded placement names its node) and
upload their checkpoints to the bucket (the job's Tune experiment, ``<prefix>/tune/job-<id>/``,
dropped once the job ended), the artifacts are objects under ``<prefix>/jobs/<id>/``, the
report and a model download come through an API on the same storage settings, and nothing is
stored in a local artifact folder; then the second raylet is SIGKILLed mid-job and its trials
go on from their last checkpoint on the head.

The tests share one cluster (module scope) and run in order: the second one loses ``node2``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_cluster import RayCluster, RayNode
from s3_server import S3Server
from worker_process import FINAL_STATUSES, create_job, job_status, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params, wait_for

from infra.db import crud
from infra.object_store import open_store

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

URL = "/api/v1"


def spec(epochs: int) -> dict[str, Any]:
    """2 methods x 2 seeds: 4 one-CPU trials of a tiny model."""
    return {
        "methods": ["vanilla", "synib"],
        "config": tiny_config(),
        "epochs": epochs,
        "sweep": {},
        "seeds": [0, 1],
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "baseline": "vanilla",
    }


@pytest.fixture(scope="module")
def user(cluster_worker: WorkerHarness) -> tuple[str, str]:
    """(token, user id) of a fresh user of the service."""
    from infra.tokens import issue_token

    with cluster_worker.sessions() as session:
        issued = issue_token(session, user_name=f"cluster-{secrets.token_hex(3)}")
    return issued.token, issued.user_id


@pytest.fixture(scope="module")
def api_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's own state folder (another process than the worker: it shares the bucket)."""
    return tmp_path_factory.mktemp("cluster_api")


@pytest.fixture(scope="module")
def api(
    cluster_worker: WorkerHarness, storage_env: dict[str, str], api_state: Path
) -> Iterator[Any]:
    """A TestClient on the API, with the worker's database and the same storage settings (the
    bucket's prefix, endpoint and region; the credentials are in this process's environment)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from infra.settings import Settings

    worker = cluster_worker.settings
    storage = {k[len("SYNIB_") :].lower(): v for k, v in storage_env.items() if "SYNIB_" in k}
    settings = Settings(
        **storage,
        state_dir=api_state / "state",
        database_url=worker.database_url,
        broker_url=worker.broker_url,
        static_dir=api_state / "no-dashboard",
        config_dir=api_state / "config",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def placements(harness: WorkerHarness, job_id: str) -> dict[str, dict[str, Any]]:
    """trial key -> where it ran (``placement`` in its result.json, read from the bucket)."""
    store = open_store(harness.settings)
    with harness.sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
    placed = {}
    for trial in trials:
        with store.open_read(f"jobs/{job_id}/{trial.id}/result.json") as fh:
            placed[trial.trial_key] = json.loads(fh.read())["placement"]
    return placed


def wait_final_watching(
    harness: WorkerHarness, job_id: str, s3: S3Server, prefix: str
) -> tuple[str, set[str]]:
    """The job's final status, and every key listed under ``prefix`` of the bucket while it
    ran (listed every 0.2 s)."""
    seen: set[str] = set()

    def final() -> str | None:
        seen.update(s3.keys(prefix))
        status = job_status(harness, job_id)
        return status if status in FINAL_STATUSES else None

    try:
        status = wait_for(final, 240, f"job {job_id} to finish", 0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker log:\n{harness.log()[-3000:]}") from None
    return str(status), seen


def test_trials_run_on_both_nodes_and_the_results_come_through_the_api(
    cluster: RayCluster,
    cluster_worker: WorkerHarness,
    user: tuple[str, str],
    api: Any,
    api_state: Path,
    s3: S3Server,
    storage_prefix: str,
) -> None:
    token, user_id = user
    job_id = create_job(cluster_worker, user_id, spec(epochs=2), {**tiny_pid_params(), "seed": 0})
    experiment = f"{storage_prefix}/tune/job-{job_id}/"
    cluster_worker.send("synib.run_job", job_id)
    status, seen = wait_final_watching(cluster_worker, job_id, s3, experiment)
    assert status == "succeeded"

    placed = placements(cluster_worker, job_id)
    assert len(placed) == 4
    nodes = {key: cluster.node_of(place["node_id"]) for key, place in placed.items()}
    assert set(nodes.values()) == {"head", "node2"}, nodes

    # Every trial's checkpoints were objects of the job's experiment while it ran (uploaded by
    # the trials themselves, on both nodes), and the experiment is gone now that the job ended.
    with cluster_worker.sessions() as session:
        trial_ids = {t.id for t in crud.list_trials(session, job_id=job_id)}
    checkpointed = {k.removeprefix(experiment).split("/")[0] for k in seen if "/checkpoint_" in k}
    assert len(checkpointed) == 4, sorted(seen)
    assert any("experiment_state" in k for k in seen), sorted(seen)
    assert not s3.keys(experiment)
    # The job's artifacts are objects under its own prefix: its own trials' outputs and the
    # report, nothing else.
    jobs = f"{storage_prefix}/jobs/{job_id}/"
    stored = [k.removeprefix(jobs) for k in s3.keys(jobs)]
    assert {k.split("/")[0] for k in stored if "/" in k} == trial_ids, stored
    assert {k for k in stored if "/" not in k} == {"report.json"}, stored
    for trial_id in trial_ids:
        assert {"model.zip", "result.json", "test_pred.npy"} <= {
            Path(k).name for k in stored if k.startswith(f"{trial_id}/")
        }

    headers = {"Authorization": f"Bearer {token}"}
    report = api.get(f"{URL}/jobs/{job_id}/report", headers=headers)
    assert report.status_code == 200, report.text
    assert set(report.json()["methods"]) == {"vanilla", "synib"}
    artifacts = api.get(f"{URL}/jobs/{job_id}/artifacts", headers=headers).json()["data"]
    model = next(a for a in artifacts if a["kind"] == "model")
    download = api.get(f"{URL}/artifacts/{model['id']}", headers=headers)
    assert download.status_code == 200
    with cluster_worker.sessions() as session:
        row = crud.get_artifact(session, artifact_id=model["id"], owner_id=user_id)
    assert row is not None
    assert hashlib.sha256(download.content).hexdigest() == row.sha256
    assert download.headers["X-Checksum-SHA256"] == row.sha256
    assert open_store(cluster_worker.settings).sha256(row.path)[0] == row.sha256
    assert f"{storage_prefix}/{row.path}" in s3.keys(f"{storage_prefix}/jobs/{job_id}/")

    # Nothing was stored in a local artifact folder (the worker's or the API's).
    for state in (cluster_worker.settings.state_dir, api_state / "state"):
        assert not (state / "artifacts").exists(), list((state / "artifacts").rglob("*"))


PLACED = re.compile(r"trial (\S+) runs on node \S+, process (\d+)")


def session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def trial_training_on(harness: WorkerHarness, job_id: str, node: RayNode) -> str | None:
    """The key of a trial of the job that runs on ``node`` (its process, as the worker logged
    it, is in the node's session) and has recorded an epoch; fails once the job ended."""
    with harness.sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
        job = crud.get_job(session, job_id=job_id)
    assert job is not None and job.status not in FINAL_STATUSES, harness.log()[-3000:]
    # The last logged process of each trial.
    pids = {key: int(pid) for key, pid in PLACED.findall(harness.log())}
    for trial in trials:
        pid = pids.get(trial.trial_key, 0)
        running = trial.status == "running" and trial.epochs_done >= 1
        if running and pid and session_of(pid) == node.process.pid:
            return trial.trial_key
    return None


def test_a_killed_raylet_s_trials_resume_on_the_head_each_epoch_recorded_once(
    cluster: RayCluster,
    cluster_worker: WorkerHarness,
    user: tuple[str, str],
    s3: S3Server,
    storage_prefix: str,
) -> None:
    epochs = 10
    _, user_id = user
    data = {**tiny_pid_params(), "n_train": 3000, "seed": 1}  # epochs of a few tenths of a second
    job_id = create_job(cluster_worker, user_id, spec(epochs), data)
    cluster_worker.send("synib.run_job", job_id)
    node2 = cluster.nodes["node2"]
    moved = wait_for(
        lambda: trial_training_on(cluster_worker, job_id, node2), 120, "a trial on node2", 0.1
    )
    node2.kill()

    assert wait_final(cluster_worker, job_id) == "succeeded"
    with cluster_worker.sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
        assert len(trials) == 4 and {t.status for t in trials} == {"succeeded"}
        for trial in trials:
            recorded = [e.epoch for e in crud.list_epoch_metrics(session, trial_id=trial.id)]
            assert recorded == list(range(1, epochs + 1)), (trial.trial_key, recorded)
    # Every trial finished on the head: node2 was gone.
    placed = placements(cluster_worker, job_id)
    assert {cluster.node_of(p["node_id"]) for p in placed.values()} == {"head"}, placed
    # The trial on node2 restarted: the worker logged its new process (on the head).
    moves = [pid for key, pid in PLACED.findall(cluster_worker.log()) if key == moved]
    assert len(set(moves)) >= 2, moves
    # The job's experiment left the bucket with the job.
    assert not s3.keys(f"{storage_prefix}/tune/job-{job_id}/")

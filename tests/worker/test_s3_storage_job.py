"""One real job with ``SYNIB_STORAGE_URI=s3://bucket/prefix`` (moto's S3 server on loopback):
a real ``synib api`` process and a real Celery worker with its local Ray. The uploaded dataset,
the Tune experiment (trial checkpoints) and the artifacts are objects in the bucket; the report
and the downloads work over HTTP; nothing lands in the local artifact folder."""

from __future__ import annotations

import hashlib
import secrets
import threading
from pathlib import Path

import httpx
import pytest
from processes import running_api
from s3_server import S3Server
from worker_process import running_worker, wait_final
from worker_testing import BROKER_URL, tiny_config, tiny_pid_params

from infra.tokens import issue_token

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def tiny_npz(folder: Path) -> bytes:
    from synib_core.data import make_dataset, save_npz

    path = folder / "tiny.npz"
    save_npz(make_dataset("xor_pid", 0, **tiny_pid_params()), path)
    return path.read_bytes()


class KeyWatch:
    """Lists the bucket under ``prefix`` every 0.2 s in a thread; ``seen``: every key listed."""

    def __init__(self, s3: S3Server, prefix: str) -> None:
        self.s3, self.prefix, self.seen = s3, prefix, set[str]()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.seen.update(self.s3.keys(self.prefix))

    def __enter__(self) -> KeyWatch:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_a_job_keeps_everything_in_the_bucket(
    pg_database_url: str, tmp_path: Path, s3: S3Server
) -> None:
    prefix = f"job-{secrets.token_hex(3)}"
    env = s3.env(prefix)
    settings = {k.removeprefix("SYNIB_").lower(): v for k, v in env.items() if "SYNIB_" in k}
    worker_state = tmp_path / "worker"
    worker_state.mkdir()
    with (
        running_worker(pg_database_url, worker_state, extra_env=env) as harness,
        running_api(pg_database_url, tmp_path, broker_url=BROKER_URL, **settings) as (url, _),
    ):
        with harness.sessions() as session:
            token = issue_token(session, user_name=f"s3-{secrets.token_hex(3)}").token
        client = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}
        )
        with client:
            payload = tiny_npz(tmp_path)
            upload = client.post("/datasets", files={"file": ("tiny.npz", payload)})
            assert upload.status_code == 201, upload.text
            dataset_id = upload.json()["id"]
            assert s3.keys(prefix) == {f"{prefix}/datasets/{dataset_id}.npz": len(payload)}
            spec = {
                "dataset_id": dataset_id,
                "methods": ["synib"],
                "config": tiny_config(),
                "epochs": 2,
                "sweep": {"lambda": {"type": "grid", "values": [1.0, 10.0]}},
                "seeds": [0],
                "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
            }
            with KeyWatch(s3, f"{prefix}/tune") as watch:
                job = client.post("/jobs", json=spec)
                assert job.status_code == 202, job.text
                job_id = job.json()["id"]
                assert wait_final(harness, job_id) == "succeeded"
            experiment = f"{prefix}/tune/job-{job_id}/"
            checkpoints = [
                k for k in watch.seen if k.startswith(experiment) and "/checkpoint_" in k
            ]
            assert checkpoints, f"no trial checkpoint seen in the bucket: {sorted(watch.seen)}"
            assert any(k.startswith(experiment) and "experiment_state" in k for k in watch.seen)

            keys = s3.keys(prefix)
            assert not [k for k in keys if k.startswith(experiment)]  # dropped once final
            report = client.get(f"/jobs/{job_id}/report")
            assert report.status_code == 200 and report.json()["methods"]["synib"]
            artifacts = client.get(f"/jobs/{job_id}/artifacts").json()["data"]
            assert sorted(a["kind"] for a in artifacts) == ["model", "model", "report"]
            for artifact in artifacts:
                where = (
                    f"{artifact['trial_id']}/model.zip" if artifact["trial_id"] else "report.json"
                )
                assert keys[f"{prefix}/jobs/{job_id}/{where}"] == artifact["size_bytes"]
                body = client.get(f"/artifacts/{artifact['id']}")
                assert body.status_code == 200
                digest = hashlib.sha256(body.content).hexdigest()
                assert digest == artifact["sha256"] == body.headers["x-checksum-sha256"]
            trial_files = [k for k in keys if k.startswith(f"{prefix}/jobs/{job_id}/")]
            assert {Path(k).name for k in trial_files} >= {
                "model.zip",
                "test_pred.npy",
                "result.json",
                "report.json",
            }
    for state in (worker_state, tmp_path / "state"):
        assert not (state / "artifacts").exists(), list((state / "artifacts").rglob("*"))
    assert not list((worker_state / "tmp").iterdir())  # staged writes were uploaded and removed

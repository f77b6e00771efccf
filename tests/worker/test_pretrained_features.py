"""Frozen pretrained features through a real worker: a job whose text modality is read by the
packaged all-MiniLM-L6-v2 extracts the features once, stores them and records the
``dataset_features`` row; a second job on the same dataset takes them from the cache (one row,
the worker log says so); a model no worker offers fails the job naming the field."""

from __future__ import annotations

import re

import numpy as np
import pytest
from worker_process import wait_final
from worker_testing import WorkerHarness, tiny_config

from infra.db import crud
from infra.storage import ArtifactStore, sha256_file

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

N = 60
GOOD = ["a wonderful film", "great acting and a moving story", "I loved every minute"]
BAD = ["a dreadful film", "boring and far too long", "I want my money back"]


def text_dataset(harness: WorkerHarness, owner_id: str) -> str:
    """A ready uploaded dataset: raw texts (``<U``), a noise vector modality, binary labels."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % 2
    texts = np.array([(GOOD if c else BAD)[i % 3] + f" #{i}" for i, c in enumerate(y)])
    store = ArtifactStore(harness.settings.artifact_root)
    tmp = store.new_temp_file(suffix=".npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, x_text=texts, x_v=rng.normal(size=(N, 4)).astype(np.float32), y=y)
    with harness.sessions() as session:
        row = crud.create_dataset(session, owner_id=owner_id, name="texts", source="upload",
                                  status="pending")  # fmt: skip
        relative = f"datasets/{row.id}.npz"
        store.put(tmp, relative)
        sha, size = sha256_file(store.resolve(relative))
        crud.mark_dataset_ready(
            session, dataset_id=row.id, path=relative, sha256=sha, size_bytes=size, summary={}
        )
        return str(row.id)


def text_job(
    harness: WorkerHarness, owner_id: str, dataset_id: str, model: str, **backbone: str
) -> str:
    spec = {
        "dataset_id": dataset_id,
        "methods": ["vanilla"],
        "config": tiny_config(),
        "epochs": 1,
        "sweep": {},
        "seeds": [0],
        "backbones": {"text": {"encoder": "pretrained", "model": model, **backbone}},
    }
    with harness.sessions() as session:
        job = crud.create_job(session, owner_id=owner_id, dataset_id=dataset_id, name="pretrained",
                              spec=spec, trials_total=0)  # fmt: skip
    harness.send("synib.run_job", str(job.id))
    return str(job.id)


@pytest.fixture(scope="module")
def dataset_id(worker_harness: WorkerHarness, owner_id: str) -> str:
    return text_dataset(worker_harness, owner_id)


@pytest.fixture(scope="module")
def first_job(worker_harness: WorkerHarness, owner_id: str, dataset_id: str) -> str:
    job_id = text_job(worker_harness, owner_id, dataset_id, "all-minilm-l6-v2")
    assert wait_final(worker_harness, job_id) == "succeeded", worker_harness.log()[-3000:]
    return job_id


def test_first_job_extracts_stores_and_records_the_features(
    worker_harness: WorkerHarness, dataset_id: str, first_job: str
) -> None:
    with worker_harness.sessions() as session:
        rows = crud.get_dataset_features(session, dataset_id=dataset_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row.modality, row.model, row.pooling, row.dim) == ("text", "all-minilm-l6-v2", "mean",
                                                               384)  # fmt: skip
    assert row.path == f"features/{row.fingerprint}.npy" and row.seconds > 0
    feats = np.load(ArtifactStore(worker_harness.settings.artifact_root).resolve(row.path))
    assert feats.shape == (N, 384) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)
    log = worker_harness.log()
    assert re.search(
        rf"job {first_job}: features of text \(all-minilm-l6-v2, mean\) extracted", log
    )


def test_second_job_takes_the_features_from_the_cache(
    worker_harness: WorkerHarness, owner_id: str, dataset_id: str, first_job: str
) -> None:
    job_id = text_job(worker_harness, owner_id, dataset_id, "all-minilm-l6-v2")
    assert wait_final(worker_harness, job_id) == "succeeded", worker_harness.log()[-3000:]
    with worker_harness.sessions() as session:
        assert len(crud.get_dataset_features(session, dataset_id=dataset_id)) == 1
        trials = crud.list_trials(session, job_id=job_id)
    assert [t.status for t in trials] == ["succeeded"]
    log = worker_harness.log()
    assert re.search(rf"job {job_id}: features of text \(all-minilm-l6-v2, mean\) from the cache "
                     r"\w+: \(60, 384\), [0-9.]+ s of extraction saved", log), log[-3000:]  # fmt: skip
    assert not re.search(rf"job {job_id}: features of text .* extracted", log)


def test_a_job_fine_tunes_the_last_layer_inside_its_trial(
    worker_harness: WorkerHarness, owner_id: str, dataset_id: str, first_job: str
) -> None:
    job_id = text_job(worker_harness, owner_id, dataset_id, "all-minilm-l6-v2",
                      train="last_layers", pooling="cls")  # fmt: skip
    assert wait_final(worker_harness, job_id) == "succeeded", worker_harness.log()[-3000:]
    with worker_harness.sessions() as session:
        assert len(crud.get_dataset_features(session, dataset_id=dataset_id)) == 1  # none added
        trials = crud.list_trials(session, job_id=job_id)
        job = crud.get_job(session, job_id=job_id)
    assert [t.status for t in trials] == ["succeeded"] and "test_acc" in trials[0].metrics
    assert job is not None and job.references  # the unimodal references fine-tuned too
    prepared = rf"job {job_id}: text prepared for all-minilm-l6-v2 in [0-9.]+ s: "
    assert re.search(prepared + r"\{'x': \(60, \d+\), 'lengths': \(60,\)\}", worker_harness.log())


def test_a_model_no_worker_offers_fails_the_job_naming_the_field(
    worker_harness: WorkerHarness, owner_id: str, dataset_id: str, first_job: str
) -> None:
    job_id = text_job(worker_harness, owner_id, dataset_id, "no-such-model")
    assert wait_final(worker_harness, job_id) == "failed"
    with worker_harness.sessions() as session:
        job = crud.get_job(session, job_id=job_id)
    assert job is not None and "backbones.text.model" in str(job.failure_reason)
    assert "no-such-model" in str(job.failure_reason)

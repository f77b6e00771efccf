"""Ray Tune's experiment in the bucket (moto's S3 server on loopback): with
``SYNIB_STORAGE_URI`` the trials' checkpoints go to ``<prefix>/tune/<experiment>`` through the
store's S3FileSystem (``infra.object_store.tune_storage``), ``Tuner.can_restore`` and
``Tuner.restore`` read the experiment back from there, the final checkpoint downloads with the
trial's outputs, and ``drop_experiment`` removes every object of it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3_server import S3Server
from worker_testing import tiny_config, tiny_pid_params

from infra.object_store import tune_storage
from infra.settings import Settings
from synib_core.data import make_dataset
from synib_spec.jobs import Resources
from worker import ray_session
from worker.trainable import MODEL_ZIP, PREDICTIONS, RESULT_JSON, TrialPayload
from worker.tune_results import drop_experiment
from worker.tune_runner import experiment_path, make_trainable, restored_tuner

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def two_cpu_ray(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray started with the bucket's credentials in its environment (the trials
    upload their checkpoints from Ray's worker processes)."""
    state = tmp_path_factory.mktemp("tune-s3")
    ray_session.ensure_ray(Settings(state_dir=state, cpus=2, gpus=0, ray_address=None))
    yield
    ray_session.shutdown_ray()


def payload(trial_id: str) -> TrialPayload:
    return TrialPayload(
        key=f"vanilla|{trial_id}",
        job_id="job",
        trial_id=trial_id,
        method="vanilla",
        seed=0,
        knobs={**tiny_config(), "epochs": 2},
        threads=1,
        memory_mb=None,
    )


def test_checkpoints_live_in_the_bucket_and_restore_from_it(
    two_cpu_ray: None, s3: S3Server, tmp_path: Path
) -> None:
    import ray
    from ray import tune

    env = s3.env("tune-unit")
    settings = Settings(
        state_dir=tmp_path,
        storage_uri=env["SYNIB_STORAGE_URI"],
        s3_endpoint_url=env["SYNIB_S3_ENDPOINT_URL"],
        s3_region=env["SYNIB_S3_REGION"],
    )
    storage, filesystem = tune_storage(settings)
    assert storage == f"{s3.bucket}/tune-unit/tune" and filesystem is not None
    data = make_dataset("xor_pid", 0, **tiny_pid_params())
    trainable = make_trainable(Resources(cpus_per_trial=1), ray.put(data), {})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([payload("a")])},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max"),
        run_config=tune.RunConfig(
            name="job-x", storage_path=storage, storage_filesystem=filesystem, verbose=0
        ),
    )
    assert all(r.error is None for r in tuner.fit())
    keys = s3.keys("tune-unit/tune/job-x")
    checkpoints = {k for k in keys if "/checkpoint_" in k}
    names = {re.search(r"/(checkpoint_\d+)/", k).group(1) for k in checkpoints}  # type: ignore[union-attr]
    assert len(names) == 3  # one per epoch (2), then the outputs
    assert any(k.endswith(f"/{MODEL_ZIP}") for k in checkpoints)
    assert not (tmp_path / "artifacts").exists()

    path = experiment_path(storage, "x")
    assert tune.Tuner.can_restore(path, storage_filesystem=filesystem)
    grid: Any = restored_tuner(path, trainable, filesystem).get_results()
    assert [r.config["trial"]["trial_id"] for r in grid] == ["a"]
    for result in grid:
        assert result.metrics["final"] == 1
        assert result.checkpoint.path.startswith(f"{storage}/job-x/")
        with result.checkpoint.as_directory() as folder:
            names = {p.name for p in Path(folder).iterdir()}
        assert {MODEL_ZIP, PREDICTIONS, RESULT_JSON} <= names

    drop_experiment(path, filesystem)
    assert s3.keys("tune-unit/tune/job-x") == {}
    drop_experiment(path, filesystem)  # already gone: fine

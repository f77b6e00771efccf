"""Two Celery workers on one Ray cluster (``ray start`` on loopback), each joined as a driver,
with one broker, one database and one bucket (moto's S3 server on loopback, ``storage_env``:
the artifacts and Tune's experiments are objects under the module's prefix; nothing is stored
in a worker's local artifact folder).

1. Two jobs at once, one per worker: they run concurrently, both succeed, and each job's
   trials, epochs, Tune experiment (``<prefix>/tune/job-<id>/``, gone once the job ended) and
   artifacts (``<prefix>/jobs/<id>/``) are its own; no trial failed or restarted (neither
   driver disturbed the other).
2. The worker running a job is SIGKILLed (its main process and its pool child, the Ray driver)
   once Tune's saved experiment state names a checkpoint of a trial in training: Ray ends the
   dead driver's trials and reference tasks (the test waits for the cluster to run no task or
   actor of any driver, the public sign that they are gone, before the job can be handed on),
   the housekeeper puts the job back in the queue, and the other worker resumes it on the
   cluster with ``Tuner.restore`` from the bucket: a trial with a checkpoint in the bucket goes
   on after it (not from epoch 1), each epoch is recorded once, and the job succeeds.

The tests share one cluster and the two workers (module scope) and run in order: the second one
kills a worker.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from processes import children_of, is_running
from ray_cluster import RayCluster
from s3_server import S3Server
from worker_process import create_job, create_owner, job_status, running_worker, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from reliability_harness import HOUSEKEEPER_COMMAND, Worker, kill_all, worker_env
from reliability_jobs import epoch_event_counts, epochs_by_trial, status_history

from infra.db import crud

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

KEYS = ["synib|seed=0", "vanilla|seed=0"]
# Where a trial (re)started: the worker logs it at the trial's first report from a process.
PLACED = re.compile(r"trial (\S+) runs on node \S+, process (\d+), from epoch (\d+)")
# Each worker renews its jobs' leases every second, and Tune snapshots a job's experiment state
# (which names each trial's latest checkpoint) every second instead of every 10 s or more
# (``TUNE_GLOBAL_CHECKPOINT_S``, Tune's own setting): a killed worker's trials have one soon.
WORKER_ENV = {"SYNIB_HEARTBEAT_INTERVAL_S": "1", "TUNE_GLOBAL_CHECKPOINT_S": "1"}


def spec(epochs: int) -> dict[str, Any]:
    """2 one-CPU trials (vanilla, synib) of a tiny model."""
    return {
        "methods": ["vanilla", "synib"],
        "config": tiny_config(),
        "epochs": epochs,
        "sweep": {},
        "seeds": [0],
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "baseline": "vanilla",
    }


@pytest.fixture(scope="module")
def workers(
    cluster: RayCluster,
    pg_database_url: str,
    broker_url: str,
    storage_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[WorkerHarness]]:
    """Two Celery worker processes (concurrency 1 each) joined to the cluster as drivers, on
    the same broker, database and storage."""
    env = {**cluster.driver_env(), **storage_env, **WORKER_ENV}
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                running_worker(pg_database_url, tmp_path_factory.mktemp(name), env, broker_url)
            )
            for name in ("worker_a", "worker_b")
        ]


@pytest.fixture(scope="module")
def owner_id(workers: list[WorkerHarness]) -> str:
    return create_owner(workers[0])


def holder(workers: list[WorkerHarness], job_id: str) -> WorkerHarness:
    """The worker whose pool child holds the job (its lease: ``<node name>/<pid>``)."""
    with workers[0].sessions() as session:
        job = crud.get_job(session, job_id=job_id)
    assert job is not None and job.worker, f"job {job_id} is not held"
    pid = int(job.worker.rsplit("/", 1)[1])
    found = next((w for w in workers if pid in children_of(w.process.pid)), None)
    assert found is not None, f"job {job_id}: no live worker has pool child {pid}"
    return found


def placed(harness: WorkerHarness, after: str) -> list[tuple[str, int, int]]:
    """(trial key, process, first epoch there) of each placement the worker logged after the
    first line that holds ``after``."""
    log = harness.log()
    start = log.find(after)
    assert start >= 0, f"{after!r} not in the worker's log:\n{log[-3000:]}"
    return [(key, int(pid), int(epoch)) for key, pid, epoch in PLACED.findall(log[start:])]


def experiment_trials(
    s3: S3Server, tune_root: str, known: dict[str, tuple[str, str]]
) -> dict[str, set[tuple[str, str]]]:
    """experiment (``job-<id>``) -> {(job id, trial id)} of the trials in it (each trial's
    ``params.json``, which Tune uploads with the experiment's state) under ``tune_root``
    (``<prefix>/tune`` in the bucket). ``known``: params.json key -> its trial, read once."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for key in s3.keys(tune_root):
        experiment, *rest = key.removeprefix(f"{tune_root}/").split("/")
        trials = seen.setdefault(experiment, set())
        if len(rest) != 2 or not rest[0].startswith("trial_") or rest[1] != "params.json":
            continue
        if key not in known:
            try:
                with s3.filesystem().open_input_stream(f"{s3.bucket}/{key}") as fh:
                    trial = json.loads(fh.read())["trial"]
            except (OSError, ValueError):  # gone with its job
                continue
            known[key] = (trial["job_id"], trial["trial_id"])
        trials.add(known[key])
    return seen


def watch_until_final(
    harness: WorkerHarness, job_ids: list[str], s3: S3Server, tune_root: str
) -> dict[str, set[tuple[str, str]]]:
    """Wait for the jobs' final statuses; meanwhile every experiment under ``tune_root`` of
    the bucket and the trials in it, as seen at some point (an experiment is deleted once its
    job ended)."""
    seen: dict[str, set[tuple[str, str]]] = {}
    known: dict[str, tuple[str, str]] = {}

    def final() -> bool:
        for name, trials in experiment_trials(s3, tune_root, known).items():
            seen.setdefault(name, set()).update(trials)
        with harness.sessions() as session:
            jobs = [crud.get_job(session, job_id=j) for j in job_ids]
        return all(j is not None and j.status in ("succeeded", "failed") for j in jobs)

    wait_for(final, 240, f"jobs {job_ids} to finish", 0.2)
    return seen


def assert_nothing_stored_locally(states: list[Path]) -> None:
    """No artifact folder (nor Tune experiment) in these state folders: everything is in the
    bucket; only temporary files and cached downloads are local."""
    for state in states:
        assert not (state / "artifacts").exists(), list((state / "artifacts").rglob("*"))
        assert not list(state.rglob("job-*")), list(state.rglob("job-*"))


def trial_rows(harness: WorkerHarness, job_id: str) -> dict[str, Any]:
    """trial key -> the job's trial row."""
    with harness.sessions() as session:
        return {t.trial_key: t for t in crud.list_trials(session, job_id=job_id)}


def assert_epochs_once(harness: WorkerHarness, job_id: str, epochs: int) -> None:
    """Every trial succeeded with epochs 1..``epochs`` recorded once (rows and events)."""
    rows = trial_rows(harness, job_id)
    assert sorted(rows) == KEYS
    assert {t.status for t in rows.values()} == {"succeeded"}, [
        (t.trial_key, t.status, t.failure_reason) for t in rows.values()
    ]
    assert epochs_by_trial(harness.sessions, job_id) == {
        k: list(range(1, epochs + 1)) for k in KEYS
    }
    events = epoch_event_counts(harness.sessions, job_id)
    assert events == {(k, e): 1 for k in KEYS for e in range(1, epochs + 1)}


def test_two_workers_run_two_jobs_at_once_each_with_its_own_trials_and_files(
    workers: list[WorkerHarness], owner_id: str, s3: S3Server, storage_prefix: str, tmp_path: Path
) -> None:
    from synib_core import load

    epochs = 3
    jobs = [
        create_job(workers[0], owner_id, spec(epochs), {**tiny_pid_params(), "seed": seed})
        for seed in (0, 1)
    ]
    for harness, job_id in zip(workers, jobs, strict=True):
        harness.send("synib.run_job", job_id)
    seen = watch_until_final(workers[0], jobs, s3, f"{storage_prefix}/tune")

    # Both succeeded, one per worker, and they ran at the same time.
    with workers[0].sessions() as session:
        rows = [crud.get_job(session, job_id=j) for j in jobs]
    assert [r.status for r in rows if r is not None] == ["succeeded", "succeeded"]
    assert {id(holder(workers, j)) for j in jobs} == {id(w) for w in workers}
    starts = [r.started_at for r in rows if r is not None and r.started_at]
    ends = [r.finished_at for r in rows if r is not None and r.finished_at]
    assert len(starts) == len(ends) == 2 and max(starts) < min(ends), (starts, ends)

    # Each job's trials and epochs are its own; no trial failed or restarted (one placement
    # per trial, from epoch 1), and neither worker ran or logged the other's job.
    trials = {j: {t.id for t in trial_rows(workers[0], j).values()} for j in jobs}
    assert not trials[jobs[0]] & trials[jobs[1]]
    for job_id, other in (jobs, jobs[::-1]):
        assert_epochs_once(workers[0], job_id, epochs)
        runner = holder(workers, job_id)
        placements = placed(runner, f"job {job_id}")
        assert sorted((key, epoch) for key, _, epoch in placements) == [(k, 1) for k in KEYS]
        assert len(PLACED.findall(runner.log())) == 2  # its job's trials, nothing else
        assert f"job {other}: dataset loaded" not in runner.log()

    # Each experiment (job-<id>) held only its job's trials; nothing else was there, and it
    # left the bucket with its job.
    assert set(seen) == {f"job-{j}" for j in jobs}, seen
    for job_id in jobs:
        assert seen[f"job-{job_id}"] == {(job_id, t) for t in trials[job_id]}, seen
    assert not s3.keys(f"{storage_prefix}/tune")

    # Each job's prefix holds its own trials' outputs, models made by its own trials.
    filesystem = s3.filesystem()
    for job_id in jobs:
        folder = f"{storage_prefix}/jobs/{job_id}"
        keys = [k.removeprefix(f"{folder}/") for k in s3.keys(folder)]
        assert {k.split("/")[0] for k in keys if "/" in k} == trials[job_id], keys
        for trial_id in trials[job_id]:
            model = tmp_path / f"{trial_id}.zip"
            with filesystem.open_input_stream(f"{s3.bucket}/{folder}/{trial_id}/model.zip") as fh:
                model.write_bytes(fh.read())
            assert load(model).extra["job_id"] == job_id
    assert_nothing_stored_locally([w.settings.state_dir for w in workers])


def checkpointed(experiment: str, filesystem: Any) -> dict[str, str]:
    """trial key -> its latest checkpoint that the experiment's saved state in the bucket
    names (what a resume starts from; Tune's public ``ExperimentAnalysis`` on the bucket's
    pyarrow filesystem); empty while there is no state or it is being written."""
    from ray.tune import ExperimentAnalysis

    # It logs an error for each trial without a checkpoint yet: expected here.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.CRITICAL)
    try:
        analysis = ExperimentAnalysis(experiment, storage_filesystem=filesystem)
        last = {t.config["trial"]["key"]: analysis.get_last_checkpoint(t) for t in analysis.trials}
    except Exception:  # no state yet, or a half-written one
        return {}
    return {key: checkpoint.path for key, checkpoint in last.items() if checkpoint is not None}


def test_a_killed_worker_s_job_resumes_on_the_other_worker_from_its_checkpoints(
    cluster: RayCluster,
    workers: list[WorkerHarness],
    owner_id: str,
    storage_env: dict[str, str],
    s3: S3Server,
    storage_prefix: str,
    tmp_path: Path,
) -> None:
    epochs = 40
    data = {**tiny_pid_params(), "n_train": 3000, "seed": 2}  # epochs of a few tenths of a second
    job_id = create_job(workers[0], owner_id, spec(epochs), data)
    workers[0].send("synib.run_job", job_id)
    settings = workers[0].settings
    experiment = f"{s3.bucket}/{storage_prefix}/tune/job-{job_id}"  # in the bucket
    filesystem = s3.filesystem()

    def checkpointed_and_training() -> set[str]:
        """The trials that train (an epoch recorded, not finished) and have a checkpoint that
        the experiment's saved state names: what a resume goes on from."""
        rows = trial_rows(workers[0], job_id).values()
        assert job_status(workers[0], job_id) == "running" or not rows, "the job ended first"
        training = {t.trial_key for t in rows if t.status == "running" and t.epochs_done}
        saved = checkpointed(experiment, filesystem) if training else {}
        assert all(path.startswith(f"{experiment}/") for path in saved.values()), saved
        return training & set(saved)

    resumable = wait_for(checkpointed_and_training, 180, "a checkpoint in the saved state", 0.2)
    first = holder(workers, job_id)
    (survivor,) = [w for w in workers if w is not first]
    ghosts = {pid for _, pid, _ in placed(first, f"job {job_id}")}
    killed_at = time.monotonic()
    kill_all([first.process.pid, *children_of(first.process.pid)])  # the fault
    first.process.wait(timeout=10)
    rows = trial_rows(workers[0], job_id)
    at_kill = {key: row.epochs_done for key, row in rows.items()}
    unfinished = {key for key, row in rows.items() if row.status != "succeeded"}
    assert resumable <= unfinished and all(at_kill[k] < epochs for k in unfinished), at_kill

    # Ray ends the dead driver's trials (actors) and reference tasks: the cluster runs no task
    # or actor once they are gone (the other worker is idle). Only then may the job be handed
    # on, so the resumed run never races them (the lease goes stale after 6 s here, 120 s by
    # default; their end took about a second, benchmarks/README.md section 11).
    wait_for(lambda: not cluster.busy_pids(), 60, "the dead driver's trials to end", 0.1)
    ghosts_gone_s = time.monotonic() - killed_at
    assert ghosts and not any(is_running(pid) for pid in ghosts), ghosts
    # The housekeeper (database only) sees the dead worker's stale lease and requeues the job.
    state = tmp_path / "housekeeper"
    state.mkdir()
    env = worker_env(
        state_dir=state,
        database_url=settings.database_url,
        broker_url=settings.broker_url,
        ray_tmp=tmp_path,
        **storage_env,
    )
    housekeeper = Worker(env, tmp_path / "housekeeper.log", HOUSEKEEPER_COMMAND).start()
    try:
        assert wait_final(survivor, job_id) == "succeeded"
    finally:
        housekeeper.stop()
    resumed_s = time.monotonic() - killed_at

    # Handed on once, to the survivor, which restored the experiment on the cluster.
    assert status_history(workers[0].sessions, job_id) == [
        "queued",
        "running",
        "queued",
        "running",
        "succeeded",
    ]
    assert holder(workers, job_id) is survivor
    assert "lost its worker; resuming it" in housekeeper.log()
    # Restored from the experiment in the bucket (the dead worker's own disk is never read).
    resumed = f"job {job_id}: resuming its Tune experiment {experiment}"
    assert resumed in survivor.log(), survivor.log()[-3000:]
    # The unfinished trials went on in new processes: those with a checkpoint in the saved
    # state after it (not from epoch 1), none past the epochs the dead worker recorded (on a
    # busy machine one trial may have finished, or not reached a checkpoint, at the kill).
    restarts = placed(survivor, resumed)
    assert unfinished <= {key for key, _, _ in restarts}, restarts
    for key, pid, epoch in restarts:
        assert (2 if key in resumable else 1) <= epoch <= at_kill[key] + 1, (key, epoch, at_kill)
        assert pid not in ghosts
    assert_epochs_once(workers[0], job_id, epochs)
    assert not s3.keys(f"{storage_prefix}/tune/job-{job_id}")  # deleted once the job ended
    assert_nothing_stored_locally([w.settings.state_dir for w in workers] + [state])
    print(
        f"\nresumable at the kill {sorted(resumable)}; the dead driver's trials gone {ghosts_gone_s:.1f} s after the kill; job done "
        f"{resumed_s:.1f} s after it; epochs at the kill {at_kill}; resumed {restarts}"
    )

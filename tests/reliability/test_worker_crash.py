"""Fault: the Celery worker (main process and its pool child) is SIGKILLed while trials train.

The dead worker's local Ray ends with it. A second worker comes up; its reconciler finds the job
``running`` with a stale heartbeat and puts it back in the queue, and the job resumes: Tune
restores the job's experiment (``Tuner.restore``) and every trial continues from its last
checkpoint; no epoch is recorded twice, the resumed training gives exactly the numbers an
uninterrupted run gives, and the job ends ``succeeded`` with every trial exactly once.
"""

from __future__ import annotations

import pytest
from reliability_harness import (
    RedisServer,
    Sandbox,
    describe,
    live_processes_with,
    wait_for,
    worker_env,
)
from reliability_jobs import (
    create_job,
    epoch_event_counts,
    epochs_by_trial,
    job_of,
    send,
    status_history,
    tiny_spec,
    wait_final,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Both trials must be mid-training at the kill. Their processes start seconds apart (the
# references train beside them), so the first may be 15 to 25 epochs in (of about 0.1 s each)
# when the second has its 3rd: 100 epochs keep it from finishing first on a loaded machine.
EPOCHS = 100
KILL_AFTER_EPOCHS = 3
MARKER = ("SYNIB_TEST_WORKER", "worker-1")  # in the first worker's (and its Ray's) environment
FIRST_WORKER = "=".join(MARKER)


def uninterrupted_epochs(sandbox: Sandbox, job_id: str, key: str) -> list[dict[str, float]]:
    """The per-epoch metrics of the job's trial ``key`` trained here in one go (same config,
    seed, data and one thread, as in the worker)."""
    import torch

    from infra.db import crud
    from infra.storage import ArtifactStore
    from synib_core.config import config_from_knobs
    from synib_core.data import load_npz
    from synib_core.training import fit

    with sandbox.sessions() as session:
        job = crud.get_job(session, job_id=job_id)
        dataset = crud.get_dataset(session, dataset_id=job.dataset_id)  # type: ignore[union-attr]
        trial = next(t for t in crud.list_trials(session, job_id=job_id) if t.trial_key == key)
    data = load_npz(ArtifactStore(sandbox.state_dir / "artifacts").resolve(dataset.path))  # type: ignore[union-attr, arg-type]
    torch.set_num_threads(1)
    result = fit(config_from_knobs(trial.config), data, method=trial.method, seed=trial.seed)
    return result.history


def test_killed_worker_job_resumes_from_checkpoints(
    sandbox: Sandbox, private_redis: RedisServer
) -> None:
    from infra.settings import Settings

    env = worker_env(
        state_dir=sandbox.state_dir,
        database_url=sandbox.database_url,
        broker_url=private_redis.url,
        ray_tmp=sandbox.ray_tmp,
    )
    first_env = {**env, MARKER[0]: MARKER[1]}
    settings = Settings(
        state_dir=sandbox.state_dir, database_url=sandbox.database_url, broker_url=private_redis.url
    )
    first = sandbox.worker(first_env, "worker-1")
    spec = tiny_spec(["vanilla", "synib"], epochs=EPOCHS)
    job_id = create_job(sandbox.sessions, sandbox.owner_id, spec)
    assert send(settings, "synib.run_job", job_id) is not None

    def mid_training() -> bool:
        epochs = epochs_by_trial(sandbox.sessions, job_id)
        return len(epochs) == 2 and all(len(e) >= KILL_AFTER_EPOCHS for e in epochs.values())

    wait_for(mid_training, 180, lambda: f"epochs to arrive; log:\n{first.log()[-3000:]}")
    assert len(live_processes_with(FIRST_WORKER)) > 2, "the worker's Ray is not running"

    killed = first.kill_hard()  # the fault: SIGKILL of the main process and its pool child
    assert len(killed) >= 2, "expected the worker's main process and its pool child"
    at_kill = epochs_by_trial(sandbox.sessions, job_id)
    assert job_of(sandbox.sessions, job_id).status == "running"
    done_at_kill = {key: len(e) for key, e in at_kill.items()}
    assert all(KILL_AFTER_EPOCHS <= n < EPOCHS for n in done_at_kill.values()), done_at_kill

    # The dead worker's Ray ends with it: nothing of it keeps running (or holds CPUs). Ray's
    # agents notice that their raylet is gone on their own schedule, slower on a loaded machine.
    wait_for(
        lambda: not live_processes_with(FIRST_WORKER),
        180,
        lambda: f"the dead worker's Ray to end: {describe(live_processes_with(FIRST_WORKER))}",
    )
    # The housekeeper (database only) sees the dead worker's stale lease and requeues the job;
    # a new worker resumes it.
    housekeeper = sandbox.housekeeper(env)
    second = sandbox.worker(env, "worker-2")
    logs = lambda: second.log() + housekeeper.log()  # noqa: E731
    assert wait_final(sandbox.sessions, job_id, 240, logs) == "succeeded"

    # Every trial exactly once, succeeded; every epoch exactly once (rows and events).
    from infra.db import crud

    with sandbox.sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
    assert sorted(t.trial_key for t in trials) == ["synib|seed=0", "vanilla|seed=0"]
    assert {t.status for t in trials} == {"succeeded"}, [
        (t.trial_key, t.status, t.failure_reason) for t in trials
    ]
    assert epochs_by_trial(sandbox.sessions, job_id) == {
        t.trial_key: list(range(1, EPOCHS + 1)) for t in trials
    }
    events = epoch_event_counts(sandbox.sessions, job_id)
    replayed = {k: n for k, n in events.items() if n != 1}
    assert not replayed, f"epochs reported more than once (restarted, not resumed): {replayed}"
    assert len(events) == 2 * EPOCHS
    # The job went back to the queue once and was claimed again; the resumed run trained
    # only the epochs after the checkpoints (epoch 1 was never reported again).
    assert status_history(sandbox.sessions, job_id) == [
        "queued",
        "running",
        "queued",
        "running",
        "succeeded",
    ]
    assert "lost its worker; resuming it" in housekeeper.log()
    assert f"job {job_id}: resuming its Tune experiment" in second.log()
    # Resumed, not restarted, and exactly: the numbers of an uninterrupted run, epoch by epoch.
    with sandbox.sessions() as session:
        rows = {t.trial_key: t for t in crud.list_trials(session, job_id=job_id)}
        recorded = [
            m.metrics for m in crud.list_epoch_metrics(session, trial_id=rows["synib|seed=0"].id)
        ]
    expected = uninterrupted_epochs(sandbox, job_id, "synib|seed=0")
    for name in ("train_loss", "val_acc", "test_acc"):
        assert [m[name] for m in recorded] == pytest.approx([h[name] for h in expected], rel=1e-6)
    # The job's Tune experiment (its checkpoints) is deleted once the job is finished.
    assert not (sandbox.state_dir / "artifacts" / "tune" / f"job-{job_id}").exists()

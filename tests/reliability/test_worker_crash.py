"""Fault: the Celery worker (main process and its pool child) is SIGKILLed while trials train.

A second worker comes up; its reconciler reaps the dead worker's Ray processes, finds the job
``running`` with a stale heartbeat, puts it back in the queue, and the job resumes: every trial
continues from its last checkpoint (no epoch is trained or reported twice) and the job ends
``succeeded`` with every trial exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_harness import (
    RedisServer,
    Sandbox,
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


def ray_owner_tokens(state_dir: Path) -> set[str]:
    """Tokens of the registered Ray owners (worker processes that run a local Ray)."""
    from worker.ray_owners import read_owners

    return {o.token for o in read_owners(state_dir)}


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
    settings = Settings(
        state_dir=sandbox.state_dir, database_url=sandbox.database_url, broker_url=private_redis.url
    )
    first = sandbox.worker(env, "worker-1")
    spec = tiny_spec(["vanilla", "synib"], epochs=EPOCHS)
    job_id = create_job(sandbox.sessions, sandbox.owner_id, spec)
    assert send(settings, "synib.run_job", job_id) is not None

    def mid_training() -> bool:
        epochs = epochs_by_trial(sandbox.sessions, job_id)
        return len(epochs) == 2 and all(len(e) >= KILL_AFTER_EPOCHS for e in epochs.values())

    wait_for(mid_training, 180, lambda: f"epochs to arrive; log:\n{first.log()[-3000:]}")
    tokens = ray_owner_tokens(sandbox.state_dir)
    assert len(tokens) == 1, tokens
    (token,) = tokens
    assert live_processes_with(f"SYNIB_RAY_OWNER={token}"), "the job's Ray is not running"

    killed = first.kill_hard()  # the fault: SIGKILL of the main process and its pool child
    assert len(killed) >= 2, "expected the worker's main process and its pool child"
    at_kill = epochs_by_trial(sandbox.sessions, job_id)
    assert job_of(sandbox.sessions, job_id).status == "running"
    done_at_kill = {key: len(e) for key, e in at_kill.items()}
    assert all(KILL_AFTER_EPOCHS <= n < EPOCHS for n in done_at_kill.values()), done_at_kill

    second = sandbox.worker(env, "worker-2")
    # The new worker's reconciler reaps the dead worker's leftover Ray processes.
    wait_for(
        lambda: not live_processes_with(f"SYNIB_RAY_OWNER={token}"),
        60,
        lambda: f"the dead worker's Ray processes to be reaped; log:\n{second.log()[-3000:]}",
    )
    assert token not in ray_owner_tokens(sandbox.state_dir)
    assert wait_final(sandbox.sessions, job_id, 240, second.log) == "succeeded"

    # Every trial exactly once, succeeded; every epoch exactly once (rows and events).
    from infra.db import crud

    with sandbox.sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
    assert sorted(t.trial_key for t in trials) == ["synib|seed=0", "vanilla|seed=0"]
    assert {t.status for t in trials} == {"succeeded"}
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
    assert "lost its worker; resuming it" in second.log()
    # The succeeded trials' checkpoints are dropped once the job is finished.
    assert not list((sandbox.state_dir / "artifacts" / "jobs" / job_id).glob("*/ckpt"))


def test_reaper_kills_only_the_processes_of_dead_owners(tmp_path: Path) -> None:
    """Registry files of a dead and a live owner; only the dead one's processes are killed."""
    import json
    import os
    import socket
    import subprocess

    from worker import ray_owners

    gone = subprocess.Popen(["true"])
    gone.wait()
    folder = ray_owners.owners_dir(tmp_path)
    folder.mkdir()
    me = os.getpid()
    for token, pid, start in (
        ("deadbeef", gone.pid, 1),
        ("alive", me, ray_owners.process_start(me)),
    ):
        record = {"token": token, "host": socket.gethostname(), "pid": pid, "start": start}
        (folder / f"{token}.json").write_text(json.dumps(record))
    sleepers = {
        token: subprocess.Popen(["sleep", "60"], env={**os.environ, ray_owners.OWNER_ENV: token})
        for token in ("deadbeef", "alive")
    }
    try:
        assert ray_owners.reap_dead_owners(tmp_path) == 1
        assert sleepers["deadbeef"].wait(timeout=10) == -9
        assert sleepers["alive"].poll() is None
        assert [o.token for o in ray_owners.read_owners(tmp_path)] == ["alive"]
        assert ray_owners.reap_dead_owners(tmp_path) == 0
    finally:
        for proc in sleepers.values():
            proc.kill()
            proc.wait()


def test_resume_adopts_finished_trials_and_backfills_missing_epochs(
    db_session: Any, api_settings: Any
) -> None:
    """What a resumed run recovers from disk: finished outputs and checkpointed epochs."""
    import json

    import torch

    from infra.db import crud
    from infra.storage import ArtifactStore
    from worker.db_ops import session_factory
    from worker.job_resume import adopt_finished_trials, backfill_epochs, trial_dir

    owner = crud.create_user(db_session, name="resume")
    dataset = crud.create_dataset(
        db_session, owner_id=owner.id, name="d", source="upload", params={}, status="ready"
    )
    job = crud.create_job(
        db_session, owner_id=owner.id, dataset_id=dataset.id, name="j", spec={}, trials_total=2
    )
    rows = {
        key: crud.upsert_trial(
            db_session, job_id=job.id, trial_key=key, method="vanilla", seed=0, config={}
        )
        for key in ("a|seed=0", "b|seed=0")
    }
    store = ArtifactStore(api_settings.artifact_root)
    sessions = session_factory(api_settings.database_url)
    # a: killed at epoch 3, the database has only epoch 1.
    crud.upsert_epoch_metrics(db_session, trial_id=rows["a|seed=0"].id, epoch=1, metrics={"x": 1})
    ckpt = trial_dir(store, job.id, rows["a|seed=0"].id) / "ckpt"
    ckpt.mkdir(parents=True)
    history = [{"val_acc": 0.5 + e / 10, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    torch.save({"progress": {"history": history}}, ckpt / "train_state.pt")
    # b: finished (outputs written) but its final status never reached the database.
    out = trial_dir(store, job.id, rows["b|seed=0"].id)
    out.mkdir(parents=True)
    (out / "result.json").write_text(json.dumps({"best_epoch": 2, "metrics": {"val_acc": 0.75}}))
    (out / "model.zip").write_bytes(b"zip")
    (out / "test_pred.npy").write_bytes(b"npy")

    assert adopt_finished_trials(sessions, store, job.id, dict(rows)) == ["b|seed=0"]
    assert backfill_epochs(sessions, store, job.id, retry_s=0) == 2
    db_session.expire_all()
    b = crud.get_trial(db_session, trial_id=rows["b|seed=0"].id)
    assert b is not None and (b.status, b.best_epoch, b.metrics) == (
        "succeeded",
        2,
        {"val_acc": 0.75},
    )
    a_rows = crud.list_epoch_metrics(db_session, trial_id=rows["a|seed=0"].id)
    assert [(r.epoch, r.metrics) for r in a_rows] == [
        (1, {"x": 1}),  # kept, not overwritten
        (2, {"val_acc": pytest.approx(0.7), "train_loss": 0.5}),
        (3, {"val_acc": pytest.approx(0.8), "train_loss": pytest.approx(1 / 3)}),
    ]
    assert crud.get_trial(db_session, trial_id=rows["a|seed=0"].id).status == "pending"  # type: ignore[union-attr]
    # A second pass finds nothing left to do.
    assert adopt_finished_trials(sessions, store, job.id, dict(rows)) == []
    assert backfill_epochs(sessions, store, job.id, retry_s=0) == 0

"""What a ``synib.run_job`` delivery claims (``worker.job_runner.claim_fair_job``) and whether
its message must come back: only while its own job is queued and the message is that job's
current one (the id its row holds), so a waiting job keeps one message, not one per resend."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Job
from infra.db.session import session_factory
from infra.settings import Settings
from worker.job_runner import claim_fair_job


def queued_job(session: Session, owner: str, dataset: str, task_id: str | None) -> str:
    job = crud.create_job(
        session,
        owner_id=owner,
        dataset_id=dataset,
        name="j",
        spec={},
        trials_total=1,
        task_id=task_id,
    )
    return job.id


def test_only_the_current_message_of_a_waiting_job_comes_back(
    db_session: Session, db_url: str, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"max_running_jobs_per_user": 1})
    sessions = session_factory(db_url)
    owner = crud.create_user(db_session, name="a").id
    dataset = crud.create_dataset(
        db_session, owner_id=owner, name="d", source="upload", params={}, status="ready"
    ).id
    running = queued_job(db_session, owner, dataset, "m0")
    assert crud.claim_job(db_session, job_id=running, worker="elsewhere") is not None
    waiting = queued_job(db_session, owner, dataset, "m1")

    def claim(task_id: str | None) -> tuple[str | None, bool]:
        got = claim_fair_job(
            waiting, settings=settings, sessions=sessions, worker="w", task_id=task_id
        )
        return (got.job.id if got.job else None), got.message_job_waits

    assert claim("m1") == (None, True)  # its current message: back later
    assert claim("resent-before") == (None, False)  # a duplicate: ends
    # Another user's job goes first; the waiting job's current message comes back at once.
    other = crud.create_user(db_session, name="b").id
    theirs = queued_job(db_session, other, dataset, "m2")
    assert claim("m1") == (theirs, True)
    # A job sent without an id (an old row) counts every message as current.
    db_session.execute(update(Job).where(Job.id == waiting).values(task_id=None))
    db_session.commit()
    assert claim("any") == (None, True)
    # Once its place frees, the message claims its own job and nothing comes back.
    crud.set_job_status(db_session, job_id=running, status="succeeded")
    assert claim("any") == (waiting, False)
    db_session.expire_all()
    assert crud.get_job(db_session, job_id=waiting).task_id == "any"  # type: ignore[union-attr]

"""The fair claim (infra/db/crud_queue.py): the owner with the fewest running jobs first, then
the owner served longest ago, then the oldest job; an owner at the running cap waits; two
workers claiming at once never exceed the cap."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from api_factories import add_job, add_ready_dataset
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.session import session_factory


def owner_and_dataset(session: Session, name: str) -> tuple[str, str]:
    owner = crud.create_user(session, name=name)
    return owner.id, add_ready_dataset(session, owner.id).id


def claim_and_finish(session: Session, max_running: int = 2) -> str | None:
    """Claim the next job and end it at once (the one-slot worker of the docs' example)."""
    job = crud.claim_next_job(session, worker="w", max_running=max_running)
    if job is None:
        return None
    crud.set_job_status(session, job_id=job.id, status="succeeded")
    return job.id


def test_a_user_who_submitted_later_goes_before_a_second_job_of_the_first(
    db_session: Session,
) -> None:
    a, a_data = owner_and_dataset(db_session, "a")
    b, b_data = owner_and_dataset(db_session, "b")
    a_jobs = [add_job(db_session, a, a_data).id for _ in range(3)]
    b_job = add_job(db_session, b, b_data).id
    order = [claim_and_finish(db_session) for _ in range(5)]
    assert order == [a_jobs[0], b_job, a_jobs[1], a_jobs[2], None]


def test_the_owner_with_fewer_running_jobs_goes_first(db_session: Session) -> None:
    a, a_data = owner_and_dataset(db_session, "a")
    b, b_data = owner_and_dataset(db_session, "b")
    add_job(db_session, b, b_data, status="succeeded")  # b was served (long) before a
    add_job(db_session, a, a_data, status="running")
    a_queued, b_queued = add_job(db_session, a, a_data).id, add_job(db_session, b, b_data).id
    assert crud.fair_queue(db_session, max_running=2) == [b_queued, a_queued]


def test_an_owner_at_the_running_cap_waits_while_others_run(db_session: Session) -> None:
    a, a_data = owner_and_dataset(db_session, "a")
    b, b_data = owner_and_dataset(db_session, "b")
    running = [add_job(db_session, a, a_data, status="running").id for _ in range(2)]
    a_waiting, b_job = add_job(db_session, a, a_data).id, add_job(db_session, b, b_data).id
    assert crud.fair_queue(db_session, max_running=2) == [b_job]
    claimed = crud.claim_next_job(db_session, worker="w", max_running=2)
    assert claimed is not None and claimed.id == b_job
    assert crud.claim_next_job(db_session, worker="w", max_running=2) is None
    # Lowering the cap under the running count changes nothing for what already runs.
    assert crud.claim_next_job(db_session, worker="w", max_running=1) is None
    crud.set_job_status(db_session, job_id=running[0], status="succeeded")
    claimed = crud.claim_next_job(db_session, worker="w2", max_running=2)
    assert claimed is not None and (claimed.id, claimed.status) == (a_waiting, "running")
    assert claimed.worker == "w2" and claimed.started_at is not None
    statuses = [e.data["status"] for e in crud.list_events(db_session, job_id=a_waiting)]
    assert statuses == ["queued", "running"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_workers_claiming_at_once_keep_the_cap(db_session: Session, db_url: str) -> None:
    a, a_data = owner_and_dataset(db_session, "a")
    jobs = [add_job(db_session, a, a_data).id for _ in range(4)]
    sessions = session_factory(db_url)
    barrier = threading.Barrier(4)
    claimed: list[Any] = []

    def claim(worker: str) -> None:
        with sessions() as session:
            barrier.wait()
            job = crud.claim_next_job(session, worker=worker, max_running=2)
            if job is not None:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(claimed) == 2 and len(set(claimed)) == 2 and set(claimed) <= set(jobs)
    db_session.expire_all()
    assert crud.count_active_jobs(db_session, owner_id=a) == 4
    assert sum(crud.get_job(db_session, job_id=j).status == "running" for j in jobs) == 2  # type: ignore[union-attr]

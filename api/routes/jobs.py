"""Jobs: create (validated spec, enqueued after commit), list, read, cancel, rerun, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import crud, hot
from api.db.models import JOB_ACTIVE, JOB_TERMINAL, Job
from api.deps import (
    CurrentUser,
    PathId,
    ProducerDep,
    SessionDep,
    StoreDep,
    read_connection,
    write_connection,
)
from api.errors import (
    AUTH_ERRORS,
    NOT_FOUND,
    NOT_FOUND_OR_CONFLICT,
    conflict,
    error_responses,
    not_found,
    unprocessable,
)
from api.queue import RUN_JOB, TaskProducer
from api.schemas.common import MAX_SQL_INT
from api.schemas.jobs import JobCreate, JobPublic, JobsPublic, build_job_public
from api.ttl_cache import TTLCache

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=AUTH_ERRORS)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelling", "cancelled"]


def owned_job(session: Session, job_id: str, owner_id: str) -> Job:
    """The user's job or 404 (another user's job is reported as missing)."""
    job = crud.get_job(session, job_id=job_id, owner_id=owner_id)
    if job is None:
        raise not_found("job")
    return job


def job_public(session: Session, job: Job) -> JobPublic:
    return build_job_public(job, crud.list_trials(session, job_id=job.id, status="succeeded"))


def json_response(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """``model`` as JSON, serialised by pydantic in one step. The hot routes return this instead
    of the model itself, which FastAPI would validate again against ``response_model`` first
    (the declared ``response_model`` still documents the answer in OpenAPI)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


def _enqueue(session: Session, producer: TaskProducer, job_id: str) -> None:
    """Send run_job; on failure the job stays queued for the reconciler to resend."""
    task_id = producer.send(RUN_JOB, job_id)
    if task_id is not None:
        crud.set_job_task_id(session, job_id=job_id, task_id=task_id)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=error_responses(400),
)
async def create_job(body: JobCreate, user: CurrentUser, request: Request) -> Response:
    """Validate the spec, store the job (queued), then enqueue ``synib.run_job``."""
    problem = body.knob_problem()
    if problem is not None:
        raise unprocessable(*problem)
    # A ready dataset never changes (only its deletion, refused while a job uses it): this
    # process keeps it for a while, and the job's insert is then the request's one statement
    # (each job's spec is still checked against it). If it was deleted since, the insert
    # breaks its foreign key: the same 422 as a lookup would give.
    ready: TTLCache[hot.AnyRow] = request.app.state.ready_datasets
    key = f"{user.id}/{body.dataset_id}"
    async with write_connection(request) as conn:
        found = ready.get(key)
        if found is None:
            found = await hot.owned_dataset(conn, dataset_id=body.dataset_id, owner_id=user.id)
        dataset = _check_dataset(found, body)
        if dataset.status == "ready":
            ready.put(key, dataset)
        # The task id is stored with the job (one commit, not two).
        job = crud.new_job(
            owner_id=user.id,
            dataset_id=dataset.id,
            name=body.name or f"{'+'.join(body.method_names())} on {dataset.name}",
            spec=body.spec_json(),
            trials_total=body.trials_total(),
            task_id=str(uuid.uuid4()),
        )
        try:
            await hot.insert_job(conn, job)
            await conn.commit()
        except IntegrityError as exc:
            if not hot.is_missing_reference(exc):
                raise
            ready.drop(key)
            raise unprocessable("dataset_id", f"no dataset {body.dataset_id!r}") from exc
    # Committed. The message goes out from the producer's sender thread: the answer waits
    # neither on the broker nor on a thread hop. If the send fails, the job stays queued and
    # the reconciler resends it under a new id.
    producer: TaskProducer = request.app.state.producer
    producer.submit(RUN_JOB, job.id, job.task_id)
    return json_response(build_job_public(job, []), status.HTTP_202_ACCEPTED)


def _check_dataset(dataset: hot.AnyRow | None, body: JobCreate) -> hot.AnyRow:
    """422 naming why the job cannot run on ``dataset`` (the user's, or None)."""
    if dataset is None:
        raise unprocessable("dataset_id", f"no dataset {body.dataset_id!r}")
    if dataset.status == "failed":
        raise unprocessable("dataset_id", f"dataset failed: {dataset.error or 'unknown error'}")
    problem = body.dataset_problem(dataset.summary)
    if problem is not None:
        raise unprocessable(*problem)
    return dataset


@router.get("", response_model=JobsPublic)
def list_jobs(
    user: CurrentUser,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> JobsPublic:
    jobs, count = crud.list_jobs(
        session, owner_id=user.id, status=status_filter, limit=limit, offset=offset
    )
    by_job: dict[str, list[Any]] = {j.id: [] for j in jobs}
    for trial in crud.list_trials_of_jobs(session, job_ids=list(by_job), status="succeeded"):
        by_job[trial.job_id].append(trial)
    data = [build_job_public(j, by_job[j.id]) for j in jobs]
    return JobsPublic(data=data, count=count)


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
async def read_job(job_id: PathId, user: CurrentUser, request: Request) -> Response:
    async with read_connection(request) as conn:
        found = await hot.owned_job(conn, job_id=job_id, owner_id=user.id)
    if found is None:
        raise not_found("job")
    return json_response(build_job_public(*found))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=NOT_FOUND_OR_CONFLICT,
)
def cancel_job(job_id: PathId, user: CurrentUser, session: SessionDep) -> JobPublic:
    """queued -> cancelled at once; running -> cancelling (the worker stops it)."""
    job = owned_job(session, job_id, user.id)
    if job.status in JOB_TERMINAL:
        raise conflict(f"job is already {job.status}")
    job = crud.request_cancel(session, job_id=job_id) or job
    return job_public(session, job)


@router.post(
    "/{job_id}/rerun-failed",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=NOT_FOUND_OR_CONFLICT,
)
def rerun_failed(
    job_id: PathId, user: CurrentUser, session: SessionDep, producer: ProducerDep
) -> JobPublic:
    """Failed trials -> pending, job -> queued, enqueued again (409 unless finished with
    failures)."""
    owned_job(session, job_id, user.id)
    if crud.requeue_failed(session, job_id=job_id) is None:
        raise conflict("only a finished job with failed trials (or a failed job) can be rerun")
    _enqueue(session, producer, job_id)
    return job_public(session, owned_job(session, job_id, user.id))


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND_OR_CONFLICT)
def delete_job(job_id: PathId, user: CurrentUser, session: SessionDep, store: StoreDep) -> Response:
    """Delete the job, its rows and its files (409 while queued/running/cancelling)."""
    job = owned_job(session, job_id, user.id)
    if job.status in JOB_ACTIVE:
        raise conflict(f"job is {job.status}; cancel it first")
    for path in crud.delete_job(session, job_id=job_id):
        store.delete(path)
    store.delete(f"jobs/{job_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

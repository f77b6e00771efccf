"""Jobs: create (validated spec, quotas, enqueued after commit), list, read, cancel, rerun,
delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from api.deps import CurrentUser, PathId, ProducerDep, SessionDep, SettingsDep, StoreDep
from api.errors import (
    AUTH_ERRORS,
    NOT_FOUND,
    NOT_FOUND_OR_CONFLICT,
    conflict,
    error_responses,
    not_found,
    spec_unprocessable,
    unprocessable,
)
from api.json_route import OffLoopJsonRoute
from api.quotas import check_job_quotas
from api.schemas.common import MAX_SQL_INT, Message
from api.schemas.jobs import (
    JobCreate,
    JobCreated,
    JobPublic,
    JobsPublic,
    build_job_public,
    dataset_problem,
)
from api.worker_models import model_infos, offered_models
from infra.broker import RUN_JOB
from infra.db import crud
from infra.db.models import JOB_ACTIVE, JOB_TERMINAL, DatasetStatus, Job, JobStatus, TrialStatus
from synib_spec import SpecError
from synib_spec.backbones import check_dataset_backbones, summary_kinds
from synib_spec.jobs import count_trials, spec_warnings

router = APIRouter(
    prefix="/jobs", tags=["jobs"], responses=AUTH_ERRORS, route_class=OffLoopJsonRoute
)


def owned_job(session: Session, job_id: str, owner_id: str) -> Job:
    """The user's job or 404 (another user's job is reported as missing)."""
    job = crud.get_job(session, job_id=job_id, owner_id=owner_id)
    if job is None:
        raise not_found("job")
    return job


def job_public(session: Session, job: Job) -> JobPublic:
    return build_job_public(
        job, crud.list_trials(session, job_id=job.id, status=TrialStatus.SUCCEEDED)
    )


# A job is refused when its user's storage is full (api/quotas.py).
STORAGE_FULL: dict[int | str, dict[str, Any]] = {
    413: {"model": Message, "description": "Storage quota full: the limit named"}
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobCreated,
    responses={**error_responses(400), **STORAGE_FULL},
)
def create_job(
    body: JobCreate,
    user: CurrentUser,
    session: SessionDep,
    producer: ProducerDep,
    settings: SettingsDep,
) -> JobCreated:
    """Validate the spec (and the service's limits: 422), check its backbones against the
    dataset's modalities and the models the serving workers offer (422 naming
    ``backbones.<modality>``; with no worker serving, the worker that takes the job checks the
    model), check the user's quotas (429: too many active jobs; 413: storage full), store the
    job (queued), then enqueue ``synib.run_job``."""
    try:
        spec = body.to_spec(limits=settings.spec_limits)
    except SpecError as exc:
        raise spec_unprocessable(exc) from None
    dataset = crud.get_dataset(session, dataset_id=spec.dataset_id, owner_id=user.id)
    if dataset is None:
        raise unprocessable("dataset_id", f"no dataset {spec.dataset_id!r}")
    if dataset.status == DatasetStatus.FAILED:
        raise unprocessable("dataset_id", f"dataset failed: {dataset.error or 'unknown error'}")
    problem = dataset_problem(spec, dataset.summary)
    if problem is not None:
        raise unprocessable(*problem)
    if dataset.summary:  # a pending built-in dataset: the worker checks once it is made
        models = model_infos(offered_models(session, settings))
        try:
            check_dataset_backbones(spec.backbones, summary_kinds(dataset.summary), models)
        except SpecError as exc:
            raise spec_unprocessable(exc) from None
    check_job_quotas(session, settings, user.id)
    task_id = str(uuid.uuid4())  # stored with the row: one commit, then the message
    job = crud.create_job(
        session,
        owner_id=user.id,
        dataset_id=dataset.id,
        name=spec.name or f"{'+'.join(spec.method_names())} on {dataset.name}",
        spec=spec.to_json(),
        trials_total=count_trials(spec),
        task_id=task_id,
    )
    # A failed send leaves the job queued; the housekeeping sends it again.
    producer.send(RUN_JOB, job.id, task_id=task_id)
    public = build_job_public(job, [])
    return JobCreated(**public.model_dump(), warnings=spec_warnings(spec))


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
    for trial in crud.list_trials_of_jobs(
        session, job_ids=list(by_job), status=TrialStatus.SUCCEEDED
    ):
        by_job[trial.job_id].append(trial)
    headlines = crud.list_job_headlines(session, job_ids=list(by_job))
    data = [build_job_public(j, by_job[j.id], headlines.get(j.id, {})) for j in jobs]
    return JobsPublic(data=data, count=count)


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def read_job(job_id: PathId, user: CurrentUser, session: SessionDep) -> JobPublic:
    return job_public(session, owned_job(session, job_id, user.id))


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
    responses={**NOT_FOUND_OR_CONFLICT, **STORAGE_FULL},
)
def rerun_failed(
    job_id: PathId,
    user: CurrentUser,
    session: SessionDep,
    producer: ProducerDep,
    settings: SettingsDep,
) -> JobPublic:
    """Failed trials -> pending, job -> queued, enqueued again (409 unless finished with
    failures; 429 / 413 like a submission)."""
    job = owned_job(session, job_id, user.id)
    if job.status in JOB_TERMINAL:  # an active job is refused below (409), not counted
        check_job_quotas(session, settings, user.id)
    task_id = str(uuid.uuid4())
    if crud.requeue_failed(session, job_id=job_id, task_id=task_id) is None:
        raise conflict("only a finished job with failed trials (or a failed job) can be rerun")
    # After the commit; if it fails, the housekeeping resends.
    producer.send(RUN_JOB, job_id, task_id=task_id)
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

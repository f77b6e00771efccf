"""The job report written by the worker."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, PathId, SessionDep
from api.errors import AUTH_ERRORS, NOT_FOUND, not_found
from api.routes.jobs import owned_job

router = APIRouter(tags=["reports"], responses=AUTH_ERRORS)


@router.get("/jobs/{job_id}/report", response_model=dict[str, Any], responses=NOT_FOUND)
def read_report(job_id: PathId, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """The report JSON (docs/USER_GUIDE.md, "The report"); 404 until the worker has written it."""
    job = owned_job(session, job_id, user.id)
    if job.report is None:
        raise not_found("report")
    return job.report

"""Artifacts of a job and their checksummed download."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from api.deps import CurrentUser, PathId, SessionDep, StoreDep
from api.errors import AUTH_ERRORS, NOT_FOUND, not_found
from api.ranged_file import ranged_file_response
from api.routes.jobs import owned_job
from api.schemas.trials import ArtifactPublic, ArtifactsPublic
from infra.db import crud
from infra.storage import UnsafePathError, safe_relative

router = APIRouter(tags=["artifacts"], responses=AUTH_ERRORS)
log = logging.getLogger(__name__)

_MEDIA_TYPES = {".zip": "application/zip", ".json": "application/json"}
_FILE_CONTENT = {
    t: {"schema": {"type": "string", "format": "binary"}}
    for t in (*_MEDIA_TYPES.values(), "application/octet-stream")
}
_FILE_HEADERS = {
    "X-Checksum-SHA256": {"schema": {"type": "string"}, "description": "sha256 of the file"},
    "ETag": {"schema": {"type": "string"}, "description": "The sha256, quoted"},
}


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactsPublic, responses=NOT_FOUND)
def list_job_artifacts(job_id: PathId, user: CurrentUser, session: SessionDep) -> ArtifactsPublic:
    owned_job(session, job_id, user.id)
    rows = [ArtifactPublic.model_validate(a) for a in crud.list_artifacts(session, job_id=job_id)]
    return ArtifactsPublic(data=rows, count=len(rows))


@router.get(
    "/artifacts/{artifact_id}",
    response_class=Response,
    responses={
        200: {"content": _FILE_CONTENT, "headers": _FILE_HEADERS, "description": "The file"},
        206: {"content": _FILE_CONTENT, "description": "Partial content (Range)"},
        304: {"description": "Not modified (If-None-Match)"},
        **NOT_FOUND,
        416: {"description": "Range not satisfiable"},
    },
)
def download_artifact(
    artifact_id: PathId, request: Request, user: CurrentUser, session: SessionDep, store: StoreDep
) -> Response:
    """The artifact file with ``X-Checksum-SHA256`` and ``ETag``; supports a single Range."""
    row = crud.get_artifact(session, artifact_id=artifact_id, owner_id=user.id)
    if row is None:
        raise not_found("artifact")
    try:
        suffix = safe_relative(row.path).suffix.lower()
    except UnsafePathError:
        log.warning("artifact %s has an unsafe path %r", row.id, row.path)
        raise not_found("artifact") from None
    name = row.name if row.name.lower().endswith(suffix) else f"{row.name}{suffix}"
    media_type = _MEDIA_TYPES.get(suffix, "application/octet-stream")
    try:
        return ranged_file_response(
            request,
            store,
            row.path,
            sha256=row.sha256,
            filename=name.replace('"', ""),
            media_type=media_type,
        )
    except UnsafePathError:  # a symlink out of a local store
        log.warning("artifact %s has a path %r that leaves the store", row.id, row.path)
        raise not_found("artifact") from None
    except FileNotFoundError:
        raise not_found("artifact file") from None

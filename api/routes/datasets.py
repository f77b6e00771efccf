"""Datasets: streamed .npz upload (validated, checksummed), built-in generators, list/get/delete."""

from __future__ import annotations

import logging
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, PathId, ProducerDep, SessionDep, SettingsDep, StoreDep
from api.errors import (
    AUTH_ERRORS,
    NOT_FOUND,
    conflict,
    error_responses,
    not_found,
    unprocessable,
)
from api.json_route import OffLoopJsonRoute
from api.quotas import check_dataset_quotas
from api.schemas.common import MAX_SQL_INT
from api.schemas.datasets import (
    BuiltinDatasetCreate,
    DatasetFeaturePublic,
    DatasetPidRequest,
    DatasetPublic,
    DatasetsPublic,
    GeneratorsPublic,
)
from api.upload_stream import BadUpload, ReceivedUpload, UploadTooLarge, receive_upload
from infra.broker import DATASET_PID, MAKE_DATASET
from infra.db import crud
from infra.db.models import Dataset, DatasetStatus, new_id, utcnow
from infra.storage import StorageError, Store
from synib_spec.builtin import check_budget, generator_table, resolve_params
from synib_spec.datasets import DatasetError, GeneratorParamError, validate_npz

router = APIRouter(
    prefix="/datasets", tags=["datasets"], responses=AUTH_ERRORS, route_class=OffLoopJsonRoute
)
log = logging.getLogger(__name__)

REUSED_HEADER = "X-Synib-Dataset-Reused"

_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": DatasetPublic,
        "description": "You already have a ready dataset with this file's sha256: that dataset, "
        f"unchanged (its name is kept), with the header {REUSED_HEADER}: true",
        "headers": {REUSED_HEADER: {"schema": {"type": "string", "enum": ["true"]}}},
    },
    **error_responses(409, 413, 422, 503),
}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            }
        },
    }
}


def _store_upload(
    session: Any, store: Store, owner_id: str, tmp: Path, upload: ReceivedUpload
) -> Dataset:
    """Validate the received file, move it into the store and insert the row (ready)."""
    try:
        summary = validate_npz(str(tmp))
    except DatasetError as exc:
        prefix = ("body",) if exc.field == "file" else ("body", "file")
        raise unprocessable(exc.field, exc.reason, loc_prefix=prefix) from None
    given = upload.fields.get("name", "").strip()
    if "\x00" in given:
        raise unprocessable("name", "must not contain NUL characters")
    name = given or PurePath((upload.filename or "dataset").replace("\x00", "")).stem
    if len(name) > 200:
        raise unprocessable("name", "at most 200 characters")
    dataset_id = new_id()
    relative = f"datasets/{dataset_id}.npz"
    store.put(tmp, relative)
    try:
        return crud.create_dataset(
            session,
            dataset_id=dataset_id,
            owner_id=owner_id,
            name=name or "dataset",
            source="upload",
            status=DatasetStatus.READY,
            path=relative,
            sha256=upload.sha256,
            size_bytes=upload.size_bytes,
            summary=summary,
        )
    except Exception:
        store.delete(relative)
        raise


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    openapi_extra=_UPLOAD_BODY,
    responses=_UPLOAD_RESPONSES,
)
async def upload_dataset(
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> DatasetPublic:
    """Upload an ``.npz`` dataset (multipart: ``file``, optional ``name``). 201 with the new
    dataset; 200 with your existing ready dataset of the same sha256 (not stored twice)."""
    await run_in_threadpool(check_dataset_quotas, session, settings, user.id)  # 409 / 413
    # Made on the event loop (one mkstemp): awaited in a thread, a cancelled request could
    # leave the file behind without knowing its name.
    tmp = store.new_temp_file(".npz")
    try:
        upload = await _receive(request, tmp, settings.max_upload_bytes, settings.max_upload_mb)
        # One validation at a time per API process: it decompresses and reads every byte (up to
        # the upload limits' 4 GiB, a chunk at a time), so concurrent uploads wait here instead
        # of sharing the CPU. The same file sent twice at once is stored once: the second finds
        # the first here.
        async with request.app.state.validation_gate:
            existing = await run_in_threadpool(
                crud.find_ready_dataset_by_sha256, session, owner_id=user.id, sha256=upload.sha256
            )
            if existing is not None:
                response.status_code = status.HTTP_200_OK
                response.headers[REUSED_HEADER] = "true"
                return DatasetPublic.model_validate(existing)
            row = await run_in_threadpool(_store_upload, session, store, user.id, tmp, upload)
        return DatasetPublic.model_validate(row)
    finally:
        tmp.unlink(missing_ok=True)


async def _receive(request: Request, tmp: Path, max_bytes: int, max_mb: float) -> ReceivedUpload:
    """The multipart body streamed into ``tmp``; 413/422 for what the client sent wrong (a
    storage error propagates: 503)."""
    try:
        return await receive_upload(request, tmp, max_bytes)
    except UploadTooLarge:
        raise HTTPException(413, detail=f"file larger than the limit of {max_mb:g} MB") from None
    except BadUpload as exc:
        raise unprocessable(exc.field, exc.reason) from None
    except StorageError:
        raise
    except Exception as exc:  # malformed multipart framing, or the client went away
        raise unprocessable("file", f"malformed multipart body ({type(exc).__name__})") from None


@router.post(
    "/builtin",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    responses=error_responses(400, 409, 413),
)
def create_builtin_dataset(
    body: BuiltinDatasetCreate,
    user: CurrentUser,
    session: SessionDep,
    producer: ProducerDep,
    settings: SettingsDep,
) -> DatasetPublic:
    """Register a generated dataset (status pending); the worker generates it.

    ``params`` stored on the row are the generator's parameters plus ``seed``. A dataset whose
    estimated size is over ``max_builtin_dataset_mb`` is refused (422 naming the parameter).
    """
    check_dataset_quotas(session, settings, user.id)  # 409 / 413
    try:
        resolved = resolve_params(body.generator, body.params, strict=True)
        check_budget(body.generator, resolved, settings.max_builtin_dataset_mb)
    except GeneratorParamError as exc:
        raise unprocessable(f"params.{exc.field}", exc.reason) from None
    params = {**body.params, "seed": body.seed}
    row = crud.create_dataset(
        session,
        owner_id=user.id,
        name=body.name or f"{body.generator}-seed{body.seed}",
        source="builtin",
        builtin_name=body.generator,
        params=params,
        status=DatasetStatus.PENDING,
    )
    producer.send(MAKE_DATASET, row.id)  # after the commit; if it fails, the housekeeping resends
    return DatasetPublic.model_validate(row)


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> DatasetsPublic:
    rows, count = crud.list_datasets(session, owner_id=user.id, limit=limit, offset=offset)
    return DatasetsPublic(data=[DatasetPublic.model_validate(r) for r in rows], count=count)


@router.get("/generators", response_model=GeneratorsPublic)
async def list_generators(_user: CurrentUser) -> GeneratorsPublic:
    """The built-in generators and their parameters (``synib_spec.builtin``)."""
    return GeneratorsPublic.model_validate({"data": generator_table()})


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=NOT_FOUND)
def read_dataset(dataset_id: PathId, user: CurrentUser, session: SessionDep) -> DatasetPublic:
    """The dataset with its summary, its PID and its cached pretrained features."""
    row = crud.get_dataset(session, dataset_id=dataset_id, owner_id=user.id)
    if row is None:
        raise not_found("dataset")
    public = DatasetPublic.model_validate(row)
    features = crud.get_dataset_features(session, dataset_id=row.id)
    public.features = [DatasetFeaturePublic.model_validate(f) for f in features]
    return public


@router.post(
    "/{dataset_id}/pid",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatasetPublic,
    responses=error_responses(400, 404, 409),
)
def request_dataset_pid(
    dataset_id: PathId,
    user: CurrentUser,
    session: SessionDep,
    producer: ProducerDep,
    body: DatasetPidRequest | None = None,
) -> DatasetPublic:
    """Compute the PID of the dataset on a worker (``synib.dataset_pid``): redundancy, unique
    information and synergy of each pair of modalities about the label, and a verdict. Answers
    at once with ``pid.status`` ``queued``; ``GET /datasets/{id}`` shows the result. 409 unless
    the dataset is ready."""
    row = crud.get_dataset(session, dataset_id=dataset_id, owner_id=user.id)
    if row is None:
        raise not_found("dataset")
    if row.status != DatasetStatus.READY:
        raise conflict(
            f"dataset is {row.status}: its PID can be computed once it is ready"
            + (" (a built-in dataset is generated by a worker first)" if row.status == "pending"
               else "")
        )  # fmt: skip
    clusters = body.clusters if body is not None else None
    pid: dict[str, Any] = {
        "status": "queued",
        "clusters": clusters,
        "pairs": [],
        "verdict": None,
        "error": None,
        # when the message went out: the housekeeping re-sends a lost one (backing off)
        "requested_at": utcnow().isoformat(),
    }
    crud.set_dataset_pid(session, dataset_id=dataset_id, pid=pid)
    session.refresh(row)
    producer.send(DATASET_PID, dataset_id)  # after the commit
    return DatasetPublic.model_validate(row)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, 409, 503),
)
def delete_dataset(
    dataset_id: PathId, user: CurrentUser, session: SessionDep, store: StoreDep
) -> Response:
    """Delete the dataset, its file and its cached features (409 while a queued/running/cancelling job uses it).

    The file goes first: a storage error (503) leaves the dataset as it was, to delete again.
    A built-in dataset still being generated is deleted too; its worker removes the file it
    makes when it finds the row gone."""
    row = crud.get_dataset(session, dataset_id=dataset_id, owner_id=user.id)
    if row is None:
        raise not_found("dataset")
    if crud.dataset_in_use(session, dataset_id=dataset_id):
        raise conflict("dataset is used by an active job")
    stored = row.path
    for feature in crud.feature_paths_only_of(session, dataset_id=dataset_id):
        store.delete(feature)  # its cached features (worker.features); the rows cascade
    if stored:
        store.delete(stored)
    path = crud.delete_dataset(session, dataset_id=dataset_id)
    if path and path != stored:  # stored by a worker since the read above
        store.delete(path)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

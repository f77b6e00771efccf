"""Helpers of the R2 reliability tests (bad input, access control, fuzzing): a seeded "world"
of one user's resources, raw ASGI requests (paths the HTTP clients would normalise), and
snapshots of what the service stored.

A plain module (not a conftest): the tests import the functions they need.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Artifact, Dataset, Job, JobEvent, Trial
from infra.storage import ArtifactStore
from infra.tokens import issue_token


@dataclass(frozen=True)
class World:
    """One user's token and one resource of each kind (ids), all finished and downloadable."""

    token: str
    user_id: str
    dataset_id: str
    job_id: str
    trial_id: str
    artifact_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path_ids(self) -> dict[str, str]:
        """Path parameter name -> this user's id (for route templates)."""
        return {
            "dataset_id": self.dataset_id,
            "job_id": self.job_id,
            "trial_id": self.trial_id,
            "artifact_id": self.artifact_id,
        }


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive (deflated) holding ``members``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def _add_artifact_file(session: Session, store: ArtifactStore, user_id: str, job_id: str) -> str:
    payload = zip_bytes({"config.json": b'{"method": "synib"}', "weights.bin": b"\x01" * 512})
    relative = f"jobs/{job_id}/model.zip"
    target = store.resolve(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    row = crud.add_artifact(
        session,
        owner_id=user_id,
        job_id=job_id,
        kind="model",
        name="model",
        path=relative,
        sha256=hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
    )
    return row.id


def seed_world(session: Session, store: ArtifactStore, user_name: str) -> World:
    """User ``user_name`` with a token, a ready dataset, a succeeded job with one trial (two
    epochs of metrics), its events, report and a model artifact file in ``store``."""
    issued = issue_token(session, user_name=user_name)
    user_id = issued.user_id
    dataset = crud.create_dataset(
        session,
        owner_id=user_id,
        name=f"{user_name}-data",
        source="builtin",
        builtin_name="xor_spurious",
        params={"seed": 0},
        status="ready",
        summary={"modalities": [{"name": "a", "shape": [40, 4]}], "num_classes": 2},
    )
    spec = {"methods": ["vanilla"], "seeds": [0], "dataset_id": dataset.id}
    job = crud.create_job(
        session, owner_id=user_id, dataset_id=dataset.id, name="job", spec=spec, trials_total=1
    )
    crud.claim_job(session, job_id=job.id, worker="w1")
    trial = crud.upsert_trial(
        session, job_id=job.id, trial_key="vanilla|seed=0", method="vanilla", seed=0, config={}
    )
    for epoch in (1, 2):
        crud.upsert_epoch_metrics(
            session, trial_id=trial.id, epoch=epoch, metrics={"val_acc": 0.5 + epoch / 10}
        )
    crud.set_trial_status(
        session, trial_id=trial.id, status="succeeded", best_epoch=2, metrics={"val_acc": 0.7}
    )
    crud.set_job_report(session, job_id=job.id, report={"job_id": job.id, "methods": {}})
    crud.set_job_status(session, job_id=job.id, status="succeeded")
    artifact_id = _add_artifact_file(session, store, user_id, job.id)
    return World(issued.token, user_id, dataset.id, job.id, trial.id, artifact_id)


def row_counts(session: Session) -> dict[str, int]:
    """Rows per user-data table (datasets, jobs, trials, artifacts, job_events)."""
    session.expire_all()
    models: dict[str, Any] = {
        "datasets": Dataset,
        "jobs": Job,
        "trials": Trial,
        "artifacts": Artifact,
        "job_events": JobEvent,
    }
    return {
        name: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for name, model in models.items()
    }


def files_under(root: Path) -> list[str]:
    """Relative paths of every file (not folder) below ``root`` (empty if it does not exist)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def asgi_request(
    app: Any, method: str, raw_path: str, headers: dict[str, str] | None = None
) -> RawResponse:
    """Send one request straight to the ASGI ``app`` with ``raw_path`` exactly as given (no
    client-side normalisation of ``..`` or percent escapes); ``path`` is its percent-decoding,
    as uvicorn computes it."""
    raw = raw_path.encode("ascii")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw,
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    decoded = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return RawResponse(start["status"], decoded, body)

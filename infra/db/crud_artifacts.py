"""Reads and writes of artifacts: files in the artifact store (paths relative to its root)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.db.models import Artifact, utcnow


def add_artifact(
    session: Session,
    *,
    owner_id: str,
    job_id: str,
    kind: str,
    name: str,
    path: str,
    sha256: str,
    size_bytes: int,
    trial_id: str | None = None,
) -> Artifact:
    """Register a file already in the artifact store (path relative to its root)."""
    row = Artifact(
        owner_id=owner_id,
        job_id=job_id,
        trial_id=trial_id,
        kind=kind,
        name=name,
        path=path,
        sha256=sha256,
        size_bytes=size_bytes,
        created_at=utcnow(),
    )
    session.add(row)
    session.commit()
    return row


def get_artifact(
    session: Session, *, artifact_id: str, owner_id: str | None = None
) -> Artifact | None:
    row = session.get(Artifact, artifact_id)
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        return None
    return row


def list_artifacts(session: Session, *, job_id: str) -> list[Artifact]:
    stmt = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.created_at)
    return list(session.scalars(stmt))


def model_artifact_of(session: Session, *, trial_id: str) -> Artifact | None:
    """The trial's model artifact if it was registered already (a rerun keeps it)."""
    stmt = select(Artifact).where(Artifact.trial_id == trial_id, Artifact.kind == "model")
    return session.scalars(stmt).first()


def report_artifact_of(session: Session, *, job_id: str) -> Artifact | None:
    stmt = select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == "report")
    return session.scalars(stmt).first()


def replace_artifact_file(
    session: Session, *, artifact: Artifact, sha256: str, size_bytes: int
) -> None:
    """Point an existing artifact row at new file contents (the report of a rerun)."""
    artifact.sha256 = sha256
    artifact.size_bytes = size_bytes
    artifact.created_at = utcnow()
    session.commit()

"""Reads and writes of the frozen-feature cache (``dataset_features``); each writing function
commits. A row's file lives in the artifact store at ``path``; rows of datasets with the same
bytes share one file (the fingerprint starts from the dataset's sha256)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infra.db.models import DatasetFeature


def get_dataset_features(session: Session, *, dataset_id: str) -> list[DatasetFeature]:
    """The dataset's cached features, oldest first."""
    stmt = (
        select(DatasetFeature)
        .where(DatasetFeature.dataset_id == dataset_id)
        .order_by(DatasetFeature.created_at, DatasetFeature.id)
    )
    return list(session.scalars(stmt))


def find_feature(session: Session, *, fingerprint: str) -> DatasetFeature | None:
    """The oldest row with this fingerprint (of any dataset holding the same bytes), or None."""
    stmt = (
        select(DatasetFeature)
        .where(DatasetFeature.fingerprint == fingerprint)
        .order_by(DatasetFeature.created_at, DatasetFeature.id)
        .limit(1)
    )
    return session.scalars(stmt).first()


def add_feature(
    session: Session,
    *,
    dataset_id: str,
    modality: str,
    model: str,
    pooling: str,
    fingerprint: str,
    dim: int,
    path: str,
    seconds: float,
) -> DatasetFeature:
    """Record the dataset's features (the existing row when it already has this fingerprint:
    two jobs of one dataset may extract at once, and the second insert loses the race to the
    unique constraint); commits."""
    found = _own_row(session, dataset_id, fingerprint)
    if found is not None:
        return found
    row = DatasetFeature(
        dataset_id=dataset_id,
        modality=modality,
        model=model,
        pooling=pooling,
        fingerprint=fingerprint,
        dim=int(dim),
        path=path,
        seconds=float(seconds),
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = _own_row(session, dataset_id, fingerprint)
        if raced is None:  # not the race: the dataset is gone (foreign key)
            raise
        return raced
    session.refresh(row)
    return row


def _own_row(session: Session, dataset_id: str, fingerprint: str) -> DatasetFeature | None:
    return session.scalars(
        select(DatasetFeature).where(
            DatasetFeature.dataset_id == dataset_id, DatasetFeature.fingerprint == fingerprint
        )
    ).first()


def feature_paths_only_of(session: Session, *, dataset_id: str) -> list[str]:
    """The feature files of the dataset that no other dataset's row uses (deleting the dataset
    deletes them; its rows go with it by the foreign key's cascade)."""
    own = {r.path for r in get_dataset_features(session, dataset_id=dataset_id)}
    if not own:
        return []
    shared = select(DatasetFeature.path).where(
        DatasetFeature.path.in_(own), DatasetFeature.dataset_id != dataset_id
    )
    return sorted(own - set(session.scalars(shared)))

"""Dataset rows and their files: a worker's ``mark_dataset_ready`` says whether the row was
still there, and a delete returns the file path the row had when it was deleted (not a stale
one read earlier in the same session)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.session import session_factory


def _ready(session: Session, dataset_id: str) -> bool:
    return crud.mark_dataset_ready(
        session,
        dataset_id=dataset_id,
        path=f"datasets/{dataset_id}.npz",
        sha256="a" * 64,
        size_bytes=10,
        summary={"num_classes": 2},
    )


def test_a_delete_returns_the_path_a_worker_stored_since_the_row_was_read(
    db_url: str, db_session: Session, user_token: tuple[str, str]
) -> None:
    row = crud.create_dataset(
        db_session,
        owner_id=user_token[1],
        name="gen",
        source="builtin",
        builtin_name="xor_pid",
        params={"seed": 0},
        status="pending",
    )
    dataset_id = row.id
    assert crud.get_dataset(db_session, dataset_id=dataset_id).path is None  # type: ignore[union-attr]
    with session_factory(db_url)() as worker:
        assert _ready(worker, dataset_id) is True
    assert crud.delete_dataset(db_session, dataset_id=dataset_id) == f"datasets/{dataset_id}.npz"
    with session_factory(db_url)() as worker:
        assert _ready(worker, dataset_id) is False  # gone: the worker removes its file


def test_only_a_pending_dataset_is_marked_ready(
    db_session: Session, user_token: tuple[str, str]
) -> None:
    row = crud.create_dataset(
        db_session, owner_id=user_token[1], name="up", source="upload", status="failed"
    )
    assert _ready(db_session, row.id) is False


def test_the_sha256_lookup_finds_only_the_owners_ready_datasets(
    db_session: Session,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    alice, bob = make_token("alice")[1], make_token("bob")[1]
    digest = "b" * 64
    for owner, status in ((alice, "failed"), (bob, "ready")):
        crud.create_dataset(
            db_session, owner_id=owner, name="x", source="upload", status=status, sha256=digest
        )
    assert crud.find_ready_dataset_by_sha256(db_session, owner_id=alice, sha256=digest) is None
    mine = crud.create_dataset(
        db_session, owner_id=alice, name="x", source="upload", status="ready", sha256=digest
    )
    found = crud.find_ready_dataset_by_sha256(db_session, owner_id=alice, sha256=digest)
    assert found is not None and found.id == mine.id

"""What a worker does with the file it generated when the dataset stopped being pending
meanwhile (``settle_not_pending``): deleted by its user -> the file is removed; made ready by
another delivery of the same task -> the file (the same bytes at the same path) stays."""

from __future__ import annotations

from pathlib import Path

from infra.db import crud
from infra.db.session import session_factory
from infra.storage import ArtifactStore
from worker.datasets import generate_builtin, materialise_dataset, settle_not_pending

PARAMS = {"n_train": 40, "n_val": 10, "n_test": 10}


def _pending(db_url: str, owner_id: str, seed: int) -> str:
    with session_factory(db_url)() as session:
        row = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="gen",
            source="builtin",
            builtin_name="xor_pid",
            params={**PARAMS, "seed": seed},
            status="pending",
        )
        return str(row.id)


def test_a_file_another_delivery_made_ready_stays(
    db_url: str, tmp_path: Path, user_token: tuple[str, str]
) -> None:
    sessions = session_factory(db_url)
    store = ArtifactStore(tmp_path / "artifacts")
    dataset_id = _pending(db_url, user_token[1], seed=0)
    assert materialise_dataset(sessions, store, dataset_id) == "ready"
    relative = f"datasets/{dataset_id}.npz"
    with sessions() as session:
        assert settle_not_pending(session, store, dataset_id, relative) == "ready"
    assert store.resolve(relative).is_file()


def test_a_file_of_a_dataset_deleted_meanwhile_is_removed(
    db_url: str, tmp_path: Path, user_token: tuple[str, str]
) -> None:
    sessions = session_factory(db_url)
    store = ArtifactStore(tmp_path / "artifacts")
    dataset_id = _pending(db_url, user_token[1], seed=1)
    with sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        assert row is not None
        relative, *_ = generate_builtin(row, store)  # generated and stored, not yet ready...
        assert crud.delete_dataset(session, dataset_id=dataset_id) is None  # ...and deleted
        assert store.resolve(relative).is_file()
        assert settle_not_pending(session, store, dataset_id, relative) == "missing"
    assert not store.resolve(relative).exists()

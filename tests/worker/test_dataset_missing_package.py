"""A built-in dataset whose generator needs a package the worker lacks (digits_pairs needs
scikit-learn, once missing from ``make run`` and the GPU image) fails with a reason naming the
package, and the job on it with that reason, not ``internal error (ModuleNotFoundError)``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.db import crud
from infra.db.session import session_factory
from infra.storage import ArtifactStore
from worker.datasets import DatasetUnavailable, load_job_dataset, materialise_dataset

REASON = (
    "built-in dataset digits_pairs cannot be generated on this worker: it needs the Python "
    "package scikit-learn (module sklearn), which is not installed there; install it on the "
    "workers (synib[core] brings it)"
)


def test_missing_package_fails_the_dataset_and_the_job_with_its_name(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn: ModuleNotFoundError
    sessions = session_factory(db_url)
    with sessions() as session:
        owner = crud.create_user(session, name="digits-owner")
        dataset = crud.create_dataset(
            session,
            owner_id=owner.id,
            name="digits",
            source="builtin",
            builtin_name="digits_pairs",
            params={},
            status="pending",
        )
        dataset_id = str(dataset.id)
    store = ArtifactStore(tmp_path / "artifacts")
    assert materialise_dataset(sessions, store, dataset_id) == "failed"
    with sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        assert row is not None and (row.status, row.error) == ("failed", REASON)
    with pytest.raises(DatasetUnavailable) as caught:
        load_job_dataset(sessions, store, dataset_id)
    assert str(caught.value) == f"dataset {dataset_id} is failed: {REASON}"

"""The frozen-feature cache's rows (``crud_features``) and a dataset's deletion: its rows go with
it and its feature files are deleted, except a file another dataset's row still uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_factories import add_ready_dataset
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from infra.db import crud, crud_features
from infra.settings import Settings
from infra.storage import ArtifactStore

URL = "/api/v1/datasets"


def _feature(session: Session, dataset_id: str, fingerprint: str, seconds: float = 2.5):  # type: ignore[no-untyped-def]
    return crud.add_feature(
        session, dataset_id=dataset_id, modality="text", model="all-minilm-l6-v2",
        pooling="mean", fingerprint=fingerprint, dim=384, path=f"features/{fingerprint}.npy",
        seconds=seconds,
    )  # fmt: skip


def _stored(settings: Settings, relative: str) -> Path:
    store = ArtifactStore(settings.artifact_root)
    tmp = store.new_temp_file(suffix=".npy")
    tmp.write_bytes(b"features")
    store.put(tmp, relative)
    return store.resolve(relative)


def test_rows_are_found_by_fingerprint_and_added_once_per_dataset(
    db_session: Session, user_token: tuple[str, str]
) -> None:
    first = add_ready_dataset(db_session, user_token[1])
    second = add_ready_dataset(db_session, user_token[1])
    assert crud.find_feature(db_session, fingerprint="f" * 64) is None
    row = _feature(db_session, first.id, "f" * 64)
    again = _feature(db_session, first.id, "f" * 64, seconds=9.0)  # a second extraction
    assert again.id == row.id and again.seconds == 2.5
    _feature(db_session, second.id, "f" * 64)  # the same bytes in another dataset
    _feature(db_session, first.id, "e" * 64)
    found = crud.find_feature(db_session, fingerprint="f" * 64)
    assert found is not None and found.id == row.id  # the oldest
    own = crud.get_dataset_features(db_session, dataset_id=first.id)
    assert [r.fingerprint for r in own] == ["f" * 64, "e" * 64]
    assert (own[0].dim, own[0].path) == (384, f"features/{'f' * 64}.npy")
    # The shared file stays with the other dataset; the own one goes.
    assert crud.feature_paths_only_of(db_session, dataset_id=first.id) == [
        f"features/{'e' * 64}.npy"
    ]


def test_deleting_a_dataset_deletes_its_feature_rows_and_unshared_files(
    client: TestClient,
    auth: dict[str, str],
    api_settings: Settings,
    db_session: Session,
    user_token: tuple[str, str],
) -> None:
    doomed = add_ready_dataset(db_session, user_token[1]).id
    kept = add_ready_dataset(db_session, user_token[1]).id
    own = _stored(api_settings, _feature(db_session, doomed, "a" * 64).path)
    shared = _stored(api_settings, _feature(db_session, doomed, "b" * 64).path)
    _feature(db_session, kept, "b" * 64)
    assert client.delete(f"{URL}/{doomed}", headers=auth).status_code == 204
    assert not own.exists() and shared.exists()
    db_session.expire_all()
    assert crud.get_dataset_features(db_session, dataset_id=doomed) == []
    left = crud.get_dataset_features(db_session, dataset_id=kept)
    assert [r.fingerprint for r in left] == ["b" * 64]


def test_a_second_insert_that_lost_the_race_returns_the_winners_row(
    db_session: Session, user_token: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id = add_ready_dataset(db_session, user_token[1]).id
    winner = _feature(db_session, dataset_id, "c" * 64)
    real, calls = crud_features._own_row, []

    def checked_before_the_winner_committed(*args: object) -> object:
        calls.append(args)
        return None if len(calls) == 1 else real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(crud_features, "_own_row", checked_before_the_winner_committed)
    row = _feature(db_session, dataset_id, "c" * 64)  # the insert hits the unique constraint
    assert row.id == winner.id and len(calls) == 2
    assert len(crud.get_dataset_features(db_session, dataset_id=dataset_id)) == 1


def test_the_dataset_page_lists_its_cached_features(
    client: TestClient, auth: dict[str, str], db_session: Session, user_token: tuple[str, str]
) -> None:
    dataset_id = add_ready_dataset(db_session, user_token[1]).id
    assert client.get(f"{URL}/{dataset_id}", headers=auth).json()["features"] == []
    _feature(db_session, dataset_id, "c" * 64, seconds=4.25)
    [feature] = client.get(f"{URL}/{dataset_id}", headers=auth).json()["features"]
    assert feature["model"] == "all-minilm-l6-v2" and feature["modality"] == "text"
    assert (feature["dim"], feature["seconds"], feature["fingerprint"]) == (384, 4.25, "c" * 64)
    assert "path" not in feature  # a store path is the service's business

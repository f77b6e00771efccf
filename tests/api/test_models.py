"""Pretrained models: ``GET /api/v1/models`` is the union of the serving workers' models, and a
job's backbones are checked against the dataset's modality kinds and those models (422 naming
``backbones.<modality>...``); the dataset shows its kinds and its cached features."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset, WorkerPresence, utcnow
from synib_spec.backbones import PACKAGED_MODELS, ModelInfo

URL = "/api/v1/models"
MINILM = PACKAGED_MODELS[0][0]
TINY = ModelInfo("tiny-bert", "text", 32, "MIT", "transformers", "/models/tiny-bert", "ab" * 32)
N = 40


def _worker(session: Session, name: str, models: list[ModelInfo], pid: int = 1) -> None:
    crud.record_worker(
        session, name=name, hostname="host", pid=pid, models=[m.to_json() for m in models]
    )


@pytest.fixture
def text_dataset(db_session: Session, user_token: tuple[str, str]) -> Dataset:
    """A ready upload with a text modality and a vector one written before kinds (no kind)."""
    return crud.create_dataset(
        db_session,
        owner_id=user_token[1],
        name="memes",
        source="upload",
        status="ready",
        summary={
            "modalities": [
                {"name": "caption", "shape": [N], "kind": "text"},
                {"name": "v", "shape": [N, 4]},
            ],
            "num_classes": 2,
        },
    )


def test_models_lists_the_union_of_the_serving_workers(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers=auth).json() == {"data": [], "count": 0}
    _worker(db_session, "w1@host", [MINILM, TINY])
    _worker(db_session, "w2@host", [TINY], pid=2)
    _worker(db_session, "gone@host", [ModelInfo("old", "text", 8, "MIT", "transformers", "/x")])
    stale = utcnow() - timedelta(hours=1)
    db_session.execute(
        update(WorkerPresence).where(WorkerPresence.name == "gone@host").values(last_seen_at=stale)
    )
    db_session.commit()
    body = client.get(URL, headers=auth).json()
    assert body["count"] == 2
    assert [(m["name"], m["workers"]) for m in body["data"]] == [
        ("all-minilm-l6-v2", 1),
        ("tiny-bert", 2),
    ]
    assert body["data"][1] == {**TINY.to_json(), "workers": 2}


def _job(dataset: Dataset, backbones: Any, **extra: Any) -> dict[str, Any]:
    return {
        "dataset_id": dataset.id,
        "methods": ["vanilla"],
        "sweep": {},
        "backbones": backbones,
        **extra,
    }


PRETRAINED = {"encoder": "pretrained", "model": "tiny-bert"}


@pytest.mark.parametrize(
    ("backbones", "extra", "field", "words"),
    [
        ({"caption": {"encoder": "pretrained", "model": "nope"}}, {}, "backbones.caption.model",
         "no worker offers the model 'nope'"),
        ({"caption": PRETRAINED, "nope": {"encoder": "mlp"}}, {}, "backbones.nope",
         "no modality 'nope'"),
        ({"caption": PRETRAINED, "v": {"encoder": "gru"}}, {}, "backbones.v.encoder",
         "'gru' cannot read vector data"),
        ({"caption": PRETRAINED, "v": PRETRAINED}, {}, "backbones.v.model",
         "'tiny-bert' is a model for text, but modality 'v' holds vector data"),
        ({}, {}, "backbones.caption", "read only by a pretrained text model"),
        ({"caption": {**PRETRAINED, "train": "full"}},
         {"methods": ["synib"], "config": {"mask_level": "input"}}, "config.mask_level",
         "token ids or waveforms"),
        ({"caption": {**PRETRAINED, "train": "everything"}}, {}, "backbones.caption.train",
         "expected one of frozen, last_layers, full"),
    ],
)  # fmt: skip
def test_a_backbone_that_does_not_fit_is_a_422_naming_it(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    text_dataset: Dataset,
    backbones: Any,
    extra: dict[str, Any],
    field: str,
    words: str,
) -> None:
    _worker(db_session, "w1@host", [MINILM, TINY])
    response = client.post(
        "/api/v1/jobs", headers=auth, json=_job(text_dataset, backbones, **extra)
    )
    assert response.status_code == 422, response.text
    problems = {item["field"]: item["msg"] for item in response.json()["detail"]}
    assert field in problems, problems
    assert words in problems[field]


def test_a_fitting_backbone_is_stored_with_the_job(
    client: TestClient, auth: dict[str, str], db_session: Session, text_dataset: Dataset
) -> None:
    _worker(db_session, "w1@host", [MINILM, TINY])
    backbones = {"caption": {**PRETRAINED, "pooling": "cls"}, "v": {"encoder": "mlp"}}
    response = client.post("/api/v1/jobs", headers=auth, json=_job(text_dataset, backbones))
    assert response.status_code == 202, response.text
    assert response.json()["spec"]["backbones"] == {
        "caption": {"encoder": "pretrained", "model": "tiny-bert", "train": "frozen",
                    "pooling": "cls"},
        "v": {"encoder": "mlp"},
    }  # fmt: skip


def test_with_no_worker_serving_the_model_is_left_to_the_worker(
    client: TestClient, auth: dict[str, str], text_dataset: Dataset
) -> None:
    unknown = {"caption": {"encoder": "pretrained", "model": "not-installed-yet"}}
    response = client.post("/api/v1/jobs", headers=auth, json=_job(text_dataset, unknown))
    assert response.status_code == 202, response.text
    # What no model can fit is refused still.
    wrong = {**unknown, "v": {"encoder": "pretrained", "model": "x"}}
    response = client.post("/api/v1/jobs", headers=auth, json=_job(text_dataset, wrong))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "backbones.v.encoder"


def test_backbones_are_strictly_typed_and_documented(
    client: TestClient, auth: dict[str, str], text_dataset: Dataset
) -> None:
    bad = {"caption": {"encoder": "pretrained", "model": 3}}
    response = client.post("/api/v1/jobs", headers=auth, json=_job(text_dataset, bad))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "backbones", "caption", "model"]
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    entry = schemas["BackboneEntry"]
    assert entry["additionalProperties"] is False
    assert entry["properties"]["encoder"]["enum"] == [
        "mlp", "gru", "transformer", "cnn", "identity", "pretrained",
    ]  # fmt: skip
    assert entry["properties"]["train"]["enum"] == ["frozen", "last_layers", "full"]
    assert entry["properties"]["pooling"]["enum"] == ["mean", "cls"]
    backbones = schemas["JobCreate"]["properties"]["backbones"]
    ref = {"$ref": "#/components/schemas/BackboneEntry"}
    assert backbones["anyOf"][0]["additionalProperties"] == ref
    assert schemas["ModelsPublic"]["properties"]["data"]["items"] == {
        "$ref": "#/components/schemas/ModelPublic"
    }


def test_the_dataset_shows_its_kinds_and_its_cached_features(
    client: TestClient, auth: dict[str, str], text_dataset: Dataset
) -> None:
    body = client.get(f"/api/v1/datasets/{text_dataset.id}", headers=auth).json()
    assert body["features"] == []
    assert [(m["name"], m["kind"]) for m in body["summary"]["modalities"]] == [
        ("caption", "text"),
        ("v", "vector"),  # an older summary: the kind follows from the shape
    ]
    knobs = client.get("/api/v1/knobs", headers=auth).json()
    pretrained = next(e for e in knobs["backbones"]["encoders"] if e["name"] == "pretrained")
    assert pretrained["accepts"] == ["text", "image", "audio"]

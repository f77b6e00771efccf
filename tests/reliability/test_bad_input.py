"""Bad input, really injected: a corpus of malformed dataset uploads and job specs, each sent to
the API (PostgreSQL and SQLite). Every one gets a 4xx naming the field and the reason, stores
nothing (no rows, no files in the artifact store or the temp folder, no task sent) and leaves the
server serving. A pickle whose unpickling would create a marker file is never unpickled."""

from __future__ import annotations

import io
import pickle
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest_r2 import World, files_under, row_counts, seed_world, zip_bytes
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

URL = "/api/v1"
N = 40


class TouchOnUnpickle:
    """Unpickling this object opens (creates) ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "a"))


def base_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_a": rng.normal(size=(N, 4)).astype(np.float32),
        "x_b": rng.normal(size=(N, 3)).astype(np.float32),
        "y": np.arange(N, dtype=np.int64) % 2,
        "split": np.repeat(np.array([0, 1, 2], dtype=np.int8), [28, 6, 6]),
    }


def npz(**changes: Any) -> bytes:
    """The valid dataset with ``changes`` applied (None removes a key)."""
    arrays: dict[str, Any] = base_arrays()
    arrays.update(changes)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=True, **{k: v for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def with_nan() -> bytes:
    x = base_arrays()["x_a"]
    x[5, 1] = np.nan
    return npz(x_a=x)


def with_inf() -> bytes:
    x = base_arrays()["x_b"]
    x[7, 0] = -np.inf
    return npz(x_b=x)


@lru_cache(maxsize=1)
def zip_bomb() -> bytes:
    """~20 KB on the wire, 20 MB of zeros once inflated (ratio ~1000:1)."""
    members = {k + ".npy": npy(v) for k, v in base_arrays().items()}
    members["x_a.npy"] = npy(np.zeros((N, 125_000), dtype=np.float32))
    return zip_bytes(members)


def forged_header() -> bytes:
    """A member whose .npy header claims 8 TB of float64."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    members = {k + ".npy": npy(v) for k, v in base_arrays().items()}
    members["x_a.npy"] = header.getvalue() + b"\0" * 64
    return zip_bytes(members)


def pickle_member(marker: str, key: str) -> bytes:
    evil = np.array([TouchOnUnpickle(marker)] * N, dtype=object)
    return npz(**{key: evil})


# name -> (file bytes builder, field named in the answer, words of the reason)
UPLOADS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "unknown key": (lambda: npz(extra=np.zeros(3)), "extra", "unknown array"),
    "wrong key names": (lambda: npz(features=np.zeros((N, 2))), "features", "unknown array"),
    "missing y": (lambda: npz(y=None), "y", "missing"),
    "one modality": (lambda: npz(x_b=None), "x_<modality>", "at least two"),
    "mismatched lengths": (lambda: npz(x_b=np.zeros((N - 1, 3))), "x_b", "samples but y has"),
    "split length": (lambda: npz(split=np.zeros(N - 1, dtype=int)), "split", "shape"),
    "nan": (with_nan, "x_a", "NaN or infinite"),
    "inf": (with_inf, "x_b", "NaN or infinite"),
    "negative label": (lambda: npz(y=np.arange(N) % 2 - 1), "y", "0..K-1"),
    "label too large": (lambda: npz(y=(np.arange(N) % 2) * 10**6), "y", "below"),
    "one class": (lambda: npz(y=np.zeros(N, dtype=int)), "y", "two classes"),
    "empty test split": (lambda: npz(split=np.arange(N) % 2), "split", "test split (2) is empty"),
    "split value 7": (lambda: npz(split=np.full(N, 7)), "split", "values must be"),
    "empty y": (lambda: npz(y=np.zeros(0, dtype=int)), "y", "empty"),
    "float labels": (lambda: npz(y=np.arange(N) % 2 * 1.0), "y", "integer"),
    "int features": (lambda: npz(x_a=np.ones((N, 4), dtype=np.int32)), "x_a", "float"),
    "string features": (lambda: npz(x_a=np.full((N, 4), "a")), "x_a", "one string per sample"),
    "truncated": (lambda: npz()[:300], "file", "truncated"),
    "truncated tail": (lambda: npz()[:-40], "file", "truncated"),
    "not a zip": (lambda: b"x_a,x_b,y\n1,2,0\n", "file", "not a zip"),
    "empty file": (lambda: b"", "file", "not a readable"),
    "zip bomb": (zip_bomb, "x_a", "compression ratio"),
    "forged header": (forged_header, "x_a", "but the archive member holds"),
}


def _problem_text(body: Any) -> str:
    """All 'loc' paths and messages of an error body, as one string."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    assert isinstance(detail, list) and detail, body
    return " | ".join(".".join(map(str, d.get("loc", []))) + ": " + d["msg"] for d in detail)


def assert_rejected(response: Any, field: str, reason: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    text = _problem_text(response.json())
    assert field in text, f"field {field!r} not named in {text!r}"
    assert reason.lower() in text.lower(), f"reason {reason!r} not in {text!r}"
    assert "Traceback" not in response.text


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The process temp folder, redirected to an empty folder this test can inspect."""
    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def assert_nothing_stored(client: TestClient, session: Session, app: Any, tmp: Path) -> None:
    counts = row_counts(session)
    assert counts["datasets"] == 0 and counts["jobs"] == 0, counts
    assert files_under(app.state.settings.artifact_root) == []
    assert app.state.producer.queue_depth() == 0  # no task sent
    assert files_under(tmp) == []
    assert client.get(f"{URL}/health").json() == {"status": "ok"}


@pytest.mark.parametrize("case", sorted(UPLOADS))
def test_malformed_upload_is_refused_and_nothing_is_stored(
    case: str,
    client: TestClient,
    app: Any,
    db_session: Session,
    auth: dict[str, str],
    private_tmp: Path,
) -> None:
    build, field, reason = UPLOADS[case]
    files = {"file": ("data.npz", build(), "application/octet-stream")}
    response = client.post(f"{URL}/datasets", headers=auth, files=files)
    assert_rejected(response, field, reason)
    assert_nothing_stored(client, db_session, app, private_tmp)


def test_control_the_corpus_base_file_is_accepted(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    """The corpus mutates a file the API accepts: each rejection is due to its one change."""
    files = {"file": ("data.npz", npz(), "application/octet-stream")}
    response = client.post(f"{URL}/datasets", headers=auth, files=files)
    assert response.status_code == 201, response.text
    assert row_counts(db_session)["datasets"] == 1


@pytest.mark.parametrize(
    ("request_kwargs", "field", "reason"),
    [
        ({"content": b"raw bytes", "headers": {"Content-Type": "text/plain"}}, "file", "multipart"),
        ({"data": {"name": "no file"}, "files": {"other": ("a", b"x")}}, "file", "missing"),
    ],
)
def test_malformed_multipart_is_refused(
    request_kwargs: dict[str, Any],
    field: str,
    reason: str,
    client: TestClient,
    app: Any,
    db_session: Session,
    auth: dict[str, str],
    private_tmp: Path,
) -> None:
    headers = {**auth, **request_kwargs.pop("headers", {})}
    response = client.post(f"{URL}/datasets", headers=headers, **request_kwargs)
    assert_rejected(response, field, reason)
    assert_nothing_stored(client, db_session, app, private_tmp)


def test_nul_in_dataset_name_is_refused(
    client: TestClient, app: Any, db_session: Session, auth: dict[str, str], private_tmp: Path
) -> None:
    files = {"file": ("d.npz", npz(), "application/octet-stream")}
    response = client.post(f"{URL}/datasets", headers=auth, files=files, data={"name": "a\x00b"})
    assert_rejected(response, "name", "NUL")
    assert_nothing_stored(client, db_session, app, private_tmp)


@pytest.mark.parametrize("key", ["x_evil", "y", "x_a"])
def test_pickle_inside_the_npz_is_never_unpickled(
    key: str,
    client: TestClient,
    app: Any,
    db_session: Session,
    auth: dict[str, str],
    private_tmp: Path,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "unpickled.marker"
    payload = pickle_member(str(marker), key)
    assert not marker.exists()
    for body in (payload, pickle.dumps(TouchOnUnpickle(str(marker)))):
        files = {"file": ("evil.npz", body, "application/octet-stream")}
        response = client.post(f"{URL}/datasets", headers=auth, files=files)
        assert response.status_code == 422, response.text
        assert not marker.exists(), "the API unpickled an uploaded object"
    assert_rejected(
        client.post(f"{URL}/datasets", headers=auth, files={"file": ("e.npz", payload)}),
        key,
        "pickled",
    )
    assert_nothing_stored(client, db_session, app, private_tmp)
    # Control: the payload is armed; loading it with pickles allowed does create the marker.
    np.load(io.BytesIO(payload), allow_pickle=True)[key]
    assert marker.exists()


def _valid_spec(dataset_id: str) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "methods": ["vanilla", "synib"],
        "sweep": {"lambda": {"type": "grid", "values": [0.1, 1.0]}},
        "seeds": [0, 1],
        "epochs": 2,
    }


# name -> (change to the valid spec, field named, words of the reason)
SPECS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown knob": ({"config": {"lamda": 1.0}}, "config.lamda", "unknown knob"),
    "bad knob value": ({"config": {"lr": -0.1}}, "config.lr", "expected"),
    "bad knob type": ({"config": {"hidden": "big"}}, "config.hidden", "expected"),
    "bad choice": ({"config": {"optimizer": "adagrad"}}, "config.optimizer", "expected"),
    "bad sweep type": (
        {"sweep": {"lambda": {"type": "gauss", "values": [1]}}},
        "sweep.lambda.type",
        "'grid'",
    ),
    "low above high": (
        {"sweep": {"lambda": {"type": "uniform", "low": 5.0, "high": 1.0}}},
        "sweep.lambda.low",
        "must be below high",
    ),
    "sweep unknown knob": ({"sweep": {"zeta": {"type": "grid", "values": [1]}}}, "zeta", "unknown"),
    "empty sweep values": (
        {"sweep": {"lambda": {"type": "grid", "values": []}}},
        "values",
        "empty",
    ),
    "empty methods": ({"methods": []}, "methods", "at least 1"),
    "unknown method": ({"methods": ["vanilla", "magic"]}, "methods[1]", "unknown method"),
    "repeated method": ({"methods": ["synib", "synib"]}, "methods", "once"),
    "unknown dataset": ({"dataset_id": "no-such-dataset"}, "dataset_id", "no dataset"),
    "empty seeds": ({"seeds": []}, "seeds", "at least 1"),
    "duplicated seeds": ({"seeds": [1, 1]}, "seeds", "unique"),
    "negative seed": ({"seeds": [-1]}, "seeds[0]", "must be in 0..2147483647"),
    "huge trial count": (
        {
            "sweep": {"lambda": {"type": "uniform", "low": 0.0, "high": 9.0}},
            "num_samples": 1000,
            "seeds": list(range(10)),
        },
        "sweep",
        "at most",
    ),
    "methods not a list": ({"methods": "synib"}, "methods", "valid list"),
    "seeds of strings": ({"seeds": ["zero"]}, "seeds", "valid integer"),
    "config not an object": ({"config": [1, 2]}, "config", "valid dictionary"),
    "epochs zero": ({"epochs": 0}, "epochs", "greater than or equal to 1"),
    "unknown top-level field": ({"priority": "high"}, "priority", "not permitted"),
    "nul in name": ({"name": "job\x00"}, "name", "NUL"),
}


@pytest.fixture
def alice(db_session: Session, app: Any) -> World:
    return seed_world(db_session, app.state.store, "alice")


@pytest.fixture
def bob(db_session: Session, app: Any) -> World:
    return seed_world(db_session, app.state.store, "bob")


def _assert_no_new_job(client: TestClient, session: Session, app: Any, before: int) -> None:
    assert row_counts(session)["jobs"] == before
    assert app.state.producer.queue_depth() == 0  # no task sent
    assert client.get(f"{URL}/health").json() == {"status": "ok"}


@pytest.mark.parametrize("case", sorted(SPECS))
def test_malformed_job_spec_is_refused_and_nothing_is_stored(
    case: str, client: TestClient, app: Any, db_session: Session, alice: World
) -> None:
    change, field, reason = SPECS[case]
    before = row_counts(db_session)["jobs"]
    spec = {**_valid_spec(alice.dataset_id), **change}
    response = client.post(f"{URL}/jobs", headers=alice.auth, json=spec)
    assert_rejected(response, field, reason)
    _assert_no_new_job(client, db_session, app, before)


def test_control_the_valid_spec_is_accepted(
    client: TestClient, db_session: Session, alice: World
) -> None:
    response = client.post(f"{URL}/jobs", headers=alice.auth, json=_valid_spec(alice.dataset_id))
    assert response.status_code == 202, response.text
    assert response.json()["trials_total"] == 2 + 2 * 2  # vanilla ignores lambda


def test_another_users_dataset_is_refused(
    client: TestClient, app: Any, db_session: Session, alice: World, bob: World
) -> None:
    before = row_counts(db_session)["jobs"]
    response = client.post(f"{URL}/jobs", headers=alice.auth, json=_valid_spec(bob.dataset_id))
    assert_rejected(response, "dataset_id", "no dataset")
    assert bob.dataset_id in response.text  # names the id it could not find, nothing more
    _assert_no_new_job(client, db_session, app, before)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"methods: [synib]", "application/json", 422, "JSON decode error"),
        (b'{"dataset_id": "x", ', "application/json", 422, "JSON decode error"),
        (b'{"name": "\xc3\x28"}', "application/json", 400, "parsing the body"),
        (b"[1, 2, 3]", "application/json", 422, "valid dictionary"),
        (b"dataset_id=x", "application/x-www-form-urlencoded", 422, "valid dictionary"),
        (b"", "application/json", 422, "Field required"),
    ],
)
def test_non_json_bodies_are_refused(
    body: bytes,
    content_type: str,
    status: int,
    reason: str,
    client: TestClient,
    app: Any,
    db_session: Session,
    alice: World,
) -> None:
    before = row_counts(db_session)["jobs"]
    headers = {**alice.auth, "Content-Type": content_type}
    response = client.post(f"{URL}/jobs", headers=headers, content=body)
    assert_rejected(response, "body", reason, status=status)
    _assert_no_new_job(client, db_session, app, before)

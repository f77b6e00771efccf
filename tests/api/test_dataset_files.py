"""Files of uploads: the same file uploaded again is the same dataset (per user), an unwritable
artifact store answers 503 with Retry-After (and works again once it is fixed), files and
folders are owner-only, and no upload, however it ends, leaves a temporary file behind."""

from __future__ import annotations

import errno
import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from api_factories import N, npz_bytes
from fastapi.testclient import TestClient
from storage_testing import unwritable_folder

from api.main import create_app
from api.routes.datasets import REUSED_HEADER
from infra.settings import Settings
from infra.storage import StorageError

URL = "/api/v1/datasets"


def _temp_files(settings: Settings) -> list[str]:
    folder = settings.artifact_root / ".tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _upload(client: TestClient, auth: dict[str, str], payload: bytes, name: str = "d") -> Any:
    return client.post(
        URL, headers=auth, files={"file": (f"{name}.npz", payload)}, data={"name": name}
    )


def test_the_same_file_uploaded_again_is_the_dataset_already_there(
    client: TestClient,
    auth: dict[str, str],
    make_token,
    api_settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    payload = npz_bytes()
    first = _upload(client, auth, payload, "first")
    assert first.status_code == 201, first.text
    assert REUSED_HEADER not in first.headers
    for name in ("second", "third"):
        again = _upload(client, auth, payload, name)
        assert again.status_code == 200, again.text
        assert again.headers[REUSED_HEADER] == "true"
        assert again.json() == first.json()  # the existing dataset, name and all
    assert client.get(URL, headers=auth).json()["count"] == 1
    assert len(list((api_settings.artifact_root / "datasets").iterdir())) == 1

    other = _upload(client, auth, npz_bytes(x_b=np.ones((N, 3), dtype=np.float32)))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]

    bob = {"Authorization": f"Bearer {make_token('bob')[0]}"}
    bobs = _upload(client, bob, payload)  # users never share datasets
    assert bobs.status_code == 201 and bobs.json()["id"] != first.json()["id"]

    dataset_id = first.json()["id"]
    assert client.delete(f"{URL}/{dataset_id}", headers=auth).status_code == 204
    anew = _upload(client, auth, payload)  # a deleted dataset is not reused
    assert anew.status_code == 201 and anew.json()["id"] != dataset_id


def test_an_unwritable_store_is_503_with_retry_after_until_it_is_fixed(
    client: TestClient, auth: dict[str, str], api_settings: Settings
) -> None:
    kept = _upload(client, auth, npz_bytes(x_b=np.ones((N, 3), dtype=np.float32)))
    assert kept.status_code == 201
    root = api_settings.artifact_root
    payload = npz_bytes()
    with unwritable_folder(root) as how:
        refused = _upload(client, auth, payload)
        not_deleted = client.delete(f"{URL}/{kept.json()['id']}", headers=auth)
    for response in (refused, not_deleted):
        assert response.status_code == 503, (how, response.status_code, response.text)
        assert int(response.headers["Retry-After"]) > 0
        detail = response.json()["detail"]
        assert detail.startswith("artifact storage is ") and "try again later" in detail, detail
        assert str(root) not in response.text  # no server path leaks
    # The failed delete changed nothing: the dataset is still there, and deletes now.
    assert client.get(f"{URL}/{kept.json()['id']}", headers=auth).status_code == 200
    assert client.delete(f"{URL}/{kept.json()['id']}", headers=auth).status_code == 204
    stored = _upload(client, auth, payload)
    assert stored.status_code == 201, stored.text
    assert _temp_files(api_settings) == []


def test_stored_files_are_owner_only(
    client: TestClient, auth: dict[str, str], api_settings: Settings
) -> None:
    root = api_settings.artifact_root
    root.mkdir(parents=True)
    root.chmod(0o755)  # as an older version left it
    response = _upload(client, auth, npz_bytes())
    assert response.status_code == 201, response.text
    stored = root / "datasets" / f"{response.json()['id']}.npz"
    modes = {p: p.stat().st_mode & 0o777 for p in (root, root / ".tmp", root / "datasets")}
    assert modes == {root: 0o700, root / ".tmp": 0o700, root / "datasets": 0o700}
    assert stored.stat().st_mode & 0o777 == 0o600


@pytest.fixture
def served(api_settings: Settings) -> Iterator[tuple[int, Settings]]:
    """The app (uploads up to 1 MB) served by uvicorn in a thread: a real socket, so that a
    client can go away mid-body; yields (port, settings)."""
    settings = api_settings.model_copy(update={"max_upload_mb": 1.0})
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1], settings
    server.should_exit = True
    thread.join(timeout=10)


def _wait_for_temp_files(settings: Settings, present: bool) -> list[str]:
    """The temporary folder's files once some are there (``present``) or none are left."""
    deadline = time.monotonic() + 20
    while bool(files := _temp_files(settings)) != present and time.monotonic() < deadline:
        time.sleep(0.01)
    return files


def test_interrupted_and_refused_uploads_leave_no_temp_file(
    served: tuple[int, Settings], user_token: tuple[str, str]
) -> None:
    """A client that goes away mid-body, an upload over the limit, a bad file: nothing stays
    in the store's temporary folder (a crashed process's files are the housekeeping's)."""
    port, settings = served
    head = (
        b"POST /api/v1/datasets HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
        + user_token[0].encode()
        + b"\r\nContent-Type: multipart/form-data; boundary=BB\r\nContent-Length: 900000\r\n"
        + b'\r\n--BB\r\nContent-Disposition: form-data; name="file"; filename="a.npz"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + b"x" * 100_000)
        assert _wait_for_temp_files(settings, present=True), "the upload never reached the store"
    assert _wait_for_temp_files(settings, present=False) == []

    auth = {"Authorization": f"Bearer {user_token[0]}"}
    url = f"http://127.0.0.1:{port}{URL}"
    big = npz_bytes(x_a=np.zeros((N, 10_000), dtype=np.float32))
    assert httpx.post(url, headers=auth, files={"file": ("big.npz", big)}).status_code == 413
    bad = httpx.post(url, headers=auth, files={"file": ("bad.npz", b"not a zip")})
    assert bad.status_code == 422
    assert _temp_files(settings) == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "not writable (permission denied)"),
        (errno.EROFS, "not writable (read-only filesystem)"),
        (errno.ENOSPC, "full (no space left on the device)"),
    ],
)
def test_storage_errors_read_as_one_line_without_the_path(code: int, reason: str) -> None:
    cause = OSError(code, os.strerror(code), "/srv/synib/artifacts/.tmp/x.npz")
    error = StorageError("receiving an upload", cause)
    assert str(error) == f"artifact storage is {reason} while receiving an upload"
    assert isinstance(error, OSError) and error.errno == code and error.cause is cause
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.errno) == (str(error), code)

"""The artifact store in a bucket (``infra.object_store.S3Store``) against moto's S3 server on
loopback: put / open_read / size / exists / delete / local_copy / is_writable, unsafe paths,
the settings that name it, and a store whose endpoint is down (StorageError, the API's 503)."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pytest
from processes import free_port
from s3_server import S3Server

from infra.object_store import S3Store, open_store, tune_storage
from infra.settings import Settings
from infra.storage import StorageError, UnsafePathError


def s3_settings(s3: S3Server, tmp_path: Path, prefix: str, **more: object) -> Settings:
    env = s3.env(prefix)
    return Settings(
        state_dir=tmp_path / "state",
        storage_uri=env["SYNIB_STORAGE_URI"],
        s3_endpoint_url=env["SYNIB_S3_ENDPOINT_URL"],
        s3_region=env["SYNIB_S3_REGION"],
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(s3: S3Server, tmp_path: Path) -> S3Store:
    opened = open_store(s3_settings(s3, tmp_path, f"unit-{secrets.token_hex(3)}"))
    assert isinstance(opened, S3Store)
    return opened


def staged(store: S3Store, payload: bytes, suffix: str = ".bin") -> Path:
    tmp = store.new_temp_file(suffix)
    tmp.write_bytes(payload)
    return tmp


def test_put_read_size_exists_delete(s3: S3Server, store: S3Store) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    tmp = staged(store, payload)
    assert tmp.is_relative_to(store.local_dir / "tmp") and tmp.stat().st_mode & 0o777 == 0o600
    store.put(tmp, "jobs/j1/t1/model.zip")
    assert not tmp.exists()  # moved: the local file is gone
    prefix = store.base.split("/", 1)[1]
    assert s3.keys(prefix) == {f"{prefix}/jobs/j1/t1/model.zip": len(payload)}
    assert store.exists("jobs/j1/t1/model.zip") and not store.exists("jobs/j1/t1/other")
    assert store.size("jobs/j1/t1/model.zip") == len(payload)
    with store.open_read("jobs/j1/t1/model.zip") as fh:
        fh.seek(len(payload) - 100)
        assert fh.read(1000) == payload[-100:]
    assert store.sha256("jobs/j1/t1/model.zip") == (
        hashlib.sha256(payload).hexdigest(),
        len(payload),
    )
    store.put(staged(store, b"{}"), "jobs/j1/report.json")
    store.delete("jobs/j1")  # a folder: everything under it
    assert s3.keys(prefix) == {}
    store.delete("jobs/j1")  # missing: fine
    store.delete("../escape")  # unsafe: ignored
    for missing in (store.size, store.open_read, store.local_copy, store.sha256):
        with pytest.raises(FileNotFoundError):
            missing("jobs/j1/t1/model.zip")


def test_local_copy_is_cached_and_refreshed(store: S3Store) -> None:
    store.put(staged(store, b"first"), "datasets/d.npz")
    copy = store.local_copy("datasets/d.npz")
    assert copy.read_bytes() == b"first"
    assert copy.is_relative_to(store.local_dir / "storage-cache")
    assert copy.stat().st_mode & 0o777 == 0o600
    old = copy.stat().st_mtime_ns
    assert store.local_copy("datasets/d.npz") == copy and copy.read_bytes() == b"first"
    store.put(staged(store, b"second!"), "datasets/d.npz")  # another size: downloaded again
    assert store.local_copy("datasets/d.npz").read_bytes() == b"second!"
    assert copy.stat().st_mtime_ns >= old
    os.utime(copy, (1, 1))  # unused for long: the housekeeping removes it, and stale temp files
    stale = store.new_temp_file(".npz")
    os.utime(stale, (1, 1))
    fresh = store.new_temp_file(".npz")
    removed = store.remove_stale_temp_files(3600)
    assert sorted(removed) == sorted([stale.name, "storage-cache/datasets/d.npz"])
    assert fresh.exists() and not stale.exists() and not copy.exists()
    assert store.exists("datasets/d.npz")  # the object itself stays


@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../x", "jobs/../../x", "a\\b", "a//b", "a/./b", "a/", "nul\x00"]
)
def test_unsafe_paths_are_rejected(store: S3Store, bad: str) -> None:
    with pytest.raises(UnsafePathError):
        store.key(bad)
    with pytest.raises(UnsafePathError):
        store.exists(bad)
    tmp = staged(store, b"x")
    with pytest.raises(UnsafePathError):
        store.put(tmp, bad)


def test_is_writable_writes_and_deletes_a_probe(s3: S3Server, store: S3Store) -> None:
    prefix = store.base.split("/", 1)[1]
    assert store.is_writable() and store.is_ready()
    assert s3.keys(prefix) == {}


def test_endpoint_down_is_a_storage_error_without_keys(s3: S3Server, tmp_path: Path) -> None:
    down = Settings(
        state_dir=tmp_path / "state",
        storage_uri=f"s3://{s3.bucket}/secret-prefix",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
    )
    store = open_store(down)
    tmp = staged(store, b"payload")  # type: ignore[arg-type]
    with pytest.raises(StorageError) as caught:
        store.put(tmp, "datasets/x.npz")
    message = str(caught.value)
    assert message.startswith("artifact storage is unavailable (object store error ")
    assert "secret-prefix" not in message and "127.0.0.1" not in message
    for call in (store.exists, store.open_read, store.delete):  # each try takes ~1 s
        with pytest.raises(StorageError):
            call("datasets/x.npz")
    assert not store.is_ready()  # a probe object cannot be written


def test_settings_name_the_bucket_and_reject_credentials(s3: S3Server, tmp_path: Path) -> None:
    settings = s3_settings(s3, tmp_path, "p/q/")
    assert settings.storage_uri == f"s3://{s3.bucket}/p/q"
    assert settings.tune_storage_path == f"s3://{s3.bucket}/p/q/tune"
    path, filesystem = tune_storage(settings)
    assert path == f"{s3.bucket}/p/q/tune" and filesystem.type_name == "s3"
    assert tune_storage(Settings(state_dir=tmp_path))[1] is None  # local: a folder, no fs
    for bad, reason in (
        ("/some/folder", "is not s3://bucket/prefix"),
        ("s3://key:secret@bucket/p", "credentials come from the environment"),
        ("s3://bucket/a/../b", "'..' part"),
        ("gs://bucket", "is not s3://bucket/prefix"),
    ):
        with pytest.raises(ValueError, match="storage_uri") as caught:
            Settings(storage_uri=bad)
        assert reason in str(caught.value)
    with pytest.raises(ValueError, match="s3_endpoint_url"):
        Settings(s3_endpoint_url="http://user:pw@minio:9000")
    with pytest.raises(ValueError, match="s3_endpoint_url"):
        Settings(s3_endpoint_url="minio:9000")
    assert "secret" not in repr(Settings(storage_uri="s3://b/p"))

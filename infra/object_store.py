"""The artifact store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW) through pyarrow's
filesystem layer (``pyarrow.fs.S3FileSystem``), and ``open_store(settings)``, which picks it or
the local folder.

``SYNIB_STORAGE_URI=s3://bucket/prefix`` puts every stored file at ``prefix/<relative path>`` of
the bucket; ``SYNIB_S3_ENDPOINT_URL`` points at a store other than AWS. Credentials are never
settings: pyarrow's default AWS chain reads them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
~/.aws/credentials and config, an instance role), in each process, so they are neither logged
nor pickled with the filesystem (Ray ships it to the trials without them).

Temporary files stay on local disk (``<state_dir>/tmp``) and ``put`` uploads them; readers that
need a local file (``np.load`` of a dataset) get a cached download under
``<state_dir>/storage-cache`` (reused while the object's size is unchanged; the housekeeping
removes entries unused for ``temp_file_max_age_s``). A failed request comes out as
``StorageError`` whose one-line reason names the store's error code only, never a key.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.settings import Settings
from infra.storage import (
    CHUNK_BYTES,
    FILE_MODE,
    ArtifactStore,
    StorageError,
    Store,
    UnsafePathError,
    make_private_dirs,
    private_temp_file,
    remove_files_older_than,
    safe_relative,
)

log = logging.getLogger(__name__)

TMP_FOLDER = "tmp"
CACHE_FOLDER = "storage-cache"
_AWS_ERROR = re.compile(r"AWS Error ([A-Z_]+)")


@contextmanager
def s3_errors(action: str) -> Iterator[None]:
    """An ``OSError`` of the object store (but a missing key) as ``StorageError(action)`` with
    a reason that names only the store's error code; the full error is logged."""
    try:
        yield
    except (StorageError, FileNotFoundError):
        raise
    except OSError as exc:
        log.warning("object store: %s failed: %s", action, exc)
        found = _AWS_ERROR.search(str(exc))
        code = found.group(1) if found else type(exc).__name__
        cause = OSError(errno.EIO, f"object store error {code}")
        raise StorageError(action, cause) from exc


def s3_filesystem(settings: Settings) -> Any:
    """A ``pyarrow.fs.S3FileSystem`` for ``settings`` (endpoint, region); credentials from
    pyarrow's default AWS chain."""
    from pyarrow import fs

    options: dict[str, Any] = {}
    if settings.s3_endpoint_url:
        endpoint = urlsplit(settings.s3_endpoint_url)
        options["endpoint_override"] = endpoint.netloc
        options["scheme"] = endpoint.scheme
    if settings.s3_region:
        options["region"] = settings.s3_region
    return fs.S3FileSystem(**options)


def bucket_path(storage_uri: str) -> str:
    """``s3://bucket/prefix`` -> ``bucket/prefix`` (the path form pyarrow's S3FileSystem takes)."""
    return storage_uri.removeprefix("s3://").strip("/")


def open_store(settings: Settings) -> Store:
    """The store ``settings`` name: ``S3Store`` for ``storage_uri``, else the local folder."""
    if not settings.storage_uri:
        return ArtifactStore(settings.artifact_root)
    return S3Store(
        s3_filesystem(settings),
        bucket_path(settings.storage_uri),
        local_dir=settings.state_dir,
        location=settings.storage_uri,
    )


def tune_storage(settings: Settings) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for Ray Tune's ``RunConfig``: ``tune_storage`` as it
    is (a folder or a URI, no filesystem); else ``bucket/prefix/tune`` with the store's
    S3FileSystem (endpoint and region as configured); else the local ``<artifact_dir>/tune``."""
    if settings.tune_storage or not settings.storage_uri:
        return settings.tune_storage_path, None
    return f"{bucket_path(settings.storage_uri)}/tune", s3_filesystem(settings)


class S3Store(Store):
    """Objects under ``base`` (``bucket/prefix``) of a pyarrow FileSystem; local temporary
    files and cached copies under ``local_dir``."""

    def __init__(self, filesystem: Any, base: str, *, local_dir: Path, location: str) -> None:
        self.fs = filesystem
        self.base = base.strip("/")
        self.local_dir = Path(local_dir)
        self.location = location

    def errors(self, action: str) -> AbstractContextManager[None]:
        return s3_errors(action)

    def key(self, relative: str) -> str:
        """The object key (``bucket/prefix/relative``) of a safe relative path."""
        return f"{self.base}/{safe_relative(relative)}"

    def new_temp_file(self, suffix: str = "") -> Path:
        return private_temp_file(self.local_dir / TMP_FOLDER, suffix)

    def put(self, source: Path, relative: str) -> None:
        """Upload ``source`` to ``relative`` (one object, complete or absent: a size that does
        not match afterwards deletes it and raises), then remove ``source``."""
        key = self.key(relative)
        expected = source.stat().st_size
        with s3_errors(f"storing {relative.split('/')[0]}"):
            with source.open("rb") as src, self.fs.open_output_stream(key) as out:
                shutil.copyfileobj(src, out, CHUNK_BYTES)
            stored = self.fs.get_file_info(key).size
            if stored != expected:
                self.fs.delete_file(key)
                raise OSError(errno.EIO, f"AWS Error INCOMPLETE_UPLOAD ({stored} != {expected})")
        source.unlink(missing_ok=True)

    def _info(self, relative: str) -> Any:
        from pyarrow import fs

        key = self.key(relative)
        with s3_errors("reading a file"):
            info = self.fs.get_file_info(key)
        if info.type != fs.FileType.File:
            raise FileNotFoundError(errno.ENOENT, "no such file in the artifact store", relative)
        return info

    def exists(self, relative: str) -> bool:
        try:
            self._info(relative)
        except FileNotFoundError:
            return False
        return True

    def size(self, relative: str) -> int:
        return int(self._info(relative).size)

    def open_read(self, relative: str) -> Any:
        key = self.key(relative)
        with s3_errors("reading a file"):
            return self.fs.open_input_file(key)

    def local_copy(self, relative: str) -> Path:
        """The cached download of ``relative`` (``<local_dir>/storage-cache/<relative>``), made
        again when the object's size differs; written whole to a temporary name, then renamed."""
        size = self.size(relative)
        cached = self.local_dir / CACHE_FOLDER / safe_relative(relative)
        if cached.is_file() and cached.stat().st_size == size:
            os.utime(cached)  # recently used: the housekeeping keeps it
            return cached
        with s3_errors("caching a file"):
            make_private_dirs(cached.parent)
            partial = cached.with_name(f".{cached.name}.{secrets.token_hex(4)}.part")
            try:
                with self.open_read(relative) as src, partial.open("wb") as out:
                    os.chmod(partial, FILE_MODE)
                    shutil.copyfileobj(src, out, CHUNK_BYTES)
                os.replace(partial, cached)
            finally:
                partial.unlink(missing_ok=True)
        return cached

    def delete(self, relative: str) -> None:
        """Remove the object at ``relative``, or every object under it as a folder."""
        from pyarrow import fs

        try:
            key = self.key(relative)
        except UnsafePathError:
            return
        with s3_errors("deleting a file"):
            kind = self.fs.get_file_info(key).type
            if kind == fs.FileType.File:
                self.fs.delete_file(key)
            elif kind == fs.FileType.Directory:
                self.fs.delete_dir(key)

    def remove_stale_temp_files(self, older_than_s: float) -> list[str]:
        """Local temporary files and cached downloads unused for ``older_than_s`` seconds."""
        cutoff = time.time() - older_than_s
        with s3_errors("removing stale temporary files"):
            removed = remove_files_older_than(self.local_dir / TMP_FOLDER, cutoff)
            cached = remove_files_older_than(self.local_dir / CACHE_FOLDER, cutoff)
        return removed + [f"{CACHE_FOLDER}/{name}" for name in cached]

    def is_writable(self) -> bool:
        """Write and delete a probe object (``<prefix>/.probe-<random>``)."""
        key = f"{self.base}/.probe-{secrets.token_hex(8)}"
        try:
            with self.fs.open_output_stream(key) as out:
                out.write(b"probe")
            self.fs.delete_file(key)
        except OSError as exc:
            log.warning("object store %s is not writable: %s", self.location, exc)
            return False
        return True

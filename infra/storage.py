"""The artifact store: relative paths that can never escape it, over a local folder
(``ArtifactStore``) or an S3-compatible bucket (``infra.object_store.S3Store``); ``Store`` is
what callers use, ``infra.object_store.open_store(settings)`` picks one.

Local file policy: owner-only. Every folder the store makes is 0700 and every file it places is
0600, set with ``chmod`` (independent of the process umask); the root itself is kept 0700, so
what others write below it (Ray Tune's own files under ``<root>/tune``) is reachable only by the
owner. An ``OSError`` of the filesystem (not writable, full, read-only) comes out as
``StorageError``: the API answers 503 with Retry-After, the worker retries. Reads of a missing
file raise ``FileNotFoundError`` (a 404 for the API).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK_BYTES = 1024 * 1024
DIR_MODE = 0o700
FILE_MODE = 0o600
TMP_FOLDER = ".tmp"

_REASONS = {
    errno.EACCES: "not writable (permission denied)",
    errno.EPERM: "not writable (operation not permitted)",
    errno.EROFS: "not writable (read-only filesystem)",
    errno.ENOSPC: "full (no space left on the device)",
    errno.EDQUOT: "full (disk quota exceeded)",
    errno.ENOTDIR: "misconfigured (a path component is not a folder)",
}


class UnsafePathError(ValueError):
    """A relative artifact path that is absolute, contains '..' or resolves outside the root."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path: {path!r} is not a safe relative path inside the artifact store")
        self.path = path


class StorageError(OSError):
    """The artifact store could not be written or read; ``str()`` is one line without paths
    (safe to show a user), ``cause`` keeps the original error for the log."""

    def __init__(self, action: str, cause: OSError) -> None:
        self.reason = _REASONS.get(cause.errno or 0, f"unavailable ({cause.strerror or cause})")
        super().__init__(cause.errno, f"artifact storage is {self.reason} while {action}")
        self.action = action
        self.cause = cause

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[type[StorageError], tuple[str, OSError]]:
        return StorageError, (self.action, self.cause)  # pickled (Celery, Ray) as constructed


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into ``StorageError(action)``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(action, exc) from exc


def sha256_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _raise_unless_missing(_function: object, _path: str, exc_info: tuple) -> None:  # type: ignore[type-arg]
    """``shutil.rmtree``'s error hook: a file already gone is fine, anything else raises."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each 0700 (owner only, whatever the umask)."""
    missing = []
    current = folder
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not path.is_dir():
                raise
        os.chmod(path, DIR_MODE)


def safe_relative(relative: str) -> PurePosixPath:
    """``relative`` as a POSIX path that stays inside a store's root; UnsafePathError when it is
    empty, absolute, holds '..', an empty part, a NUL or a backslash."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePathError(relative)
    if any(part in ("..", ".", "") for part in relative.split("/")):
        raise UnsafePathError(relative)  # also absolute ("/x"), "a//b" and "a/"
    return PurePosixPath(relative)


def private_temp_file(folder: Path, suffix: str = "") -> Path:
    """An empty 0600 file in ``folder`` (made 0700 if missing); StorageError if that fails."""
    with storage_errors("creating a temporary file"):
        make_private_dirs(folder)
        fd, name = tempfile.mkstemp(dir=folder, suffix=suffix)
        os.close(fd)
    return Path(name)


def remove_files_older_than(folder: Path, cutoff: float) -> list[str]:
    """Delete the files under ``folder`` (recursively) last modified before ``cutoff`` (epoch
    seconds); returns their paths relative to ``folder``. A file gone meanwhile is skipped."""
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.rglob("*")):
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed.append(entry.relative_to(folder).as_posix())
        except FileNotFoundError:
            continue  # moved into place or removed by its writer meanwhile
    return removed


class Store(ABC):
    """Files addressed by POSIX relative paths such as ``datasets/<id>.npz``.

    Writes go through a local temporary file (``new_temp_file``, then ``put``); readers get a
    seekable stream (``open_read``) or a local file (``local_copy``). ``location`` names the
    store in logs (a folder or ``s3://bucket/prefix``; never a credential).
    """

    location: str

    @abstractmethod
    def new_temp_file(self, suffix: str = "") -> Path:
        """An empty 0600 file on local disk (the caller removes or ``put``s it)."""

    @abstractmethod
    def put(self, source: Path, relative: str) -> None:
        """Move the local file ``source`` into the store at ``relative`` (whole or not at all);
        ``source`` is gone afterwards."""

    @abstractmethod
    def exists(self, relative: str) -> bool:
        """Whether a file is stored at ``relative`` (UnsafePathError for an unsafe path)."""

    @abstractmethod
    def size(self, relative: str) -> int:
        """Bytes of the file at ``relative``; FileNotFoundError when there is none."""

    @abstractmethod
    def open_read(self, relative: str) -> Any:
        """The file at ``relative`` open for binary reading, seekable (``seek``, ``read``,
        ``close``, a context manager); FileNotFoundError when there is none."""

    @abstractmethod
    def local_copy(self, relative: str) -> Path:
        """A local file with the content of ``relative`` (the file itself for a local store, a
        cached download otherwise); FileNotFoundError when there is none. Read it, never
        change it."""

    @abstractmethod
    def delete(self, relative: str) -> None:
        """Remove a file or everything under a folder; missing or unsafe paths are ignored."""

    @abstractmethod
    def remove_stale_temp_files(self, older_than_s: float) -> list[str]:
        """Delete local temporary (and cached) files not modified for ``older_than_s``
        seconds; returns their names."""

    @abstractmethod
    def is_writable(self) -> bool:
        """True when a file can be created (and removed) in the store."""

    def is_ready(self) -> bool:
        """The readiness check (GET /ready); by default ``is_writable``."""
        return self.is_writable()

    def errors(self, action: str) -> AbstractContextManager[None]:
        """The store's errors in the block as ``StorageError(action)``."""
        return storage_errors(action)

    def sha256(self, relative: str) -> tuple[str, int]:
        """(sha256 hex, size) of the stored file, read as a stream in chunks;
        FileNotFoundError when it is missing, StorageError when the store fails."""
        digest = hashlib.sha256()
        size = 0
        fh = self.open_read(relative)
        with fh, self.errors("reading a file"):
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size


class ArtifactStore(Store):
    """Files under the local folder ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def resolve(self, relative: str) -> Path:
        """Absolute path of ``relative``; raises UnsafePathError if it could leave the root."""
        pure = safe_relative(relative)
        root = self.root.resolve()
        target = (root / pure).resolve()
        if not target.is_relative_to(root) or target == root:
            raise UnsafePathError(relative)
        return target

    def ensure_root(self) -> Path:
        """The root folder, created if missing; group and others lose any access to it when
        this process owns it. StorageError if that fails."""
        with storage_errors("preparing its folder"):
            make_private_dirs(self.root)
            info = self.root.stat()
            mode = info.st_mode & 0o777
            # Tightened only (an owner's read-only folder stays read-only), and only when ours:
            # a mount point owned by someone else that lets us write is used as it is.
            if mode & 0o077 and info.st_uid == os.geteuid():
                os.chmod(self.root, mode & DIR_MODE)
        return self.root

    def tmp_dir(self) -> Path:
        """A folder inside the store for partial files (same filesystem: atomic moves)."""
        folder = self.ensure_root() / TMP_FOLDER
        with storage_errors("preparing its temporary folder"):
            make_private_dirs(folder)
        return folder

    def new_temp_file(self, suffix: str = "") -> Path:
        """An empty 0600 file in the temporary folder (the caller removes or ``put``s it)."""
        return private_temp_file(self.tmp_dir(), suffix)

    def put(self, source: Path, relative: str) -> None:
        """Move the file ``source`` into the store at ``relative`` (atomic on the same
        filesystem), 0600 in 0700 folders."""
        target = self.resolve(relative)
        self.ensure_root()
        with storage_errors(f"storing {relative.split('/')[0]}"):
            make_private_dirs(target.parent)
            os.chmod(source, FILE_MODE)
            shutil.move(str(source), str(target))

    def exists(self, relative: str) -> bool:
        return self.resolve(relative).is_file()

    def size(self, relative: str) -> int:
        return self.local_copy(relative).stat().st_size

    def open_read(self, relative: str) -> Any:
        path = self.local_copy(relative)
        with storage_errors("reading a file"):
            return path.open("rb")

    def local_copy(self, relative: str) -> Path:
        path = self.resolve(relative)
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no such file in the artifact store", relative)
        return path

    def delete(self, relative: str) -> None:
        """Remove a file (or a bundle folder); missing or unsafe paths are ignored."""
        try:
            target = self.resolve(relative)
        except UnsafePathError:
            return
        with storage_errors("deleting a file"):
            if target.is_dir():
                shutil.rmtree(target, onerror=_raise_unless_missing)
            else:
                target.unlink(missing_ok=True)

    def remove_stale_temp_files(self, older_than_s: float) -> list[str]:
        """Delete files of the temporary folder not modified for ``older_than_s`` seconds (left
        by interrupted uploads or a crashed process); returns their names."""
        with storage_errors("removing stale temporary files"):
            return remove_files_older_than(self.root / TMP_FOLDER, time.time() - older_than_s)

    def is_writable(self) -> bool:
        """True when a file can be created (and removed) in the store."""
        try:
            self.ensure_root()
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                return True
        except OSError:
            return False

    def is_ready(self) -> bool:
        """Whether the folder is writable, asked of the OS: no file is written (the folder
        itself is made once if missing)."""
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
        return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)

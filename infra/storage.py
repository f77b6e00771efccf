"""The artifact store: one local folder; relative paths that can never escape it.

File policy: owner-only. Every folder the store makes is 0700 and every file it places is 0600,
set with ``chmod`` (independent of the process umask); the root itself is kept 0700, so what
others write below it (Ray Tune's own files under ``<root>/tune``) is reachable only by the
owner. An ``OSError`` of the filesystem (not writable, full, read-only) comes out as
``StorageError``: the API answers 503 with Retry-After, the worker retries.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

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


class ArtifactStore:
    """Files under ``root``, addressed by POSIX relative paths such as ``datasets/<id>.npz``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def resolve(self, relative: str) -> Path:
        """Absolute path of ``relative``; raises UnsafePathError if it could leave the root."""
        if not relative or "\x00" in relative or "\\" in relative:
            raise UnsafePathError(relative)
        pure = PurePosixPath(relative)
        if pure.is_absolute() or any(part in ("..", "") for part in pure.parts):
            raise UnsafePathError(relative)
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
        folder = self.tmp_dir()
        with storage_errors("creating a temporary file"):
            fd, name = tempfile.mkstemp(dir=folder, suffix=suffix)
            os.close(fd)
        return Path(name)

    def put(self, source: Path, relative: str) -> Path:
        """Move the file ``source`` into the store at ``relative`` (atomic on the same
        filesystem), 0600 in 0700 folders."""
        target = self.resolve(relative)
        self.ensure_root()
        with storage_errors(f"storing {relative.split('/')[0]}"):
            make_private_dirs(target.parent)
            os.chmod(source, FILE_MODE)
            shutil.move(str(source), str(target))
        return target

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
        folder = self.root / TMP_FOLDER
        if not folder.is_dir():
            return []
        cutoff = time.time() - older_than_s
        removed = []
        with storage_errors("removing stale temporary files"):
            for entry in folder.iterdir():
                try:
                    if entry.is_file() and entry.stat().st_mtime < cutoff:
                        entry.unlink()
                        removed.append(entry.name)
                except FileNotFoundError:
                    continue  # moved into place or removed by its writer meanwhile
        return removed

    def is_writable(self) -> bool:
        """True when a file can be created (and removed) in the store."""
        try:
            self.ensure_root()
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                return True
        except OSError:
            return False

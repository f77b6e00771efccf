"""The artifact store: one local folder; relative paths that can never escape it."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

CHUNK_BYTES = 1024 * 1024


class UnsafePathError(ValueError):
    """A relative artifact path that is absolute, contains '..' or resolves outside the root."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path: {path!r} is not a safe relative path inside the artifact store")
        self.path = path


def sha256_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


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

    def tmp_dir(self) -> Path:
        """A folder inside the store for partial files (same filesystem: atomic moves)."""
        folder = self.root / ".tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def new_temp_file(self, suffix: str = "") -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp_dir(), suffix=suffix)
        os.close(fd)
        return Path(name)

    def put(self, source: Path, relative: str) -> Path:
        """Move ``source`` into the store at ``relative`` (atomic on the same filesystem)."""
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))
        return target

    def delete(self, relative: str) -> None:
        """Remove a file (or a bundle folder); missing or unsafe paths are ignored."""
        try:
            target = self.resolve(relative)
        except UnsafePathError:
            return
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def is_writable(self) -> bool:
        """True when a file can be created (and removed) in the store."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                return True
        except OSError:
            return False

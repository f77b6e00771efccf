"""An artifact folder made unwritable for a test, as a read-only or broken disk would be, also
when the tests run as root (root ignores file modes)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _folders(root: Path) -> list[Path]:
    return [root, *(p for p in root.rglob("*") if p.is_dir())]


def _chattr(flag: str, folders: list[Path]) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    done = subprocess.run([chattr, flag, *map(str, folders)], capture_output=True)
    return done.returncode == 0


@contextmanager
def unwritable_folder(folder: Path) -> Iterator[str]:
    """``folder`` and every folder under it refuse new files until the block ends; yields how:

    - ``chmod`` (not root): mode 0500, writes fail with EACCES;
    - ``chattr`` (root): the immutable attribute, which binds root too (EPERM), where the
      filesystem and the process's capabilities allow it;
    - ``file`` (root without chattr): the folder is moved aside and a regular file takes its
      place, so every path below it fails with ENOTDIR.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folders = _folders(folder)
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode & 0o777 for p in folders}
        for path in folders:
            path.chmod(0o500)
        try:
            yield "chmod"
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    if _chattr("+i", folders):
        try:
            yield "chattr"
        finally:
            assert _chattr("-i", folders), "could not clear the immutable attribute"
        return
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    folder.write_text("not a folder: the artifact store is broken on purpose\n")
    try:
        yield "file"
    finally:
        folder.unlink()
        aside.rename(folder)

"""``credentials.json`` (the admin token ``synib serve`` prints) is readable by its owner only at
every moment: its temporary file is created 0600 (not with the umask and a chmod afterwards),
its folder 0700. Checked under umask 0, where a file created with the default mode is 0666."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from worker import serve


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def modes_at_creation(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(permission bits, size) of each file the writer opens, when it opens it: before the
    first byte of the token is written."""
    seen: list[tuple[int, int]] = []
    real_fdopen = os.fdopen

    def spying_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        info = os.fstat(fd)
        seen.append((stat.S_IMODE(info.st_mode), info.st_size))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", spying_fdopen)
    return seen


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_private_file_is_never_readable_by_others(
    tmp_path: Path, modes_at_creation: list[tuple[int, int]]
) -> None:
    path = tmp_path / "config" / "synib" / "credentials.json"
    serve.write_private_file(path, '{"token": "first"}')
    assert modes_at_creation == [(0o600, 0)]  # created owner-only, still empty
    assert _mode(path) == 0o600 and path.read_text() == '{"token": "first"}'
    assert _mode(path.parent) == 0o700  # the folder it made
    assert _mode(path.parent.parent) == 0o777  # a parent made on the way: the umask's
    path.chmod(0o644)  # an old, too open file is replaced, not reused
    serve.write_private_file(path, '{"token": "second"}')
    assert modes_at_creation[-1] == (0o600, 0)
    assert _mode(path) == 0o600 and path.read_text() == '{"token": "second"}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.json"]  # no temp left


@pytest.mark.usefixtures("open_umask")
def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    serve.write_private_file(folder / "credentials.json", "{}")
    assert _mode(folder) == 0o755 and _mode(folder / "credentials.json") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_serve_writes_its_credentials_owner_only(
    db_url: str, tmp_path: Path, modes_at_creation: list[tuple[int, int]]
) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=db_url,
        config_dir=tmp_path / "config",
    )
    credentials, _ = serve.ensure_credentials(settings)
    path = tmp_path / "config" / "credentials.json"
    assert modes_at_creation == [(0o600, 0)]
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert credentials["token"] in path.read_text()

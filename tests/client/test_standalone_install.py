"""The client installs and runs alone: ``pip install 'synib[client]'`` into a fresh virtualenv
(from a copy of this checkout; httpx and PyYAML pinned by constraints.txt, fetched from PyPI or
pip's cache), then the ``synib`` script of that virtualenv against the live API.

The virtualenv is made once per test session under pytest's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from api_factories import add_job
from live_server import serve_app
from sqlalchemy.orm import Session

from infra.db.models import Dataset
from synib_spec.knobs import knob_table

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("fastapi", "sqlalchemy", "pydantic", "celery", "kombu", "ray", "torch", "numpy")


def _copy_checkout(target: Path) -> None:
    """What the wheel is built from: pyproject.toml, README.md and the Python packages."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    skip = shutil.ignore_patterns("__pycache__", "static", "node_modules", "*.egg-info")
    for entry in sorted(ROOT.iterdir()):
        if (entry / "__init__.py").is_file():
            shutil.copytree(entry, target / entry.name, ignore=skip)


def _environment(**extra: str) -> dict[str, str]:
    """This process's environment without what would let the test's packages leak in."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("client_install")
    _copy_checkout(base / "src")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    pip += ["-q", "-c", str(ROOT / "constraints.txt"), f"{base / 'src'}[client]"]
    done = subprocess.run(pip, capture_output=True, text=True, env=_environment(), timeout=300)
    assert done.returncode == 0, f"pip install '.[client]' failed:\n{done.stdout}\n{done.stderr}"
    return venv


def _synib(venv: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "synib"), *argv],
        capture_output=True,
        text=True,
        env=_environment(**env),
        cwd=venv,  # not the checkout: its packages must come from the installed wheel
        timeout=60,
        check=False,
    )


def test_the_server_and_the_library_are_not_installed(client_venv: Path) -> None:
    probe = (
        "import importlib.util, json, sys; import synib_client.client, synib_client.main; "
        "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
    )
    done = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", probe, *SERVER_ONLY],
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=client_venv,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_help_version_and_knobs_run_without_a_server(client_venv: Path) -> None:
    version = _synib(client_venv, "--version")
    assert (version.returncode, version.stdout) == (0, "synib 0.1.0\n")
    helped = _synib(client_venv, "--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("datasets", "submit", "jobs", "watch", "report", "download", "knobs"):
        assert f"    {command} " in helped.stdout
    assert re.search(r"^ +serve +\(needs the \[worker\] extra\)$", helped.stdout, re.M)
    knobs = _synib(client_venv, "knobs", "--json")
    assert knobs.returncode == 0 and json.loads(knobs.stdout) == knob_table()


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["serve"], "worker"),
        (["api", "--port", "9000"], "worker"),
        (["migrate"], "worker"),
        (["token", "create", "--name", "laptop"], "worker"),
        (["train", "d.npz", "--method", "synib", "--out", "run"], "core"),  # torch, at run time
        (["datasets", "import", "multibench", "d.pkl", "--out", "d.npz"], "core"),  # numpy
    ],
)
def test_server_and_library_commands_name_the_extra_to_install(
    client_venv: Path, argv: list[str], extra: str
) -> None:
    done = _synib(client_venv, *argv)
    assert (done.returncode, done.stdout) == (2, "")
    command = " ".join(argv[:2]) if argv[0] in ("token", "datasets") else argv[0]
    assert done.stderr.startswith(
        f"synib {command}: error: this command needs the [{extra}] extra "
        f"(pip install 'synib[{extra}]'): No module named "
    )
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_jobs_list_against_the_live_api(
    client_venv: Path,
    app: Any,
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="queued")
    with serve_app(app) as url:
        env = {"SYNIB_URL": url, "SYNIB_TOKEN": user_token[0]}
        listed = _synib(client_venv, "jobs", "list", SYNIB_CONFIG_DIR=str(tmp_path), **env)
        shown = _synib(client_venv, "token", "show", SYNIB_CONFIG_DIR=str(tmp_path), **env)
    assert listed.returncode == 0, listed.stderr
    assert job.id in listed.stdout and "queued" in listed.stdout
    assert shown.stdout.splitlines() == [
        f"url    {url}  (SYNIB_URL)",
        f"token  {user_token[0][:10]}...  (SYNIB_TOKEN)",
    ]

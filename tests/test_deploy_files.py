"""The deployment files stay valid and consistent with what `make run` starts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_accepted_by_docker_compose() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package docker-compose) is required by the test suite"
    env = {**os.environ, "POSTGRES_PASSWORD": "test-only"}
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rendered = yaml.safe_load(out.stdout)
    services = rendered["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    assert "healthcheck" in services["postgres"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_compose_refuses_to_start_without_a_database_password() -> None:
    exe = shutil.which("docker-compose")
    assert exe
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode != 0
    assert "POSTGRES_PASSWORD" in out.stderr


@pytest.mark.parametrize(
    "service,command", [("api", "api"), ("worker", "worker"), ("migrate", "migrate")]
)
def test_images_run_the_same_subcommands_as_serve(service: str, command: str) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"][service]["command"] == ["synib", command]
    serve_source = (ROOT / "worker" / "serve.py").read_text()
    assert re.search(rf"['\"]{command}['\"]", serve_source), (
        f"synib serve does not run `synib {command}`"
    )


def test_dockerfile_keeps_the_api_image_free_of_torch_and_ray() -> None:
    text = (ROOT / "Dockerfile").read_text()
    api_stage = text.split("AS api", 1)[1].split("FROM ", 1)[0]
    assert "'.[api]'" in api_stage
    assert "torch" not in api_stage and "ray" not in api_stage.replace("ARRAY", "")
    assert 'CMD ["synib", "api"]' in api_stage
    assert 'CMD ["synib", "worker"]' in text.split("AS worker", 1)[1]


def _closure(dist: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Normalised names of ``dist`` and every distribution it requires with ``extras``, from
    the installed metadata (what pip installs for ``dist[extras]``)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(dist), extras)]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def test_make_run_installs_everything_the_service_imports() -> None:
    """``make run`` installs ``synib[worker]`` without the dev extras. The API's asyncio engine
    needs greenlet, optional since SQLAlchemy 2.1 (``sqlalchemy[asyncio]``); the dev extras
    bring it anyway (playwright), which once hid its absence from every test."""
    run = _closure("synib", frozenset({"worker"}))
    assert {"greenlet", "aiosqlite", "psycopg", "uvicorn", "celery", "ray", "torch"} <= run, run

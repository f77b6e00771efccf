"""The deployment files stay valid and consistent with what `make run` starts."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    assert {"postgres", "redis", "migrate", "api", "worker", "housekeeper"} <= set(services)
    # The housekeeper trains nothing: the slim image, the same settings as the worker.
    assert services["housekeeper"]["image"] == services["api"]["image"]
    assert services["housekeeper"]["environment"] == services["migrate"]["environment"]
    assert "healthcheck" in services["postgres"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


CLUSTER_SERVICES = {
    "ray-head",
    "ray-worker",
    "worker-cluster",
    "object-store",
    "object-store-bucket",
}


@pytest.mark.parametrize("profile", [[], ["--profile", "cluster"]], ids=["default", "cluster"])
def test_compose_cluster_profile(profile: list[str]) -> None:
    """The ``cluster`` profile: a Ray head, GPU Ray workers, the service's worker joined to the
    head as a driver (its token too), an S3-compatible store; the default services stay out of
    the profile, and the file renders with and without it."""
    exe = shutil.which("docker-compose")
    assert exe
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), *profile, "config"],
        capture_output=True,
        text=True,
        env={**os.environ, "POSTGRES_PASSWORD": "test-only", "RAY_AUTH_TOKEN": "t0"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert set(services) >= CLUSTER_SERVICES
    for name, service in services.items():
        expected = ["cluster"] if name in CLUSTER_SERVICES else None
        assert service.get("profiles") == expected, name
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "--head" in services["ray-head"]["command"]
    assert "--address=ray-head:6379" in services["ray-worker"]["command"]
    driver = services["worker-cluster"]["environment"]
    assert driver["SYNIB_RAY_ADDRESS"] == "ray-head:6379"
    for name in ("ray-head", "ray-worker", "worker-cluster"):
        env = services[name]["environment"]
        assert (env["RAY_AUTH_MODE"], env["RAY_AUTH_TOKEN"]) == ("token", "t0"), name
    assert "synib worker" in services["worker-cluster"]["command"][-1]
    # One artifact store for all (SYNIB_STORAGE_URI, empty by default: the volume); the Ray
    # nodes upload the trials' checkpoints to it, so they hold the credentials too.
    storage = {"SYNIB_STORAGE_URI", "SYNIB_S3_ENDPOINT_URL", "SYNIB_S3_REGION"}
    credentials = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for name in ("api", "worker", "housekeeper", "worker-cluster"):
        assert storage | credentials <= set(services[name]["environment"]), name
        assert services[name]["environment"]["SYNIB_STORAGE_URI"] == "", name
    for name in ("ray-head", "ray-worker"):
        assert credentials <= set(services[name]["environment"]), name


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
    "service,command",
    [("api", "api"), ("worker", "worker"), ("housekeeper", "housekeeper"), ("migrate", "migrate")],
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


def _own_requirements(extras: frozenset[str]) -> list[Requirement]:
    """synib's requirements with ``extras`` as pyproject.toml states them (what ``pip install
    '.[extras]'`` reads, whatever the virtualenv holds), its own extras (``synib[core,api]``)
    expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in map(Requirement, project["optional-dependencies"][extra]):
            if canonicalize_name(req.name) == "synib":
                todo.extend(req.extras)
            else:
                found.append(req)
    return found


def _closure(extras: frozenset[str]) -> set[str]:
    """Normalised names of every distribution that ``pip install '.[extras]'`` installs: synib's
    requirements from pyproject.toml, theirs from the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in _own_requirements(extras)]
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


def _imported_distributions() -> dict[str, str]:
    """{distribution: a file importing it} for every module outside the standard library that
    our packages import, at the top of a file or lazily inside a function."""
    ours = {"synib_spec", "synib_core", "infra", "api", "worker", "synib_client"}
    providers = metadata.packages_distributions()
    found: dict[str, str] = {}
    for package in sorted(ours):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in (m.split(".")[0] for m in modules):
                    if module in sys.stdlib_module_names or module in ours:
                        continue
                    assert module in providers, f"{path}: imports {module}, installed by nothing"
                    for dist in providers[module]:
                        found.setdefault(canonicalize_name(dist), str(path.relative_to(ROOT)))
    return found


def test_make_run_installs_everything_the_service_imports() -> None:
    """``make run`` installs ``synib[worker]`` without the dev extras, which once hid the
    absence of what only they brought: greenlet (the API's asyncio engine; optional since
    SQLAlchemy 2.1, ``sqlalchemy[asyncio]``) and scikit-learn (the ``digits_pairs`` dataset, whose
    jobs then failed with ``internal error (ModuleNotFoundError)``)."""
    run = _closure(frozenset({"worker"}))
    # Loaded by name (database URLs), not imported by our code.
    assert {"greenlet", "aiosqlite", "psycopg", "uvicorn", "celery", "ray", "torch"} <= run, run
    missing = {d: f for d, f in _imported_distributions().items() if d not in run}
    assert not missing, f"imported but not installed by synib[worker]: {missing}"


def test_dockerfile_worker_installs_every_requirement_of_the_worker_extra() -> None:
    """The GPU image installs synib with --no-deps (its base image's CUDA torch stays) and the
    worker extra's requirements from a hand-written list, which must not miss one."""
    stage = (ROOT / "Dockerfile").read_text().split("AS worker", 1)[1]
    command = " ".join(stage.replace("\\\n", " ").split())
    listed: dict[str, set[str]] = {}
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[:2] != ["pip", "install"] or "--no-deps" in words:
            continue
        names = [w for i, w in enumerate(words[2:], 2) if words[i - 1] != "-c" and w[0] != "-"]
        for req in map(Requirement, names):
            listed.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    assert listed, "no pip install of the worker's requirements in the worker stage"
    for req in _own_requirements(frozenset({"worker"})):
        name = canonicalize_name(req.name)
        if name == "torch":
            continue  # the base image's CUDA build
        assert name in listed, f"the worker image does not install {req}"
        assert set(req.extras) <= listed[name], f"the worker image installs {name} without {req}"


def test_deploy_files_set_only_settings_the_service_reads() -> None:
    """Every ``SYNIB_*`` variable docker-compose.yml and the Dockerfile set is a setting (a
    variable nothing reads, such as SYNIB_LOG_LEVEL once was, looks like it works)."""
    from infra.settings import Settings

    known = {f"SYNIB_{name.upper()}" for name in Settings.model_fields}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names = {n for service in compose["services"].values() for n in service.get("environment", {})}
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        if line.startswith("ENV "):
            names |= {word.split("=", 1)[0] for word in line.split()[1:]}
    unread = {n for n in names if n.startswith("SYNIB_") and n not in known}
    assert not unread, f"set but read by no setting (infra/settings.py): {sorted(unread)}"
    assert "SYNIB_LOG_LEVEL" in names

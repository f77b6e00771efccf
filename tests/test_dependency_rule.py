"""The one dependency rule of ARCHITECTURE.md, checked in fresh interpreters.

api never loads torch or ray (it starts fast on a machine without a GPU); synib_core never loads the
service stack; the vocabulary (synib_spec) loads neither; the client (synib_client) loads nothing
beyond httpx, PyYAML and synib_spec.knobs, so it installs without the server (tests/client's
test_standalone_install.py installs it alone). Each check imports the package AND its submodules,
so a violation deep inside a module is caught, not just one in __init__.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = r"""
import importlib, json, pkgutil, sys
pkg = importlib.import_module(sys.argv[1])
skip = set(sys.argv[2].split(",")) if sys.argv[2] else set()
for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
    if info.name in skip or info.name.split(".")[-1].startswith("_"):
        continue
    importlib.import_module(info.name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

# Modules that are entry points for other packages on purpose and import lazily inside functions.
API_ENTRY_POINTS = ""
CORE_ENTRY_POINTS = ""


def loaded_top_level_modules(package: str, skip: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, package, skip],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("forbidden", [["torch", "ray", "synib_core"]])
def test_api_loads_neither_torch_nor_ray(forbidden: list[str]) -> None:
    loaded = loaded_top_level_modules("api", API_ENTRY_POINTS)
    assert not loaded & set(forbidden), f"api pulled in {sorted(loaded & set(forbidden))}"


def test_synib_core_loads_no_service_stack() -> None:
    loaded = loaded_top_level_modules("synib_core", CORE_ENTRY_POINTS)
    forbidden = {"fastapi", "sqlalchemy", "celery", "ray", "starlette", "api", "worker"}
    assert not loaded & forbidden, f"synib_core pulled in {sorted(loaded & forbidden)}"
    assert "torch" in loaded  # sanity: the probe really imported the library's modules


def test_synib_spec_loads_neither_the_service_stack_nor_torch() -> None:
    loaded = loaded_top_level_modules("synib_spec", "")
    forbidden = {"torch", "ray", "fastapi", "starlette", "sqlalchemy", "pydantic", "celery"}
    assert not loaded & forbidden, f"synib_spec pulled in {sorted(loaded & forbidden)}"
    assert "numpy" in loaded  # sanity: the dataset contract was imported


def test_synib_client_loads_only_what_the_client_extra_installs() -> None:
    loaded = loaded_top_level_modules("synib_client", "")
    forbidden = {"fastapi", "starlette", "sqlalchemy", "pydantic", "pydantic_settings", "torch"}
    forbidden |= {"ray", "celery", "kombu", "numpy", "tqdm", "infra", "api", "worker", "synib_core"}
    assert not loaded & forbidden, f"synib_client pulled in {sorted(loaded & forbidden)}"
    assert {"httpx", "yaml", "synib_spec"} <= loaded  # sanity: the client's modules were imported


def test_the_housekeeper_loads_no_training_stack() -> None:
    """``synib housekeeper`` runs on the slim API image: it must not need torch or Ray."""
    probe = (
        "import sys, worker.housekeeper, worker.serve\n"
        "print(sorted(m for m in ('torch', 'ray', 'synib_core', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_synib_version_is_instant_and_light() -> None:
    probe = (
        "import sys; from synib_client.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch','ray','fastapi','sqlalchemy','pydantic','httpx',"
        "'synib_core','worker') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "synib" in out.stdout

"""Our code uses only the public API of Ray, Celery, kombu and uvicorn: no import of a private
module or name of theirs anywhere in our packages (at the top of a file or inside a function).

A private module: a dotted path with a segment starting with ``_`` (``ray._private``,
``kombu.transport.virtual._base``) or one of the internals named below (``uvicorn.protocols``,
``ray.core.generated``, ``ray.tune.execution``). A private name: an imported name that starts
with ``_``. Internals reached without importing them (``channel._put``) are caught by review,
not here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("synib_spec", "synib_core", "infra", "api", "worker", "synib_client")
LIBRARIES = ("ray", "celery", "kombu", "uvicorn")
# Internals without a leading underscore: uvicorn's protocol classes, the raylet's generated
# gRPC stubs, Tune's execution layer (its actor environment, class cache).
INTERNAL_MODULES = ("uvicorn.protocols", "ray.core.generated", "ray.tune.execution")


def private_imports(source: str, filename: str) -> list[str]:
    """``"<line>: <what>"`` for each import of a private module or name of the libraries, in
    line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            pairs = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            pairs = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in pairs:
            parts = module.split(".")
            if parts[0] not in LIBRARIES:
                continue
            private_module = any(p.startswith("_") for p in parts) or any(
                module == m or module.startswith(m + ".") for m in INTERNAL_MODULES
            )
            private_name = name is not None and name.startswith("_")
            if private_module or private_name:
                what = module if name is None else f"{module}.{name}"
                found.append((node.lineno, f"{node.lineno}: {what}"))
    return [text for _, text in sorted(found)]


def test_the_check_catches_each_kind_of_private_import() -> None:
    source = "\n".join(
        [
            "import ray._private.services",
            "from ray._raylet import GcsClient",
            "from kombu.transport.virtual import _base",
            "from celery.app.base import _after_fork",
            "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol",
            "def f():\n    from ray.util import _internal",
            "from ray.core.generated import node_manager_pb2_grpc",
            "from ray.tune.execution.class_cache import DEFAULT_ENV_VARS",
            "import ray, celery, kombu",
            "from ray import tune",
            "from kombu.exceptions import ChannelError",
            "from ._local import x",
            "from numpy import _core",
        ]
    )
    assert private_imports(source, "probe.py") == [
        "1: ray._private.services",
        "2: ray._raylet.GcsClient",
        "3: kombu.transport.virtual._base",
        "4: celery.app.base._after_fork",
        "5: uvicorn.protocols.http.httptools_impl.HttpToolsProtocol",
        "7: ray.util._internal",
        "8: ray.core.generated.node_manager_pb2_grpc",
        "9: ray.tune.execution.class_cache.DEFAULT_ENV_VARS",
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_of_ours_imports_a_private_name_of_the_libraries(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python file under {package}/"
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in files
        if (hits := private_imports(path.read_text(), str(path)))
    }
    assert not offenders, f"private imports of {', '.join(LIBRARIES)}: {offenders}"

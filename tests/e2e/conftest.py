"""Fixtures for the dashboard tests: the real service (`synib serve`) and headless Chromium.

The service runs in a subprocess with a temporary state directory and a free port, serving the
built dashboard (frontend/dist) at "/"; its API token is read from the credentials file that
`synib serve` writes. Chromium is Debian's /usr/bin/chromium driven by Playwright.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dashboard_testing import make_npz
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
DIST = FRONTEND / "dist"
# `synib serve` of this checkout (the installed `synib` script may come from another one).
SERVE = [sys.executable, "-m", "worker.cli", "serve"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Service:
    """A running `synib serve`: its base URL (no trailing slash), an API token (the admin's) and
    its state folder (the SQLite database: rows a worker would write)."""

    url: str
    token: str
    state: Path

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def this_checkout_first() -> str:
    """PYTHONPATH with this checkout first: its API and server, whichever checkout the
    virtualenv was installed from."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _build_dashboard() -> None:
    """Build frontend/dist as `make frontend` does: the API types generated from this checkout's
    OpenAPI schema, then the bundle (a few seconds; the tests then see the current API)."""
    installed = FRONTEND / "node_modules" / ".package-lock.json"  # written by npm ci
    lock = FRONTEND / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    env = {**os.environ, "PYTHONPATH": this_checkout_first()}
    schema = FRONTEND / "src" / "generated" / "openapi.json"
    script = FRONTEND / "scripts" / "write_openapi.py"
    subprocess.run([sys.executable, str(script), str(schema)], cwd=ROOT, env=env, check=True)
    subprocess.run(["npm", "run", "--silent", "generate"], cwd=FRONTEND, check=True)
    subprocess.run(["npm", "run", "--silent", "build"], cwd=FRONTEND, check=True)


def _read_token(config_dir: Path) -> str | None:
    path = config_dir / "credentials.json"
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["token"])
    except (ValueError, KeyError):
        return None  # written but not complete yet


def _wait_ready(proc: subprocess.Popen[bytes], url: str, config_dir: Path, log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"synib serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            )
        token = _read_token(config_dir)
        try:
            if token and httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return token
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"synib serve not ready after 180 s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the service's process group, then SIGKILL whatever is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=45)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    _build_dashboard()
    state = tmp_path_factory.mktemp("synib_state")
    port = _free_port()
    ray_tmp = Path(
        f"/tmp/sre{os.getpid()}"
    )  # a marker in the environment of the processes this test starts
    env = {
        **os.environ,
        "PYTHONPATH": this_checkout_first(),
        "SYNIB_STATE_DIR": str(state),
        "SYNIB_HOST": "127.0.0.1",
        "SYNIB_PORT": str(port),
        "SYNIB_STATIC_DIR": str(DIST),
        "SYNIB_CONFIG_DIR": str(state / "config"),
        "SYNIB_TEST_SANDBOX": str(ray_tmp),
        "SYNIB_CPUS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    for name in (
        "SYNIB_URL",
        "SYNIB_TOKEN",
        "SYNIB_DATABASE_URL",
        "SYNIB_BROKER_URL",
        "RAY_ADDRESS",
    ):
        env.pop(name, None)
    log = state / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            SERVE,
            cwd=state,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        token = _wait_ready(proc, url, state / "config", log)
        yield Service(url=url, token=token, state=state)
    finally:
        _stop(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).is_file(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh laptop-sized page (1366 x 768) that accepts downloads."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


@pytest.fixture()
def page_errors(page: Page) -> list[str]:
    """CSP violations and uncaught script errors seen by `page` (should stay empty)."""
    errors: list[str] = []
    page.on(
        "console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None
    )
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return errors


@pytest.fixture(scope="module")
def api_dataset(service: Service, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A dataset uploaded through the API (for the tests that are not about uploading)."""
    npz = make_npz(tmp_path_factory.mktemp("npz") / "xor_pid.npz")
    with service.client() as api, npz.open("rb") as fh:
        resp = api.post("/datasets", files={"file": ("x.npz", fh)}, data={"name": "e2e api"})
    return str(resp.raise_for_status().json()["id"])

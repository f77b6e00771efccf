"""``synib serve`` (embedded mode: API + worker + housekeeper + local Ray on one machine) and the
commands the Docker images run: ``synib api``, ``synib worker``, ``synib housekeeper``,
``synib migrate``, ``synib reconcile``.

``serve`` creates the state folder, migrates the database, makes sure a local admin token exists
(written to ``$config_dir/credentials.json`` as {"url", "token"}), then runs ``synib api``,
``synib worker`` and ``synib housekeeper`` as child processes and, once the API is ready, prints
the URL and the token in a box after their start-up lines: SIGINT/SIGTERM are forwarded, all are
stopped cleanly, and it exits non-zero if one dies on its own. Killed in a way that runs
no code of it (SIGKILL), it takes them with it: the kernel sends each SIGTERM.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from infra.process_lifetime import exit_with_parent
from infra.settings import Settings, get_settings, log_level_name
from worker.cli_models import register_models

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_USER = "admin"
STOP_GRACE_S = 20.0
SERVING_TIMEOUT_S = 120.0  # how long the admin token's box waits for the API to be ready


def migrate(settings: Settings) -> None:
    """``alembic upgrade head`` on the configured database."""
    from alembic import command
    from alembic.config import Config

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def open_broker(settings: Settings) -> None:
    """Reach the broker once before the processes that share it start: the embedded one (a
    SQLite file) gets its tables now, not from three processes at the same moment; a broker
    that cannot be reached stops ``serve`` with the reason."""
    from infra.broker import TaskProducer

    producer = TaskProducer(settings)
    try:
        problem = producer.check()
    finally:
        producer.close()
    if problem is not None:
        raise ValueError(f"broker {settings.broker_url}: {problem}")


def server_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


def _token_is_active(settings: Settings, token: str) -> bool:
    """Known, not revoked and not expired (an expired saved token is replaced at start)."""
    from infra.db import crud
    from infra.db.models import utcnow
    from infra.security import hash_token
    from infra.tokens import admin_session

    with admin_session(settings) as session:
        row = crud.get_token_by_hash(session, token_hash=hash_token(token))
        if row is None or row.revoked_at is not None:
            return False
        return row.expires_at is None or row.expires_at > utcnow()


def ensure_credentials(settings: Settings) -> tuple[dict[str, str], bool]:
    """({"url", "token"}, created): reuse a valid credentials.json, else issue an admin token."""
    from infra.tokens import admin_session, issue_token

    path = settings.config_dir / "credentials.json"
    url = server_url(settings)
    try:
        saved = json.loads(path.read_text())
        token = str(saved["token"])
    except (OSError, ValueError, KeyError, TypeError):
        token = ""
    created = not (token and _token_is_active(settings, token))
    if created:
        # A new token like any other: SYNIB_TOKEN_TTL_DAYS (None: never) bounds its life too,
        # so an operator's expiry policy also covers this admin token. Once it has expired the
        # next start issues a fresh one (see _token_is_active).
        with admin_session(settings) as session:
            token = issue_token(
                session,
                user_name=ADMIN_USER,
                token_name="serve",
                ttl_days=settings.token_ttl_days,
                is_admin=True,
            ).token
    credentials = {"url": url, "token": token}
    write_private_file(path, json.dumps(credentials, indent=2))
    return credentials, created


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only at every moment.

    The temporary file is created with mode 0600 (never the umask's 0644 and a chmod later:
    the token would be readable by others in between) and renamed over ``path``; a folder
    made for it is 0700 (an existing one is left as it is).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def child_command(name: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", name]


def start_child(name: str) -> subprocess.Popen[bytes]:
    """``synib NAME`` as a child that the kernel stops (SIGTERM) when this process ends, even
    by SIGKILL (``infra.process_lifetime``)."""
    return subprocess.Popen(
        child_command(name), preexec_fn=functools.partial(exit_with_parent, os.getpid())
    )


def supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait until a signal (exit 0 after stopping them all) or a child's death (exit 1)."""
    stop: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stop.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        died = None
        while not stop and died is None:
            died = next((n for n, p in children.items() if p.poll() is not None), None)
            time.sleep(0.2)
        if died is not None:
            code = children[died].returncode
            print(f"synib serve: {died} exited with code {code}; stopping", file=sys.stderr)
        stop_children(children, stop[0] if stop else signal.SIGTERM)
        return 1 if died is not None else 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_children(children: dict[str, subprocess.Popen[bytes]], signum: int) -> None:
    """Forward ``signum``, wait for a clean exit, kill what is left after a grace period."""
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signum)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    # The children (synib api, worker, housekeeper) read these from the environment they inherit.
    flags = (
        ("SYNIB_HOST", args.host),
        ("SYNIB_PORT", args.port),
        ("SYNIB_LOG_LEVEL", args.log_level),
    )
    overrides = {k: v for k, v in flags if v}
    os.environ.update({k: str(v) for k, v in overrides.items()})
    get_settings.cache_clear()
    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    open_broker(settings)
    credentials, created = ensure_credentials(settings)
    print(f"synib serve: starting the API, worker and housekeeper of {settings.state_dir}")
    sys.stdout.flush()
    children = {name: start_child(name) for name in ("api", "worker", "housekeeper")}
    lines = [
        f"synib serve: the dashboard and API are at {credentials['url']}",
        f"admin token ({'created' if created else 'reused'}): {credentials['token']}",
        f"saved in {settings.config_dir / 'credentials.json'}",
        "show both again with: synib token show --reveal",
    ]
    # Beside supervise (which forwards signals from the start): the box comes once the API
    # says it is ready, after the children's start-up lines.
    threading.Thread(
        target=announce, args=(credentials["url"], children, lines), daemon=True
    ).start()
    return supervise(children)


def announce(url: str, children: dict[str, subprocess.Popen[bytes]], lines: list[str]) -> None:
    """Print ``lines`` boxed once the API is ready (not when a child died first)."""
    if wait_until_serving(url, children):
        print(boxed(lines), flush=True)


def wait_until_serving(
    url: str, children: dict[str, subprocess.Popen[bytes]], timeout_s: float = SERVING_TIMEOUT_S
) -> bool:
    """True once the API at ``url`` says it is ready (``/api/v1/ready``: ``status`` is
    ``ready``, which names a serving worker where the API counts them), or after ``timeout_s``
    (the token is shown all the same); False as soon as a child has died (``supervise`` says
    which)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local address
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in children.values()):
            return False
        try:
            with opener.open(f"{url}/api/v1/ready", timeout=2) as response:
                if json.load(response).get("status") == "ready":
                    return True
        except (OSError, ValueError):  # not listening yet, a 503, a body that is not JSON
            pass
        time.sleep(0.5)
    return True


def boxed(lines: list[str]) -> str:
    """``lines`` in a frame of ``+``, ``-`` and ``|``, to stand out at the end of a log."""
    width = max(len(line) for line in lines)
    bar = "+" + "-" * (width + 2) + "+"
    return "\n".join([bar, *(f"| {line:<{width}} |" for line in lines), bar])


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.observability import MULTIPROCESS_ENV

    settings = get_settings()
    workers = args.workers or settings.api_workers
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROCESS_ENV):
        # The processes share their request metrics through files here (api/observability.py);
        # set before uvicorn starts them, removed when they stop.
        metrics_dir = tempfile.mkdtemp(prefix="synib-api-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        uvicorn.run(
            "api.main:app",
            host=args.host or settings.host,
            port=int(args.port or settings.port),
            log_level=args.log_level or settings.log_level,
            proxy_headers=True,
            workers=workers,
            # SIGTERM: open requests and event streams get this long, then are closed.
            timeout_graceful_shutdown=settings.api_graceful_shutdown_s,
            limit_concurrency=settings.api_max_connections,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import QUEUE, app

    settings = get_settings()
    concurrency = args.concurrency or settings.worker_concurrency
    log_level = (args.log_level or settings.log_level).upper()
    argv = ["worker", "-Q", QUEUE, "-c", str(concurrency), "-l", log_level]
    argv += ["--without-gossip", "--without-mingle", "-n", "synib@%h"]
    app.worker_main(argv=argv)
    return 0


def cmd_housekeeper(args: argparse.Namespace) -> int:
    """One process: Celery beat plus a solo worker on the housekeeping queue (worker.housekeeper)."""
    from infra.broker import HOUSEKEEPING_QUEUE
    from worker.housekeeper import app

    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # beat's schedule file lives there
    log_level = (args.log_level or settings.log_level).upper()
    argv = ["worker", "-Q", HOUSEKEEPING_QUEUE, "--beat", "--pool", "solo", "-c", "1"]
    argv += ["-s", str(settings.housekeeper_schedule_file), "-l", log_level]
    argv += ["--without-gossip", "--without-mingle", "-n", "housekeeper@%h"]
    app.worker_main(argv=argv)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    migrate(settings)
    print(f"synib migrate: {settings.database_url.split('@')[-1]} is at head")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """One housekeeping pass by hand (worker/housekeeping.py); prints what it did."""
    from worker.db_retry import is_connection_error
    from worker.housekeeping import Housekeeper

    housekeeper = Housekeeper(get_settings(), assume_db_continuity=True)
    try:
        result = housekeeper.run_once()
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        print(
            f"synib reconcile: error: database unavailable ({type(exc).__name__})", file=sys.stderr
        )
        return 1
    finally:
        housekeeper.close()
    print(
        f"synib reconcile: resumed {len(result.resumed)} job(s), re-sent {len(result.resent)}, "
        f"cancelled {len(result.cancelled)}, re-sent {len(result.datasets_resent)} dataset(s)"
    )
    for label, ids in (("resumed", result.resumed), ("re-sent", result.resent)):
        for job_id in ids:
            print(f"  {label} {job_id}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Print ``infra.settings.settings_table()`` (plain or Markdown)."""
    from infra.settings import settings_table

    rows = settings_table()
    if args.markdown:
        print("| variable | default | meaning |\n|---|---|---|")
        for name, default, meaning in rows:
            print(f"| `{name}` | {f'`{default}`' if default else ''} | {meaning} |")
        return 0
    width = max(len(name) for name, _, _ in rows)
    for name, default, meaning in rows:
        print(f"{name:<{width}}  {default or '-'}\n{'':<{width}}  {meaning}")
    return 0


def _guarded(name: str, handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except ValueError as exc:  # settings and user-caused configuration problems
            print(f"synib {name}: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2

    return run


def _log_level_arg(value: str) -> str:
    try:
        return log_level_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("log_level: ")) from None


def _positive_int(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 64, got {value!r}")
    return int(value)


def _add_log_level(parser: argparse.ArgumentParser, *aliases: str) -> None:
    parser.add_argument(
        "--log-level",
        *aliases,
        dest="log_level",
        type=_log_level_arg,
        default=None,
        help="debug, info, warning, error or critical (default: SYNIB_LOG_LEVEL, else info)",
    )


def register(subparsers: Any) -> None:
    """Add serve, api, worker, housekeeper, migrate, reconcile, settings, models to an argparse
    ``add_subparsers()`` object."""
    serve = subparsers.add_parser(
        "serve", help="run API + worker + housekeeper + local Ray (embedded mode)"
    )
    serve.add_argument("--host", default=None, help="bind address (default: settings host)")
    serve.add_argument("--port", type=int, default=None, help="port (default: settings port)")
    _add_log_level(serve)
    serve.set_defaults(func=_guarded("serve", cmd_serve))
    api = subparsers.add_parser("api", help="run the HTTP API (uvicorn api.main:app)")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="API processes sharing the port (default SYNIB_API_WORKERS, else 1)",
    )
    _add_log_level(api)
    api.set_defaults(func=_guarded("api", cmd_api))
    work = subparsers.add_parser("worker", help="run a Celery worker on queue synib")
    work.add_argument("--concurrency", type=int, default=None, help="jobs at once")
    _add_log_level(work, "--loglevel")  # --loglevel: Celery's spelling, kept
    work.set_defaults(func=_guarded("worker", cmd_worker))
    keeper = subparsers.add_parser(
        "housekeeper",
        help="run the periodic housekeeping (requeue jobs of dead workers, resend lost messages)",
    )
    _add_log_level(keeper)
    keeper.set_defaults(func=_guarded("housekeeper", cmd_housekeeper))
    mig = subparsers.add_parser("migrate", help="upgrade the database schema to head")
    mig.set_defaults(func=_guarded("migrate", cmd_migrate))
    rec = subparsers.add_parser(
        "reconcile", help="one housekeeping pass now (what synib housekeeper does periodically)"
    )
    rec.set_defaults(func=_guarded("reconcile", cmd_reconcile))
    settings = subparsers.add_parser(
        "settings", help="every SYNIB_ setting: its default and what it does"
    )
    settings.add_argument("--markdown", action="store_true", help="as a Markdown table")
    settings.set_defaults(func=_guarded("settings", cmd_settings))
    register_models(subparsers)

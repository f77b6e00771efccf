"""The servers `make test` uses: .ci/services.sh's private PostgreSQL and Redis are the ones the
tests reach (through SYNIB_TEST_DATABASE_URL and SYNIB_TEST_REDIS_URL), and a Debian cluster
that .ci/run starts lets the tests in without a password (.ci/pg_trust_loopback.sh).

Both run the installed server binaries on free ports under /tmp; nothing touches the machine's
own PostgreSQL or Redis. About 3 s together.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / ".ci" / "services.sh"


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    assert found and shutil.which("redis-server"), (
        "the PostgreSQL and Redis server binaries (Debian packages postgresql, redis-server) "
        "are required by the test suite"
    )
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _exports(stdout: str) -> dict[str, str]:
    """{"NAME": "value"} of services.sh's ``export NAME='value'`` lines."""
    pairs = (shlex.split(line)[1].split("=", 1) for line in stdout.splitlines())
    return {name: value for name, value in pairs}


def test_private_servers_of_services_sh_are_the_ones_the_tests_use() -> None:
    _pg_bin()
    env = {**os.environ, "SYNIB_CI_PRIVATE_SERVICES": "1"}
    started = subprocess.run(
        ["bash", str(SERVICES)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    exports = _exports(started.stdout)
    dirs = exports["SYNIB_TEST_SERVICE_DIRS"].split()
    pg_port = exports["SYNIB_TEST_DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
    redis_port = exports["SYNIB_TEST_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
    try:
        assert len(dirs) == 2 and all(Path(d).is_dir() for d in dirs), exports
        assert "throwaway PostgreSQL" in started.stderr and "throwaway Redis" in started.stderr
        # What the test helpers connect to, in a process with services.sh's exports.
        probe = (
            "import psycopg, redis, db_testing, worker_testing\n"
            "with psycopg.connect(db_testing.PG_ADMIN_URL) as c:\n"
            "    print(c.execute(\"SELECT current_setting('port')\").fetchone()[0])\n"
            "print(redis.Redis.from_url(worker_testing.BROKER_URL).config_get('port')['port'])\n"
            "print(redis.Redis.from_url(db_testing.redis_url(13)).config_get('port')['port'])\n"
        )
        seen = subprocess.run(
            [sys.executable, "-c", probe],
            env={
                **os.environ,
                **exports,
                "PYTHONPATH": f"{ROOT / 'tests'}:{ROOT / 'tests/worker'}",
            },
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert seen.returncode == 0, seen.stderr
        assert seen.stdout.split() == [pg_port, redis_port, redis_port]
    finally:
        stopped = subprocess.run(
            ["bash", str(SERVICES), "stop", *dirs], capture_output=True, text=True, timeout=60
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not any(Path(d).exists() for d in dirs)
    assert not _answers(int(pg_port)) and not _answers(int(redis_port))


@contextmanager
def _debian_like_cluster() -> Iterator[tuple[Path, list[str], Path]]:
    """A cluster initialised with the authentication pg_createcluster gives a Debian cluster
    (peer on the socket, scram-sha-256 over TCP), in a folder under /tmp the postgres user can
    reach; yields (data dir, pg_ctl command prefix, folder)."""
    pg_bin = _pg_bin()
    tmp = Path(tempfile.mkdtemp(prefix="synib-pgtest.", dir="/tmp"))
    as_pg: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    data = tmp / "data"
    pg_ctl = [*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-w"]
    try:
        debian_auth = ["--auth-local", "peer", "--auth-host", "scram-sha-256"]
        subprocess.run(
            [
                *as_pg,
                str(pg_bin / "initdb"),
                "--no-sync",
                "-D",
                str(data),
                "-U",
                "postgres",
                *debian_auth,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield data, pg_ctl, tmp
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def _connects_without_password(pg_ctl: list[str], tmp: Path) -> bool:
    """Start the cluster on a free port, try postgres@127.0.0.1 with no password, stop it."""
    import psycopg

    port = _free_port()
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1"
    subprocess.run([*pg_ctl, "-l", str(tmp / "log"), "-o", options, "start"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=5):
            return True
    except psycopg.OperationalError as exc:
        assert "password" in str(exc), exc
        return False
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, capture_output=True, timeout=60)


def test_a_debian_cluster_that_ci_starts_lets_the_tests_in_without_a_password() -> None:
    with _debian_like_cluster() as (data, pg_ctl, tmp):
        hba = data / "pg_hba.conf"
        assert not _connects_without_password(pg_ctl, tmp)  # Debian's default: a password
        before = hba.stat()
        for _ in range(2):  # once: the second run finds its rules
            script = ROOT / ".ci" / "pg_trust_loopback.sh"
            subprocess.run(["bash", str(script), str(hba)], check=True, timeout=30)
        after = hba.stat()
        assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode)
        assert hba.read_text().count("host all all 127.0.0.1/32 trust") == 1
        assert _connects_without_password(pg_ctl, tmp)

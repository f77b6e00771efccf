"""Find and end the local Ray processes of a worker process that died without shutting Ray down.

Before a worker process starts its private local Ray it puts a random owner token into its
environment (``SYNIB_RAY_OWNER``), which every Ray process it starts inherits (gcs_server,
raylet, agents, the trials' workers), and writes ``<state_dir>/ray_owners/<token>.json`` with
its host, pid and the pid's start time. A clean shutdown removes the file. When the worker is
killed (SIGKILL, out of memory), Ray's agents outlive it; ``reap_dead_owners`` (run by the
reconciler of every worker on the host) finds files whose pid is gone (or reused by another
process), SIGKILLs the processes carrying that token, and removes the file.

Linux only (it reads ``/proc``); elsewhere reaping finds nothing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_ENV = "SYNIB_RAY_OWNER"
PROC = Path("/proc")


@dataclass(frozen=True)
class Owner:
    """One registered Ray owner: ``token`` marks its processes; ``pid``/``start`` identify it."""

    token: str
    host: str
    pid: int
    start: int | None


def owners_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "ray_owners"


def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": state is fields[0]
    if len(fields) < 20 or fields[0] == "Z":  # a zombie is dead
        return None
    return int(fields[19])


def register_owner(state_dir: Path) -> Owner:
    """Mark this process as a Ray owner: set ``SYNIB_RAY_OWNER`` and write its registry file."""
    pid = os.getpid()
    owner = Owner(secrets.token_hex(8), socket.gethostname(), pid, process_start(pid))
    folder = owners_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{owner.token}.tmp"
    tmp.write_text(json.dumps(owner.__dict__))
    tmp.replace(folder / f"{owner.token}.json")
    os.environ[OWNER_ENV] = owner.token
    return owner


def unregister_owner(state_dir: Path, owner: Owner) -> None:
    """Forget ``owner`` after its Ray shut down cleanly."""
    (owners_dir(state_dir) / f"{owner.token}.json").unlink(missing_ok=True)
    if os.environ.get(OWNER_ENV) == owner.token:
        del os.environ[OWNER_ENV]


def read_owners(state_dir: Path) -> list[Owner]:
    """The registered owners (unreadable or half-written files skipped)."""
    folder = owners_dir(state_dir)
    if not folder.is_dir():
        return []
    owners = []
    for path in sorted(folder.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            owners.append(Owner(str(raw["token"]), str(raw["host"]), int(raw["pid"]), raw["start"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return owners


def is_alive(owner: Owner) -> bool:
    """Whether the owner's process still runs (same pid and the same start time)."""
    start = process_start(owner.pid)
    return start is not None and (owner.start is None or start == owner.start)


def processes_of(token: str) -> list[int]:
    """PIDs of live processes whose environment carries ``SYNIB_RAY_OWNER=<token>``."""
    needle = f"{OWNER_ENV}={token}\0".encode()
    pids = []
    for entry in PROC.iterdir() if PROC.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if needle in environ:
            pids.append(int(entry.name))
    return pids


def reap_dead_owners(state_dir: Path) -> int:
    """SIGKILL the Ray processes of this host's dead owners; returns how many were killed."""
    host = socket.gethostname()
    killed = 0
    for owner in read_owners(state_dir):
        if owner.host != host or is_alive(owner):
            continue
        n = kill_token(owner.token)
        if n:
            log.warning(
                "reaped %d leftover Ray process(es) of dead worker process %d", n, owner.pid
            )
        (owners_dir(state_dir) / f"{owner.token}.json").unlink(missing_ok=True)
        killed += n
    return killed


def kill_token(token: str, rounds: int = 3) -> int:
    """SIGKILL every process carrying ``token`` (a few scans, for children started meanwhile)."""
    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in processes_of(token) if p not in killed]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:  # already gone, or not ours to kill
                continue
    return len(killed)

"""A real two-node Ray cluster on loopback, started with Ray's own CLI and stopped by the test.

The head (``ray start --head --node-ip-address=127.0.0.1``, custom resource ``head``) and a
second raylet joined to it (``ray start --address=...``, custom resource ``node2``) each run
``--block`` as the leader of a session of their own, with their own ``--temp-dir``
(``/tmp/rc-XXXX``: Ray's socket paths must stay short). Every port is a free one, so several
clusters (and the local Rays of other tests) share the machine. Stopping a node kills its
session's processes: never ``ray stop``, which stops every Ray of the user on the machine.

Ray replaces ``--node-ip-address=127.0.0.1`` by the host's own address (its
``resolve_ip_for_localhost``): both nodes register under that address and their traffic stays
on this host; the GCS is reached at 127.0.0.1, and Ray's token authentication (a fresh token
per cluster) keeps other processes out.

Each node gets ``--num-cpus=1``; a driver (the service's worker with
``SYNIB_RAY_ADDRESS=<cluster.address>``) sees 2 CPUs in all. The nodes inherit this process's
environment (``RAY_ADDRESS*`` aside): an object store's credentials set before the cluster
starts reach the trials, which upload their checkpoints from their node.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from processes import free_port, runs_ray_work, start_group

RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 128 * 1024 * 1024
START_TIMEOUT_S = 90.0

# Prints the cluster's alive nodes as JSON once ``want`` of them are up (a short-lived driver).
NODES_SCRIPT = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.25)
print(json.dumps([{"id": n["NodeID"], "ip": n["NodeManagerAddress"], "resources": n["Resources"]} for n in nodes]))
"""


@dataclass
class RayNode:
    """One ``ray start --block`` session: its leader, temp dir, custom resource, node id."""

    resource: str  # "head" or "node2": the custom resource only this node has
    process: subprocess.Popen[bytes]
    temp_dir: Path
    node_id: str = ""

    def kill(self) -> None:
        """SIGKILL every process of the node's session (``ray start``, the raylet, its agents,
        its workers: they run in process groups of their own but stay in the session)."""
        members = session_members(self.process.pid)
        while members:
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            members = session_members(self.process.pid)
        self.process.wait()


@dataclass
class RayCluster:
    address: str  # the GCS address: 127.0.0.1:<port>
    token: str  # the cluster's authentication token (Ray's token auth is on)
    nodes: dict[str, RayNode] = field(default_factory=dict)  # by custom resource

    def driver_env(self) -> dict[str, str]:
        """What a driver's environment needs to join: the address and the token."""
        return {"SYNIB_RAY_ADDRESS": self.address, **auth_env(self.token)}

    def node_of(self, node_id: str) -> str:
        """The custom resource (``head`` / ``node2``) of the node with this id."""
        return next(name for name, node in self.nodes.items() if node.node_id == node_id)

    def busy_pids(self) -> list[int]:
        """The processes of the cluster's nodes that run a task or an actor (a trial, a
        reference model) for some driver: none once every driver's work ended."""
        return [
            pid
            for node in self.nodes.values()
            for pid in session_members(node.process.pid)
            if runs_ray_work(pid)
        ]


def session_members(session: int) -> list[int]:
    """Live (non-zombie) processes of a session (``/proc/PID/stat``: state, ppid, pgrp,
    session after the command name)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def auth_env(token: str) -> dict[str, str]:
    """Ray's token authentication with this token (every node and driver of the cluster)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def _ports() -> list[str]:
    """Free ports for every listener Ray would otherwise put on a fixed default."""
    flags = [
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
        "--node-manager-port",
        "--object-manager-port",
    ]
    return [f"{flag}={free_port()}" for flag in flags]


def _start_node(args: list[str], resource: str, env: dict[str, str], logs: Path) -> RayNode:
    """``ray start --block`` in a process group of its own; returns once Ray says it started."""
    log = logs / f"ray-{resource}.log"
    temp_dir = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    argv = [RAY, "start", "--block", "--num-cpus=1", "--num-gpus=0", *args]
    argv += [f"--resources={json.dumps({resource: 1})}", f"--temp-dir={temp_dir}"]
    argv += [f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
    with log.open("ab") as out:
        process = start_group(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    node = RayNode(resource, process, temp_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(node)
            raise AssertionError(f"ray start failed:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return node


def alive_nodes(
    address: str, token: str, want: int, timeout_s: float = START_TIMEOUT_S
) -> list[dict]:
    """The cluster's alive nodes (id, resources), waiting up to ``timeout_s`` for ``want``."""
    out = subprocess.run(
        [sys.executable, "-c", NODES_SCRIPT, address, str(want), str(timeout_s)],
        env={**os.environ, **auth_env(token)},
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
    )
    assert out.returncode == 0, f"a driver could not join {address}:\n{out.stderr[-3000:]}"
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _stop(node: RayNode) -> None:
    node.kill()  # a test cluster: no drain (``ray start``'s SIGTERM waits up to 30 s for one)
    shutil.rmtree(node.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster(logs: Path) -> Iterator[RayCluster]:
    """A head and a second raylet on 127.0.0.1 (1 CPU each) until the block ends; every
    process of both nodes is gone afterwards. Each ``ray start``'s output goes to
    ``logs/ray-<resource>.log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    token = secrets.token_hex(32)
    env.update(auth_env(token), RAY_USAGE_STATS_ENABLED="0")
    port = free_port()
    cluster = RayCluster(address=f"127.0.0.1:{port}", token=token)
    try:
        head_args = ["--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
        head_args += ["--include-dashboard=false", *_ports()]
        cluster.nodes["head"] = _start_node(head_args, "head", env, logs)
        node2_args = [f"--address={cluster.address}", "--node-ip-address=127.0.0.1"]
        cluster.nodes["node2"] = _start_node([*node2_args, *_ports()], "node2", env, logs)
        for info in alive_nodes(cluster.address, token, 2):
            for name, node in cluster.nodes.items():
                if name in info["resources"]:
                    node.node_id = info["id"]
        missing = [name for name, node in cluster.nodes.items() if not node.node_id]
        assert not missing, f"Ray nodes not up: {missing} (logs in {logs})"
        yield cluster
    finally:
        # The second raylet first: the head going first makes it wait for the lost GCS.
        for name in ("node2", "head"):
            if name in cluster.nodes:
                _stop(cluster.nodes[name])

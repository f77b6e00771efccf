"""One job on a local Ray vs the same job on a two-node Ray cluster on loopback; recovery after
the second raylet is SIGKILLed.

    python benchmarks/cluster.py [--epochs 10] [--smoke]

The job: xor_pid (uploaded as .npz), vanilla + synib over lambda {0.1, 1, 10}, seeds {0, 1}
(8 trials, 1 CPU each, the mlp of sweep_overhead.py), ``--epochs`` epochs. It runs through
``synib serve`` (SQLite, SQLite broker) twice, on the same total CPUs, each time after a
warm-up job of 2 one-epoch trials that starts (or joins) the worker's Ray (not with --smoke):

1. local: the worker's private Ray with 2 CPUs (``SYNIB_CPUS=2``);
2. cluster: ``ray start --head`` plus a second raylet, 1 CPU each, on 127.0.0.1
   (tests/ray_cluster.py); the worker joins with ``SYNIB_RAY_ADDRESS``.

Per run: wall time (POST to ``succeeded``), per-trial overhead (wall time minus the trials'
own time spread over the 2 CPUs, per trial: ``(wall - sum(trial seconds) / 2) / trials``, trial
seconds from each trial's started_at..finished_at), and the peak size of the Tune storage
folder (sampled every 0.1 s; the worker deletes it once the job's outputs are stored: bytes
written are at least this). Then, on the cluster, the same job again with the second raylet
SIGKILLed once a trial on it has recorded an epoch: the recovery time is from the kill to that
trial's first report from its new process (the worker logs ``trial <key> runs on node ...,
process <pid>``), and the job's wall time beside the undisturbed one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _service import (
    Service,
    exit_on_sigterm,
    free_port,
    markdown_table,
    service_env,
    stop_process_group,
    wait_healthy,
)
from sweep_overhead import KNOBS, follow

from synib_client.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ray_cluster import RayCluster, RayNode, auth_env, ray_cluster

SMOKE_DATA: dict[str, Any] = {"n_train": 1500, "n_val": 100, "n_test": 200}
PLACED = re.compile(r"trial (\S+) runs on node \S+, process (\d+)")
STAMP = r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):"
CPUS = 2


@contextlib.contextmanager
def serve(state_dir: Path, **settings: Any) -> Iterator[Service]:
    """``synib serve`` on a free port with its own state folder; ``settings`` are SYNIB_ ones;
    ``extra_env`` in them adds plain variables (Ray's token)."""
    extra = settings.pop("extra_env", {})
    port = free_port()
    env = {**service_env(state_dir, host="127.0.0.1", port=port, **settings), **extra}
    url = f"http://127.0.0.1:{port}"
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "serve"],
            cwd=state_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(proc, url, log, timeout_s=180)
        credentials = json.loads((state_dir / "config" / "credentials.json").read_text())
        yield Service(url, str(credentials["token"]), state_dir, log, proc.pid)
    finally:
        stop_process_group(proc)


def job_spec(dataset_id: str, epochs: int) -> dict[str, Any]:
    return {
        "name": "cluster benchmark",
        "dataset_id": dataset_id,
        "methods": ["vanilla", "synib"],
        "config": KNOBS,
        "sweep": {"lambda": {"type": "grid", "values": [0.1, 1.0, 10.0]}},
        "seeds": [0, 1],
        "epochs": epochs,
        "resources": {"cpus_per_trial": 1},
    }


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


class PeakSize:
    """Samples a folder's size in a thread; ``peak`` is the largest seen."""

    def __init__(self, path: Path, every_s: float = 0.1) -> None:
        self.path, self.every_s, self.peak = path, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, folder_bytes(self.path))
            time.sleep(self.every_s)

    def __enter__(self) -> PeakSize:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload(service: Service, smoke: bool) -> str:
    from synib_core.data import make_dataset, save_npz

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "xor_pid.npz"
        save_npz(make_dataset("xor_pid", 0, **(SMOKE_DATA if smoke else {})), npz)
        with service.client() as client, npz.open("rb") as f:
            response = client.post("/datasets", files={"file": ("xor_pid.npz", f)})
            return str(response.raise_for_status().json()["id"])


def _seconds(iso: str | None) -> float:
    return datetime.fromisoformat(str(iso)).timestamp()


def run_job(
    service: Service, spec: dict[str, Any], during: Any = None, timeout_s: float = 900
) -> dict[str, Any]:
    """Submit the job, follow it until it ends (``during(job_id)`` in a thread meanwhile);
    wall time, trials, peak Tune storage size."""
    tune = service.state_dir / "artifacts" / "tune"
    with PeakSize(tune) as size, service.client() as client:
        with Client(service.url, service.token) as follower:
            t0 = time.perf_counter()
            job = client.post("/jobs", json=spec).raise_for_status().json()
            if during is not None:
                threading.Thread(target=during, args=(job["id"],), daemon=True).start()
            job = follow(follower, job["id"], timeout_s, service.log)
            wall = time.perf_counter() - t0
        trials = client.get(f"/jobs/{job['id']}/trials").raise_for_status().json()["data"]
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['status']}: {job['failure_reason']}")
    busy = sum(_seconds(t["finished_at"]) - _seconds(t["started_at"]) for t in trials)
    return {
        "wall_s": wall,
        "trials": len(trials),
        "overhead_s": (wall - busy / CPUS) / len(trials),
        "peak_bytes": size.peak,
    }


def trial_on(log: Path, node: RayNode, client: httpx.Client, job_id: str) -> str | None:
    """A trial of the job that runs on ``node`` (its logged process is in the node's
    session) and has recorded an epoch."""
    pids = {key: int(pid) for key, pid in PLACED.findall(log.read_text(errors="replace"))}
    trials = client.get(f"/jobs/{job_id}/trials").raise_for_status().json()["data"]
    for trial in trials:
        pid = pids.get(trial["trial_key"], 0)
        if trial["status"] == "running" and trial["epochs_done"] >= 1 and pid:
            with contextlib.suppress(ProcessLookupError):
                if os.getsid(pid) == node.process.pid:
                    return str(trial["trial_key"])
    return None


def killer(service: Service, cluster: RayCluster, found: dict[str, Any]) -> Any:
    """``during`` of the recovery run: SIGKILL node2 once a trial on it has an epoch."""

    def run(job_id: str) -> None:
        node = cluster.nodes["node2"]
        with service.client() as client:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                key = trial_on(service.log, node, client, job_id)
                if key is not None:
                    found["log_at"] = service.log.stat().st_size
                    node.kill()
                    found["killed"], found["key"] = time.time(), key
                    return
                time.sleep(0.1)

    return run


def recovery_seconds(log: Path, found: dict[str, Any]) -> float:
    """From the kill to the moved trial's first report from its new process."""
    text = log.read_text(errors="replace")[found["log_at"] :]
    key = re.escape(found["key"])
    for stamp in re.findall(STAMP + r"[^\]]*\] trial " + key + r" runs on node", text):
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - found["killed"]
    raise RuntimeError(f"trial {found['key']} never reported again after the kill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="small data, 2 epochs, no warm-up job")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    epochs = 2 if args.smoke else args.epochs
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="synib-cluster-bench-") as tmp:
        base = Path(tmp)
        with serve(base / "local", cpus=CPUS) as service:
            spec = job_spec(upload(service, args.smoke), epochs)
            if not args.smoke:
                run_job(service, {**spec, "epochs": 1, "seeds": [0]})  # starts the worker's Ray
            rows.append(row("local Ray, 2 CPUs", run_job(service, spec)))
        (base / "ray-logs").mkdir()
        with ray_cluster(base / "ray-logs") as cluster:
            cluster_env = {"ray_address": cluster.address, "extra_env": auth_env(cluster.token)}
            with serve(base / "cluster", **cluster_env) as service:
                spec = job_spec(upload(service, args.smoke), epochs)
                if not args.smoke:
                    run_job(service, {**spec, "epochs": 1, "seeds": [0]})  # joins the cluster
                rows.append(row("2-node loopback cluster, 1+1 CPUs", run_job(service, spec)))
                found: dict[str, Any] = {}
                recovery = {**spec, "epochs": max(epochs, 10)}
                killed = run_job(service, recovery, during=killer(service, cluster, found))
                if "killed" not in found:
                    raise RuntimeError("no trial was seen on node2 before the job ended")
                label = f"cluster, node2 SIGKILLed mid-job ({recovery['epochs']} epochs)"
                rows.append(row(label, killed))
                recovered_s = recovery_seconds(service.log, found)
    print(f"## Local Ray vs a 2-node loopback cluster ({epochs} epochs, 8 trials)\n")
    print(markdown_table(HEADERS, rows))
    print(f"\nrecovery after the raylet kill: {recovered_s:.1f} s (kill to the moved trial's")
    print(f"first report from the head; trial {found['key']})")
    return 0


HEADERS = ["run", "trials", "wall s", "per-trial overhead s", "peak Tune storage MB"]


def row(label: str, run: dict[str, Any]) -> list[Any]:
    return [
        label,
        run["trials"],
        f"{run['wall_s']:.1f}",
        f"{run['overhead_s']:.2f}",
        f"{run['peak_bytes'] / 1e6:.2f}",
    ]


if __name__ == "__main__":
    sys.exit(main())

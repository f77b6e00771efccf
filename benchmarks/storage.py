"""One 8-trial job with the artifact store in a local folder vs in an S3 bucket (moto's server
on loopback): bytes written to the store and wall time.

    python benchmarks/storage.py [--epochs 3] [--smoke]

The job is the one of ``cluster.py`` (xor_pid uploaded as .npz, vanilla + synib over lambda
{0.1, 1, 10}, seeds {0, 1}, 8 trials of 1 CPU, ``--epochs`` epochs) through ``synib serve``
(SQLite, 2 CPUs), after a warm-up job of 2 one-epoch trials that starts the worker's Ray (not
with --smoke). Per run:

- wall time from the POST to ``succeeded``;
- stored bytes: every file (folder) or object (bucket) the job made in the store, sampled
  every 0.2 s while it ran, at the largest size seen, summed: Tune's experiment (the trials'
  checkpoints, deleted once the job ends) and the artifacts (not the dataset, uploaded before);
  a lower bound of the bytes written;
- for the bucket, also the bytes the service sent to the S3 endpoint while the job ran (a
  counting TCP proxy in front of moto): every PUT with its HTTP framing, and the requests that
  only ask (HEAD, GET, listings).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _service import exit_on_sigterm, markdown_table
from cluster import job_spec, serve, upload
from sweep_overhead import follow

from synib_client.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import S3Server, s3_server

HEADERS = ["store", "trials", "wall s", "stored MB (files/objects seen)", "sent to S3 MB"]


class CountingProxy:
    """127.0.0.1:<port> -> ``target``, counting the bytes clients send (``sent``)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.sent = target, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


class LargestSeen:
    """Samples ``listing()`` (name -> size) every 0.2 s in a thread; ``total``: the sum over
    every name seen of its largest size, but the names listed before (an earlier job's)."""

    def __init__(self, listing: Callable[[], dict[str, int]]) -> None:
        self.listing, self.sizes = listing, dict[str, int]()
        self.before = set(listing())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError):
                for name, size in self.listing().items():
                    self.sizes[name] = max(size, self.sizes.get(name, 0))

    @property
    def total(self) -> int:
        return sum(size for name, size in self.sizes.items() if name not in self.before)

    def __enter__(self) -> LargestSeen:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def folder_listing(folder: Path) -> Callable[[], dict[str, int]]:
    """name -> size of the files under ``folder`` but its temporary ones."""

    def listing() -> dict[str, int]:
        sizes = {}
        for path in folder.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and not {".tmp", "datasets"} & set(path.parts):
                    sizes[str(path.relative_to(folder))] = path.stat().st_size
        return sizes

    return listing


def measure(
    service: Any,
    spec: dict[str, Any],
    listing: Callable[[], dict[str, int]],
    counter: Callable[[], int] = lambda: 0,
) -> dict[str, Any]:
    """Run the job: wall seconds, trials, stored bytes, bytes sent (``counter()``'s growth)."""
    before = counter()
    with LargestSeen(listing) as seen, service.client() as client:
        with Client(service.url, service.token) as follower:
            t0 = time.perf_counter()
            job = client.post("/jobs", json=spec).raise_for_status().json()
            job = follow(follower, job["id"], 900, service.log)
            wall = time.perf_counter() - t0
        time.sleep(0.5)  # one more sample after the end
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['status']}: {job['failure_reason']}")
    return {
        "wall": wall,
        "trials": job["trials_total"],
        "stored": seen.total,
        "sent": counter() - before,
    }


def run(
    state: Path, epochs: int, smoke: bool, listing: Any, counter: Any, **settings: Any
) -> dict[str, Any]:
    """``synib serve`` with ``settings``; the job measured after the warm-up one."""
    with serve(state, cpus=2, **settings) as service:
        spec = job_spec(upload(service, smoke), epochs)
        if not smoke:
            measure(service, {**spec, "epochs": 1, "seeds": [0]}, dict)  # starts Ray
        return measure(service, spec, listing(service), counter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="small data, 2 epochs, no warm-up job")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    epochs = 2 if args.smoke else args.epochs
    rows = []
    with tempfile.TemporaryDirectory(prefix="synib-storage-bench-") as tmp:
        base = Path(tmp)
        local = run(
            base / "local",
            epochs,
            args.smoke,
            listing=lambda service: folder_listing(service.state_dir / "artifacts"),
            counter=lambda: 0,
        )
        rows.append(_row("local folder", local, sent=False))
        with s3_server(base) as s3:
            proxy = CountingProxy(("127.0.0.1", int(s3.endpoint.rsplit(":", 1)[1])))
            try:
                remote = run_s3(s3, proxy, base / "s3", epochs, args.smoke)
            finally:
                proxy.close()
        rows.append(_row("S3 bucket (moto on loopback)", remote, sent=True))
    print(f"## The artifact store: local folder vs S3 bucket ({epochs} epochs, 8 trials)\n")
    print(markdown_table(HEADERS, rows))
    return 0


def run_s3(s3: S3Server, proxy: CountingProxy, state: Path, epochs: int, smoke: bool) -> Any:
    """The run with the store in ``s3``'s bucket under ``bench/``, through ``proxy``."""
    env = {**s3.env("bench"), "SYNIB_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    return run(
        state,
        epochs,
        smoke,
        listing=lambda _service: (
            lambda: {key: size for key, size in s3.keys("bench").items() if "/datasets/" not in key}
        ),
        counter=lambda: proxy.sent,
        extra_env=env,
    )


def _row(label: str, run: dict[str, Any], sent: bool) -> list[Any]:
    return [
        label,
        run["trials"],
        f"{run['wall']:.1f}",
        f"{run['stored'] / 1e6:.2f}",
        f"{run['sent'] / 1e6:.2f}" if sent else "-",
    ]


if __name__ == "__main__":
    sys.exit(main())

"""The real API app served by uvicorn in a thread on a free port, for client and CLI tests;
a TCP proxy to cut its database; row factories for what a worker would write (reports, model
artifacts)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Job


@contextmanager
def serve_app(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (on ``port``, else one chosen by the OS); yields the server root
    URL. Leaving the block stops the server (open streams are cut after 2 s), as a restart
    does; serving a new app on the same port starts it again."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class WatchProcess:
    """The installed ``synib watch ARGV`` in a subprocess pointed at ``url`` with ``token``; its
    stderr lines (progress bars split at carriage returns) are collected as they come."""

    def __init__(self, url: str, token: str, config_dir: Path, *argv: str) -> None:
        env = {**os.environ, "SYNIB_URL": url, "SYNIB_TOKEN": token}
        env["SYNIB_CONFIG_DIR"] = str(config_dir)
        synib = str(Path(sys.executable).parent / "synib")
        self.process = subprocess.Popen(
            [synib, "watch", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines += [part for part in re.split(r"[\r\n]+", line) if part.strip()]

    def wait_for_line(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            assert self.process.poll() is None, self.lines
            assert time.monotonic() < deadline, f"no {needle!r} in {self.lines}"
            time.sleep(0.05)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the end: (exit code, stdout)."""
        try:
            self.process.wait(timeout=timeout)  # its stdout is a line or two: no pipe fills up
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)  # stderr is read by the reader thread alone, to its end
        assert self.process.stdout is not None
        return self.process.returncode, self.process.stdout.read()

    def notes(self) -> list[str]:
        """Its own lines (``synib watch: ...``), not the progress bars'."""
        return [line.strip() for line in self.lines if "synib watch: " in line]


def bundle_bytes() -> bytes:
    """A small model bundle zip: config.json and weights.bin (10240 bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config.json", json.dumps({"method": "synib", "lambda": 10.0}))
        zf.writestr("weights.bin", bytes(range(256)) * 40)
    return buffer.getvalue()


def add_model_artifact(
    session: Session, artifact_root: Path, job: Job, name: str, sha256: str | None = None
) -> str:
    """Store a bundle zip in the artifact store and register it; ``sha256`` overrides the true
    checksum (to test a corrupted download). Returns the artifact id."""
    payload = bundle_bytes()
    relative = f"jobs/{job.id}/{name}.zip"
    path = artifact_root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    row = crud.add_artifact(
        session,
        owner_id=job.owner_id,
        job_id=job.id,
        kind="model",
        name=name,
        path=relative,
        sha256=sha256 or hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
    )
    return row.id


def sample_report(job_id: str, synib_artifact: str | None) -> dict[str, Any]:
    """A report shaped like the worker's (worker/job_report.py) with round numbers."""
    return {
        "job_id": job_id,
        "baseline": "vanilla",
        "selection": "val_acc",
        "seeds": [0, 1],
        "sweep_knobs": ["lambda"],
        "methods": {
            "synib": {
                "best_config": {"lambda": 10.0},
                "metrics": {
                    "test_acc": {"mean": 0.95, "std": 0.01, "values": [0.94, 0.96]},
                    "synergy_acc": {"mean": 0.875, "std": 0.025, "values": [0.85, 0.9]},
                },
                "delta_vs_baseline": {
                    "test_acc": {"delta": 0.05, "lo": 0.03, "hi": 0.07},
                    "synergy_acc": {"delta": 0.375, "lo": 0.3, "hi": 0.45},
                },
                "trial_ids": [],
                "best_artifact_id": synib_artifact,
            },
            "vanilla": {
                "best_config": {},
                "metrics": {
                    "test_acc": {"mean": 0.9, "std": 0.0, "values": [0.9, 0.9]},
                    "synergy_acc": {"mean": 0.5, "std": 0.02, "values": [0.48, 0.52]},
                },
                "delta_vs_baseline": {},
                "trial_ids": [],
                "best_artifact_id": None,
            },
        },
        "references": {},
        "verdicts": {
            "synib": "synib vs vanilla: synergy_acc +0.375 [+0.300, +0.450]; the 95% CI is above "
            "0: synib beat vanilla on the synergy subset."
        },
    }


def run_trial(session: Session, job: Job, key: str, accuracies: list[float]) -> str:
    """A trial that runs ``len(accuracies)`` epochs (val_acc per epoch) and succeeds."""
    method, _, _ = key.partition("|")
    trial = crud.upsert_trial(
        session, job_id=job.id, trial_key=key, method=method, seed=0, config={}
    )
    crud.set_trial_status(session, trial_id=trial.id, status="running")
    for epoch, acc in enumerate(accuracies, start=1):
        crud.upsert_epoch_metrics(
            session, trial_id=trial.id, epoch=epoch, metrics={"val_acc": acc, "train_loss": 1.0}
        )
    crud.set_trial_status(
        session,
        trial_id=trial.id,
        status="succeeded",
        best_epoch=len(accuracies),
        metrics={"val_acc": accuracies[-1], "test_acc": accuracies[-1]},
    )
    return trial.id

"""The real API app served by uvicorn in a thread on a free port, for client and CLI tests;
plus row factories for what a worker would write (reports, model artifacts)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.orm import Session

from api.db import crud
from api.db.models import Job


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (port chosen by the OS); yields the server root URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
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
    """A report shaped like docs/INTERNALS.md "Job report" with round numbers."""
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

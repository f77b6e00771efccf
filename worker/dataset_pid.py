"""The PID of a stored dataset (``synib.dataset_pid``): how much its modalities say about the
label redundantly, uniquely and only together (synergy), and the verdict in words.

Reads the dataset's ``.npz`` with the one reader (``synib_core.data.load_npz``), all rows,
discretises each modality (``clusters`` states, default ``default_clusters``) and stores
``{"status": "succeeded", "clusters": k, "pairs": [PID.to_json()...], "verdict": str,
"error": None}`` on the row. Any failure (cvxpy missing, one modality, an unreadable file) is
stored as ``{"status": "failed", "error": reason}``; nothing raises out.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from infra.db import crud
from infra.db.session import SessionFactory
from infra.storage import StorageError, Store

log = logging.getLogger(__name__)


class PIDFailed(ValueError):
    """The PID cannot be computed for a reason the user can act on."""


def compute_pid(path: Any, clusters: int | None) -> dict[str, Any]:
    """The PID result of the ``.npz`` at ``path`` (raises PIDFailed / PIDUnavailable /
    DatasetError)."""
    from synib_core.data import load_npz
    from synib_core.metrics.discretise import default_clusters
    from synib_core.metrics.pid import dataset_pid
    from synib_core.metrics.pid_verdict import pid_verdict

    data = load_npz(path)
    if len(data.x) < 2:
        raise PIDFailed(f"a PID needs at least two modalities; this dataset has {list(data.x)}")
    raw = {m: k for m, k in data.kinds.items() if k in ("text", "audio")}
    if raw:
        m, kind = next(iter(raw.items()))
        raise PIDFailed(
            f"a PID reads numbers: modality {m!r} holds raw {kind}; compute it on features "
            "(e.g. the pretrained model's, saved as a dataset of vectors)"
        )
    num_classes = int(np.unique(data.y).shape[0])
    k = clusters if clusters is not None else default_clusters(len(data), num_classes)
    pairs = dataset_pid(data.x, data.y, clusters=k)
    return {
        "status": "succeeded",
        "clusters": k,
        "pairs": [p.to_json() for p in pairs],
        "verdict": pid_verdict(pairs),
        "error": None,
    }


def run_dataset_pid(sessions: SessionFactory, store: Store, dataset_id: str) -> str:
    """Compute the requested PID of ``dataset_id``; returns its status afterwards (``none``:
    nothing was requested, ``missing``: no such dataset). A PID already finished is left alone,
    so a redelivered message is harmless."""
    from synib_core.metrics.pid import PIDUnavailable

    with sessions() as session:
        state = crud.claim_dataset_pid(session, dataset_id=dataset_id)
        row = crud.get_dataset(session, dataset_id=dataset_id)
        if row is None:
            return "missing"
        if state is None:
            return str((row.pid or {}).get("status", "none"))
        ready, relative = row.status == "ready" and bool(row.path), row.path
    clusters = state.get("clusters")
    t0 = time.perf_counter()
    try:
        if not ready or relative is None:
            raise PIDFailed("the dataset is not ready (generate or upload it first)")
        try:
            path = store.local_copy(relative)
        except FileNotFoundError:
            raise PIDFailed("the dataset's file is missing from the store") from None
        result = compute_pid(path, clusters)
    except PIDUnavailable as exc:
        log.error("dataset %s: PID unavailable on this worker: %s", dataset_id, exc)
        result = _failed(clusters, f"{exc} (on the workers)")
    except StorageError as exc:  # the store failed to answer: its one-line reason
        log.warning("dataset %s: PID: %s (%s)", dataset_id, exc, exc.cause)
        result = _failed(clusters, str(exc))
    except ValueError as exc:  # PIDFailed, DatasetError, bad clusters
        log.info("dataset %s: PID failed: %s", dataset_id, exc)
        result = _failed(clusters, str(exc))
    except Exception as exc:
        log.exception("dataset %s: PID: internal error", dataset_id)
        result = _failed(clusters, f"internal error ({type(exc).__name__}); see the worker log")
    with sessions() as session:
        crud.set_dataset_pid(session, dataset_id=dataset_id, pid=result)
    log.info("dataset %s: PID %s in %.2f s", dataset_id, result["status"], time.perf_counter() - t0)
    return str(result["status"])


def _failed(clusters: int | None, error: str) -> dict[str, Any]:
    return {"status": "failed", "clusters": clusters, "pairs": [], "verdict": None, "error": error}

"""Built-in datasets in the artifact store: generate, summarise, mark ready; load for a job."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset
from infra.db.session import SessionFactory
from infra.settings import get_settings
from infra.storage import Store, sha256_file, storage_errors
from synib_spec.builtin import check_budget, resolve_params
from synib_spec.datasets import validate_npz
from worker.storage_retry import with_storage_retry

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)


class DatasetUnavailable(ValueError):
    """The job's dataset is missing, failed, or cannot be read (a user-visible reason)."""


def dataset_relpath(dataset_id: str) -> str:
    return f"datasets/{dataset_id}.npz"


def generate_builtin(row: Dataset, store: Store) -> tuple[str, str, int, dict[str, Any]]:
    """Generate a built-in dataset into the store; (relative path, sha256, size, summary).

    Raises ``DatasetError`` (a ValueError) for unknown generators, bad parameters, or a
    dataset over ``max_builtin_dataset_mb`` (checked before generating: the API checks it too,
    but a row may predate the limit or come from elsewhere), and ``StorageUnavailable`` (a
    ValueError) when the store stays unwritable through every try.
    """
    from synib_core.data import make_dataset

    params = dict(row.params or {})
    seed = int(params.pop("seed", 0) or 0)
    name = str(row.builtin_name)
    check_budget(name, resolve_params(name, params), get_settings().max_builtin_dataset_mb)
    data = make_dataset(name, seed, **params)
    relative = dataset_relpath(row.id)
    return with_storage_retry(lambda: _write_npz(data, store, relative), f"dataset {row.id}")


def _write_npz(
    data: MultimodalData, store: Store, relative: str
) -> tuple[str, str, int, dict[str, Any]]:
    """Save ``data`` into the store at ``relative`` through a temporary file, which is gone
    afterwards whatever happens; (relative, sha256, size, summary) of what was stored."""
    from synib_core.data import save_npz

    tmp = store.new_temp_file(suffix=".npz")
    try:
        with storage_errors("writing a dataset"):
            save_npz(data, tmp)
        sha, size = sha256_file(tmp)
        # The API's own validation gives the summary, so uploads and built-ins read the same.
        summary = validate_npz(str(tmp))
        store.put(tmp, relative)
        return relative, sha, size, summary
    finally:
        tmp.unlink(missing_ok=True)


# Module -> (the distribution that provides it, the synib extra that installs it).
_PROVIDERS = {"sklearn": ("scikit-learn", "synib[core]")}


def missing_package_reason(builtin_name: str, exc: ImportError) -> str:
    """Why a built-in dataset could not be generated: the module that failed to import."""
    where = f"built-in dataset {builtin_name} cannot be generated on this worker"
    module = (exc.name or "").split(".")[0]
    if not module:
        return f"{where}: {exc}"
    package, extra = _PROVIDERS.get(module, (module, ""))
    brought = f" ({extra} brings it)" if extra else ""
    return (
        f"{where}: it needs the Python package {package} (module {module}), which is not "
        f"installed there; install it on the workers{brought}"
    )


def materialise_dataset(sessions: SessionFactory, store: Store, dataset_id: str) -> str:
    """Make a pending built-in dataset ready; returns its status afterwards.

    A generator error (a user fault) marks the dataset ``failed`` with the reason, and so does
    a generator that needs a package this worker lacks (a deployment fault, named plainly), or
    an artifact store that stayed unwritable through every try. A dataset deleted meanwhile
    leaves no file behind (``missing``).
    """
    with sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        if row is None:
            return "missing"
        if row.status != "pending" or row.source != "builtin":
            return row.status
        try:
            relative, sha, size, summary = generate_builtin(row, store)
        except ValueError as exc:
            log.info("dataset %s: generation failed: %s", dataset_id, exc)
            crud.mark_dataset_failed(session, dataset_id=dataset_id, error=str(exc))
            return "failed"
        except ImportError as exc:
            reason = missing_package_reason(str(row.builtin_name), exc)
            log.error("dataset %s: %s", dataset_id, reason, exc_info=True)
            crud.mark_dataset_failed(session, dataset_id=dataset_id, error=reason)
            return "failed"
        if not crud.mark_dataset_ready(
            session,
            dataset_id=dataset_id,
            path=relative,
            sha256=sha,
            size_bytes=size,
            summary=summary,
        ):
            return settle_not_pending(session, store, dataset_id, relative)
        return "ready"


def settle_not_pending(session: Session, store: Store, dataset_id: str, relative: str) -> str:
    """The status of a dataset that stopped being pending while this worker generated it. One
    deleted meanwhile gets its file removed here (the API found none to delete); one another
    delivery of the task made ready keeps the file (the same bytes, at the same path)."""
    session.expire_all()
    row = crud.get_dataset(session, dataset_id=dataset_id)
    if row is not None:
        return str(row.status)
    log.info("dataset %s: deleted while generated; removing its file", dataset_id)
    with_storage_retry(lambda: store.delete(relative), f"dataset {dataset_id}")
    return "missing"


def load_job_dataset(
    sessions: SessionFactory, store: Store, dataset_id: str | None
) -> MultimodalData:
    """The job's dataset in memory (a pending built-in one is generated first)."""
    from synib_core.data import load_npz

    if dataset_id is None:
        raise DatasetUnavailable("dataset_id: the job's dataset was deleted")
    status = materialise_dataset(sessions, store, dataset_id)
    with sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        if row is None or status == "missing":
            raise DatasetUnavailable(f"dataset_id: dataset {dataset_id} does not exist")
        if row.status != "ready" or not row.path:
            reason = f": {row.error}" if row.error else ""
            raise DatasetUnavailable(f"dataset {dataset_id} is {row.status}{reason}")
        relative = row.path
    try:
        path = with_storage_retry(lambda: store.local_copy(relative), f"dataset {dataset_id}")
    except FileNotFoundError:
        raise DatasetUnavailable(
            f"dataset {dataset_id}: its file is missing from the store"
        ) from None
    return load_npz(path)

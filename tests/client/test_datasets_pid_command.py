"""``synib datasets pid`` and the Client's PID methods against the real API app (the worker's
result written through crud, as ``synib.dataset_pid`` would), and the PID / seeds-needed lines
of ``synib report``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from api_factories import add_ready_dataset
from live_server import sample_report
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset
from synib_client.cli_format import format_pid, format_report
from synib_client.client import Client
from synib_client.errors import ApiError

Run = Any  # Callable[..., tuple[int, str, str]]: the ``cli`` fixture (conftest.py)


PAIR = {
    "modalities": ["a", "b"],
    "target": "label",
    "redundancy": 0.45,
    "unique": {"a": 0.45, "b": 0.0},
    "synergy": 0.1,
    "total": 1.0,
    "states": {"a": 4, "b": 4},
    "n": 40,
}
DONE = {
    "status": "succeeded",
    "clusters": 4,
    "pairs": [PAIR],
    "verdict": "some synergy (0.10 bits of 1.00 between a and b): SynIB may help; compare it "
    "with vanilla",
    "error": None,
}


def pid_stat(mean: float, std: float) -> dict[str, Any]:
    return {"mean": mean, "std": std, "values": [mean - std, mean + std]}


def pid_report() -> dict[str, Any]:
    report = sample_report("j1", None)
    report["data_pid"] = {"pairs": [PAIR], "verdict": DONE["verdict"], "clusters": 4}
    for name, syn in (("synib", 0.3), ("vanilla", 0.05)):
        report["methods"][name]["prediction_pid"] = {
            "a+b": {
                "redundancy": pid_stat(0.4, 0.0),
                "synergy": pid_stat(syn, 0.01),
                "total": pid_stat(0.9, 0.0),
                "unique": {"a": pid_stat(0.2, 0.0), "b": pid_stat(0.0, 0.0)},
            }
        }
    report["methods"]["synib"]["seeds_needed"] = {"test_acc": 2, "synergy_acc": 5}
    report["seeds_needed_for"] = {"gain": 0.05, "power": 0.8, "alpha": 0.05}
    return report


def test_report_prints_the_pid_verdict_prediction_synergy_and_seeds_needed() -> None:
    lines = format_report(pid_report()).splitlines()
    assert lines[1].endswith("delta synergy_acc [95% CI]  pred. synergy bits")
    assert lines[2].startswith("vanilla") and lines[2].split()[-3:] == ["0.050", "+-", "0.010"]
    assert lines[3].startswith("synib") and lines[3].endswith("0.300 +- 0.010")
    assert lines[4] == f"PID of the test labels: {DONE['verdict']}"
    assert lines[5] == (
        "seeds needed to detect +5 points with 80% power (vs vanilla): synib test_acc 2, "
        "synergy_acc 5"
    )
    assert lines[6].startswith("synib vs vanilla: synergy_acc")
    # without cvxpy on the workers: the note instead, and no PID column
    report = sample_report("j1", None)
    report["pid_note"] = "PID left out: PID estimates need cvxpy: pip install 'synib[pid]'"
    text = format_report(report)
    assert report["pid_note"] in text.splitlines() and "pred. synergy" not in text


def test_format_pid_is_hand_checked() -> None:
    assert format_pid(DONE).splitlines() == [
        "PID of the labels (4 clusters per modality)",
        "pair  redundancy  unique   unique   synergy  total (bits)",
        "a+b   0.450       a 0.450  b 0.000  0.100    1.000",
        f"verdict: {DONE['verdict']}",
    ]


def finish_later(app: Any, dataset_id: str, state: dict[str, Any]) -> threading.Thread:
    """A stand-in worker: once the PID is queued, store ``state`` as its result."""

    def work() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with app.state.session_factory() as session:
                row = crud.get_dataset(session, dataset_id=dataset_id)
                if row is not None and (row.pid or {}).get("status") == "queued":
                    crud.set_dataset_pid(session, dataset_id=dataset_id, pid=state)
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_datasets_pid_queues_and_waits(
    cli: Run, live_env: str, app: Any, dataset: Dataset, db_session: Session
) -> None:
    code, out, _ = cli("datasets", "pid", dataset.id, "--clusters", "4")
    assert code == 0 and out.strip() == (
        f"PID of dataset {dataset.id} queued (see: synib datasets show {dataset.id})"
    )
    db_session.expire_all()
    row = crud.get_dataset(db_session, dataset_id=dataset.id)
    assert row is not None and row.pid is not None
    assert (row.pid["status"], row.pid["clusters"]) == ("queued", 4)

    crud.set_dataset_pid(db_session, dataset_id=dataset.id, pid=DONE)  # an earlier result
    thread = finish_later(app, dataset.id, DONE)
    code, out, err = cli("datasets", "pid", dataset.id, "--wait", "--timeout", "30")
    thread.join()
    assert code == 0 and out.strip() == format_pid(DONE) and "waiting" in err

    failed = {**DONE, "status": "failed", "pairs": [], "verdict": None, "error": "no cvxpy"}
    thread = finish_later(app, dataset.id, failed)
    code, out, err = cli("datasets", "pid", dataset.id, "--wait", "--json", "--timeout", "30")
    thread.join()
    assert code == 1 and '"status": "failed"' in out
    assert err.strip().splitlines()[-1] == "synib datasets pid: failed: no cvxpy"


def test_datasets_pid_user_errors(
    cli: Run, live_env: str, db_session: Session, user_token: tuple[str, str], dataset: Dataset
) -> None:
    pending = add_ready_dataset(db_session, user_token[1], status="pending")
    code, out, err = cli("datasets", "pid", pending.id)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "HTTP 409" in err and "dataset is pending" in err
    code, _, err = cli("datasets", "pid", dataset.id, "--clusters", "1")
    assert code == 2 and "--clusters: expected 2..100, got 1" in err
    code, _, err = cli("datasets", "pid", "no-such-dataset")
    assert code == 2 and "HTTP 404" in err


def test_client_methods(live_env: str, dataset: Dataset, app: Any) -> None:
    with Client() as client:
        thread = finish_later(app, dataset.id, DONE)
        ds = client.request_dataset_pid(dataset.id)
        assert ds["pid"]["status"] == "queued" and ds["pid"]["clusters"] is None
        thread.join()
        assert client.wait_dataset_pid(dataset.id, timeout=5, poll=0.05) == DONE
        with pytest.raises(ApiError):
            client.request_dataset_pid(dataset.id, clusters=101)

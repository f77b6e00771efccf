"""``synib serve`` end to end: the embedded service (SQLite database, the SQLite broker, local
Ray) in a subprocess; upload a dataset, submit a job, follow its events, read the report,
download the best model, check its checksum, load it with ``synib_core.load`` and predict."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 300

pytestmark = [pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_server(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"synib serve exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"synib serve did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running ``synib serve``: {"url", "token", "process", "log"}."""
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNIB_")}
    env.pop("RAY_ADDRESS", None)
    env.update(
        {
            "SYNIB_STATE_DIR": str(root / "state"),
            "SYNIB_CONFIG_DIR": str(root / "config"),
            "SYNIB_PORT": str(port),
            "SYNIB_TEST_SANDBOX": f"/tmp/sre_{secrets.token_hex(3)}",
            "SYNIB_CPUS": "2",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, process, log)
        credentials = json.loads((root / "config" / "credentials.json").read_text())
        assert credentials["url"] == url
        yield {
            "url": url,
            "token": credentials["token"],
            "process": process,
            "log": log,
            "state": root / "state",
            "config": root / "config",
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def follow_events(client: httpx.Client, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """All (event, data) of the job's SSE stream, which ends at a terminal status."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = "message"
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=JOB_TIMEOUT_S) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
            elif not line:
                name = "message"
    return events


def test_serve_prints_the_token_once_boxed_after_the_start_up_lines(
    service: dict[str, Any],
) -> None:
    """The admin token is not lost among the children's log lines: it is printed once, in a box,
    after the API is up; ``synib token show --reveal`` prints it again."""
    log = service["log"]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not re.search(r"synib token show --reveal +\|\n\+-+\+\n", log.read_text()):
        assert time.monotonic() < deadline, f"no token box:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    lines = log.read_text().splitlines()
    token_at = [i for i, line in enumerate(lines) if service["token"] in line]
    assert len(token_at) == 1, "the token is printed more than once"
    box = lines[token_at[0] - 2 : token_at[0] + 4]
    assert box[0].startswith("+--") and box[0] == box[-1]
    assert all(line.startswith("| ") and line.endswith(" |") for line in box[1:-1])
    assert service["url"] in box[1] and len({len(line) for line in box}) == 1
    started = next(i for i, line in enumerate(lines) if "Application startup complete" in line)
    assert started < token_at[0]

    env = {**os.environ, "SYNIB_CONFIG_DIR": str(service["config"]), "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if k not in ("SYNIB_URL", "SYNIB_TOKEN")}
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "synib"), "token", "show", "--reveal"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[1] for line in shown.stdout.splitlines()] == [
        service["url"],
        service["token"],
    ]


def test_serve_trains_reports_and_serves_the_model(service: dict[str, Any], tmp_path: Path) -> None:
    from synib_core import load
    from synib_core.data import GENERATORS, save_npz

    data = GENERATORS["xor_pid"](seed=0, n_train=200, n_val=60, n_test=300)
    npz = tmp_path / "pid.npz"
    save_npz(data, npz)
    headers = {"Authorization": f"Bearer {service['token']}"}
    with httpx.Client(base_url=service["url"], headers=headers, timeout=30) as client:
        with npz.open("rb") as fh:
            resp = client.post("/api/v1/datasets", files={"file": ("pid.npz", fh)})
        assert resp.status_code == 201, resp.text
        dataset = resp.json()
        assert dataset["status"] == "ready"
        spec = {
            "dataset_id": dataset["id"],
            "methods": ["vanilla", "synib"],
            "config": {"hidden": 16, "encoder_layers": 1, "fusion_hidden": 16},
            "epochs": 2,
            "sweep": {"lambda": {"type": "grid", "values": [1.0]}},
            "seeds": [0],
        }
        resp = client.post("/api/v1/jobs", json=spec)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        # The task went through the embedded broker: a SQLite file in the state folder.
        assert (service["state"] / "broker.sqlite").is_file()

        events = follow_events(client, job_id)
        statuses = [d["status"] for name, d in events if name == "status"]
        assert statuses[-1] == "succeeded", service["log"].read_text()[-3000:]
        assert "running" in statuses
        assert {name for name, _ in events} >= {"status", "trial", "epoch", "report"}

        report = client.get(f"/api/v1/jobs/{job_id}/report").json()
        synib = report["methods"]["synib"]
        assert synib["best_config"] == {"lambda": 1.0}
        assert "test_acc" in synib["delta_vs_baseline"]
        resp = client.get(f"/api/v1/artifacts/{synib['best_artifact_id']}")
        assert resp.status_code == 200
        digest = hashlib.sha256(resp.content).hexdigest()
        assert resp.headers["X-Checksum-SHA256"] == digest

    model_zip = tmp_path / "model.zip"
    model_zip.write_bytes(resp.content)
    model = load(model_zip)
    test = data.split == 2
    pred = model.predict({m: x[test] for m, x in data.x.items()})
    assert pred.shape == (int(test.sum()),)
    accuracy = float(np.mean(pred == data.y[test]))
    assert accuracy == pytest.approx(synib["metrics"]["test_acc"]["values"][0])


def test_best_is_one_trial_everywhere_on_a_multi_lambda_multi_seed_job(
    service: dict[str, Any], tmp_path: Path
) -> None:
    """One definition of "best" (the report's: the sweep point with the best mean val_acc over
    seeds, then its best seed): GET /jobs/{id} ``best``, the report, its best artifact and
    ``synib download --best`` name the same trial for every method."""
    from synib_core import load
    from synib_core.data import GENERATORS, save_npz

    data = GENERATORS["xor_pid"](seed=1, n_train=200, n_val=60, n_test=200)
    npz = tmp_path / "pid.npz"
    save_npz(data, npz)
    headers = {"Authorization": f"Bearer {service['token']}"}
    with httpx.Client(base_url=f"{service['url']}/api/v1", headers=headers, timeout=30) as api:
        with npz.open("rb") as fh:
            dataset = api.post("/datasets", files={"file": ("pid.npz", fh)}).json()
        spec = {
            "dataset_id": dataset["id"],
            "methods": ["vanilla", "synib"],
            "config": {"hidden": 16, "encoder_layers": 1, "fusion_hidden": 16},
            "epochs": 2,
            "sweep": {"lambda": {"type": "grid", "values": [0.3, 3.0]}},
            "seeds": [0, 1],
        }
        job_id = api.post("/jobs", json=spec).raise_for_status().json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (job := api.get(f"/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"job {job_id} did not finish"
            time.sleep(1)
        assert job["status"] == "succeeded", job["failure_reason"]
        report = api.get(f"/jobs/{job_id}/report").json()
        artifacts = {a["id"]: a for a in api.get(f"/jobs/{job_id}/artifacts").json()["data"]}
        trials = {t["id"]: t for t in api.get(f"/jobs/{job_id}/trials").json()["data"]}
    assert len(trials) == 6  # vanilla ignores lambda: 2 seeds + 2 lambdas x 2 seeds
    env = {**os.environ, "SYNIB_URL": service["url"], "SYNIB_TOKEN": service["token"]}
    env["PYTHONPATH"] = str(REPO)
    for method, entry in report["methods"].items():
        best = entry["best_trial_id"]
        assert job["best"][method]["trial_id"] == best, method
        assert artifacts[entry["best_artifact_id"]]["trial_id"] == best, method
        out = tmp_path / f"best-{method}"
        downloaded = subprocess.run(
            [str(Path(sys.executable).parent / "synib"), "download", job_id, "--best", method,
             "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert downloaded.returncode == 0, downloaded.stderr
        assert load(out).extra["trial_id"] == best, method
        # The reported point: the trial's lambda is the report's best_config, its seed the best.
        assert {k: trials[best]["config"].get(k) for k in entry["best_config"]} == entry[
            "best_config"
        ]


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def test_serve_runs_the_housekeeper(service: dict[str, Any]) -> None:
    """The third child runs the housekeeping passes (Celery beat, its schedule in the state
    folder)."""
    log = service["log"]
    deadline = time.monotonic() + 120
    while "Task synib.housekeeping[" not in log.read_text():
        assert time.monotonic() < deadline, f"no housekeeping pass ran:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    assert list(service["state"].glob("housekeeper-schedule*"))


def test_serve_stops_cleanly_on_sigterm(service: dict[str, Any]) -> None:
    process = service["process"]
    children = child_pids(process.pid)
    assert len(children) == 3  # synib api, synib worker, synib housekeeper
    grandchildren = [g for c in children for g in child_pids(c)]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not [c for c in children if Path(f"/proc/{c}").exists()]
    deadline = time.monotonic() + 30  # their own children (the housekeeper's beat) follow
    while [g for g in grandchildren if Path(f"/proc/{g}").exists()]:
        assert time.monotonic() < deadline, "a child of synib serve's children outlived it"
        time.sleep(0.5)

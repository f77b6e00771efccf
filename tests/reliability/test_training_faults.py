"""Training faults: a diverging trial (NaN loss), a trial that raises, a trial that runs out of
memory under its cap and a trial whose process is killed (the kernel's OOM killer) each end
``failed`` with a one-line reason, the rest of the job succeeds, and the worker process takes
the next job. The end-to-end part runs a real Celery worker process with a local Ray; the
faults come from the test side: ``fault_hook/sitecustomize.py`` on the worker's PYTHONPATH
wraps ``synib_core.training.fit`` in every process of the worker by the rules in
``SYNIB_TEST_FAULTS`` (the service has no fault hook of its own).
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))

from db_testing import redis_url
from worker_process import create_job, create_owner, running_worker, wait_final
from worker_testing import REPO, WorkerHarness, tiny_config, tiny_pid_params

from infra.settings import Settings
from synib_spec.jobs import parse_job_spec
from worker import limits

MIB = 1024 * 1024
FAULT_HOOK = Path(__file__).resolve().parent / "fault_hook"
FAULT_RULES = [
    {"action": "raise", "method": "synib", "knobs": {"lambda": 1.0}, "epoch": 2},
    {"action": "allocate", "method": "synib", "knobs": {"lambda": 3.0}, "epoch": 1, "mib": 4096},
    {"action": "kill", "method": "synib", "knobs": {"lambda": 7.0}, "epoch": 1},
]
BROKER_URL = redis_url(12)  # its own database: no other test worker takes its jobs
JOB_CAP_MB = 256
WORKER_CAP_MB = 512


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


# ---------------------------------------------------------------- unit: caps and reasons


def test_trial_memory_cap_is_the_smaller_of_job_and_worker_settings() -> None:
    def spec(resources: dict[str, Any]) -> Any:
        return parse_job_spec({"dataset_id": "d", "methods": ["vanilla"], "resources": resources})

    capped = spec({"memory_mb_per_trial": 1024})
    assert limits.trial_memory_mb(capped, None) == 1024
    assert limits.trial_memory_mb(capped, 768) == 768
    assert limits.trial_memory_mb(spec({"memory_mb_per_trial": None}), 2048) == 2048
    assert limits.trial_memory_mb(spec({}), None) is None


def test_settings_and_job_schema_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from api.schemas.jobs import JobCreate

    assert Settings().trial_memory_mb is None
    monkeypatch.setenv("SYNIB_TRIAL_MEMORY_MB", "2048")
    assert Settings().trial_memory_mb == 2048
    assert not hasattr(Settings(), "fault_injection")  # no fault hook in the service

    job = JobCreate(dataset_id="d", methods=["vanilla"], resources={"memory_mb_per_trial": 1024})
    assert job.to_spec().to_json()["resources"]["memory_mb_per_trial"] == 1024
    assert JobCreate(dataset_id="d", methods=["vanilla"]).resources.memory_mb_per_trial is None
    with pytest.raises(ValidationError) as info:
        JobCreate(dataset_id="d", methods=["vanilla"], resources={"memory_mb_per_trial": 10})
    assert info.value.errors()[0]["loc"] == ("resources", "memory_mb_per_trial")


def test_out_of_memory_errors_are_recognised() -> None:
    alloc = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 8 bytes. Error code 12 (Cannot allocate memory)"
    )
    reason = limits.describe_out_of_memory(alloc, 1024)
    assert reason == (
        "out of memory: DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 "
        "bytes. Error code 12 (Cannot allocate memory) (the trial may allocate 1024 MiB; raise "
        "memory_mb_per_trial or lower batch_size / hidden)"
    )
    assert limits.describe_out_of_memory(MemoryError(), None) == (
        "out of memory: MemoryError (no memory cap was set; the machine ran out or lower "
        "batch_size / hidden)"
    )
    assert limits.describe_out_of_memory(RuntimeError("shape mismatch"), None) is None
    assert limits.describe_out_of_memory(ValueError("out of memory"), None) is None


def test_memory_cap_turns_a_big_allocation_into_out_of_memory_and_is_lifted_after() -> None:
    import torch

    before = resource.getrlimit(resource.RLIMIT_DATA)
    cap = 256
    with pytest.raises(RuntimeError) as info, limits.memory_cap(cap):
        small = torch.ones(MIB)  # well under the cap: fine
        assert float(small.sum()) == MIB
        torch.ones(512 * MIB, dtype=torch.uint8)
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    reason = limits.describe_out_of_memory(info.value, cap)
    assert reason is not None and reason.startswith(
        "out of memory: DefaultCPUAllocator: can't allocate memory: you tried to allocate "
        f"{512 * MIB} bytes"
    )
    assert f"the trial may allocate {cap} MiB" in reason
    assert int(torch.ones(512 * MIB, dtype=torch.uint8)[-1]) == 1  # the cap is gone


@pytest.mark.gpu
def test_cuda_out_of_memory_is_a_reason_and_the_cache_is_freed() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch.ones(1, device="cuda")
    baseline = torch.cuda.memory_reserved()
    try:
        block = torch.ones(256 * MIB, dtype=torch.uint8, device="cuda")
        del block  # leaves 256 MiB in the caching allocator
        torch.ones(10**15, dtype=torch.uint8, device="cuda")  # ~1 PB: CUDA out of memory
    except torch.cuda.OutOfMemoryError as exc:
        reason = limits.describe_out_of_memory(exc, None)
    else:
        raise AssertionError("a 1 PB allocation should fail")
    assert reason is not None and reason.startswith("out of memory: CUDA out of memory")
    assert torch.cuda.memory_reserved() > baseline
    limits.release_accelerator_memory()
    assert torch.cuda.memory_reserved() <= baseline


# ---------------------------------------------------------------- end to end: a real worker


@pytest.fixture(scope="module")
def faulty_worker(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A worker whose trials get the fault rules and a 512 MiB memory cap."""
    env = {
        "PYTHONPATH": f"{FAULT_HOOK}:{REPO}",
        "SYNIB_TEST_FAULTS": json.dumps(FAULT_RULES),
        "SYNIB_TRIAL_MEMORY_MB": str(WORKER_CAP_MB),
    }
    state = tmp_path_factory.mktemp("faulty_worker")
    with running_worker(pg_database_url, state, env, BROKER_URL) as harness:
        yield harness


@pytest.fixture(scope="module")
def faulty_job(faulty_worker: WorkerHarness) -> dict[str, Any]:
    """vanilla (fine), ensemble with lr=1e30 (NaN), synib x lambda 1, 3, 7, 10 (raises, runs
    out of memory, is killed, fine): 6 trials, 2 epochs, job cap 256 MiB per trial."""
    owner = create_owner(faulty_worker)
    spec = {
        "methods": ["vanilla", {"name": "ensemble", "config": {"lr": 1e30}}, "synib"],
        "config": tiny_config(),
        "epochs": 2,
        "sweep": {"lambda": {"type": "grid", "values": [1.0, 3.0, 7.0, 10.0]}},
        "seeds": [0],
        "resources": {"cpus_per_trial": 1, "memory_mb_per_trial": JOB_CAP_MB},
        "baseline": "vanilla",
    }
    job_id = create_job(faulty_worker, owner, spec, {**tiny_pid_params(), "seed": 0})
    faulty_worker.send("synib.run_job", job_id)
    status = wait_final(faulty_worker, job_id)
    from infra.db import crud

    with faulty_worker.sessions() as session:
        job = crud.get_job(session, job_id=job_id)
        trials = {t.trial_key: t for t in crud.list_trials(session, job_id=job_id)}
        epochs = {
            k: [m.epoch for m in crud.list_epoch_metrics(session, trial_id=t.id)]
            for k, t in trials.items()
        }
        events = [
            e.data
            for e in crud.list_events(session, job_id=job_id, limit=10_000)
            if e.type == "trial"
        ]
    return {
        "owner": owner,
        "status": status,
        "job": job,
        "trials": trials,
        "epochs": epochs,
        "events": events,
    }


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_faulty_trials_fail_with_reasons_and_the_job_succeeds(faulty_job: dict[str, Any]) -> None:
    job, trials = faulty_job["job"], faulty_job["trials"]
    summary = {k: (t.status, t.failure_reason) for k, t in trials.items()}
    assert faulty_job["status"] == "succeeded", (job.failure_reason, summary)
    assert job.failure_reason is None
    assert (job.trials_total, job.trials_done) == (6, 6)
    for key in ("vanilla|seed=0", "synib|lambda=10|seed=0"):
        assert (trials[key].status, trials[key].epochs_done) == ("succeeded", 2), key
        assert trials[key].failure_reason is None and "test_acc" in trials[key].metrics
    failed = {k: t for k, t in trials.items() if t.status == "failed"}
    assert sorted(failed) == [
        "ensemble|seed=0",
        "synib|lambda=1|seed=0",
        "synib|lambda=3|seed=0",
        "synib|lambda=7|seed=0",
    ]
    nan = failed["ensemble|seed=0"].failure_reason
    assert nan.startswith("TrainingDiverged: training diverged: loss is ")
    assert nan.endswith("(try a lower lr or lambda)")
    assert failed["synib|lambda=1|seed=0"].failure_reason == (
        "InjectedFault: injected at epoch 2 of synib (lambda=1.0), seed 0"
    )
    # Epoch 1 was reported before the fault; epoch 2 had trained (and was checkpointed) when it
    # struck at the epoch's end, so a resume-aware runner may record it too.
    assert failed["synib|lambda=1|seed=0"].epochs_done in (1, 2)
    assert faulty_job["epochs"]["synib|lambda=1|seed=0"][0] == 1
    oom = failed["synib|lambda=3|seed=0"].failure_reason
    assert oom.startswith(
        "out of memory: DefaultCPUAllocator: can't allocate memory: you tried to allocate "
        f"{4096 * MIB} bytes"
    )
    assert f"the trial may allocate {JOB_CAP_MB} MiB" in oom  # the job's cap, below the worker's
    killed = failed["synib|lambda=7|seed=0"].failure_reason
    assert killed and killed.startswith("the trial's process died"), killed
    # One line each, never a Ray traceback (paths, pids, colour codes).
    for trial in failed.values():
        assert not any(s in trial.failure_reason for s in ("\n", "pid=", "\x1b", "Traceback"))
    # Each failure also went out as a `trial` event with the same reason.
    for key, trial in failed.items():
        last = [e for e in faulty_job["events"] if e["trial_key"] == key][-1]
        assert (last["status"], last["failure_reason"]) == ("failed", trial.failure_reason)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_report_counts_failed_trials_per_method(faulty_job: dict[str, Any]) -> None:
    methods = faulty_job["job"].report["methods"]
    assert {m: methods[m]["trials_failed"] for m in methods} == {
        "vanilla": 0,
        "ensemble": 1,
        "synib": 3,
    }
    assert methods["synib"]["best_config"] == {"lambda": 10.0}
    assert methods["ensemble"]["best_config"] is None


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_worker_survives_and_takes_the_next_job(
    faulty_worker: WorkerHarness, faulty_job: dict[str, Any]
) -> None:
    from infra.db import crud

    assert faulty_worker.process.poll() is None, "the Celery worker process died"
    spec = {"methods": ["vanilla"], "config": tiny_config(), "epochs": 1, "seeds": [0]}
    job_id = create_job(faulty_worker, faulty_job["owner"], spec, {**tiny_pid_params(), "seed": 1})
    faulty_worker.send("synib.run_job", job_id)
    assert wait_final(faulty_worker, job_id) == "succeeded"
    with faulty_worker.sessions() as session:
        (trial,) = crud.list_trials(session, job_id=job_id)
    assert (trial.status, trial.epochs_done) == ("succeeded", 1)  # under the worker's 512 MiB cap
    assert faulty_worker.process.poll() is None

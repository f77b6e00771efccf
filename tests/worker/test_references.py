"""The unimodal references beside the trials (worker/references.py, worker/trainable.py), on a
real local Ray with one CPU: they run while every CPU is held, their predictions reach the
trials after the last epoch, a failed one names its seed and cause, and a cancelled job stops
them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from infra.settings import Settings
from synib_core.data import MultimodalData, make_dataset
from synib_spec.jobs import Resources
from worker import ray_session
from worker.references import (
    JobCancelled,
    ReferenceCheck,
    cancel_references,
    start_references,
    wait_for_references,
)
from worker.trainable import ReferencesFailed, reference_predictions, seed_references
from worker.tune_runner import fit_off_main_thread

pytestmark = pytest.mark.slow

KNOBS: dict[str, Any] = {
    "encoder": "mlp", "hidden": 16, "encoder_layers": 1, "fusion": "concat_mlp",
    "fusion_hidden": 8, "batch_size": 32, "epochs": 2, "device": "cpu",
}  # fmt: skip


class Watch:
    """What ``wait_for_references`` asks of the job's CancelWatch: ``check()``."""

    def __init__(self, cancelled: bool = False) -> None:
        self.cancelled = cancelled
        self.checks = 0

    def check(self) -> bool:
        self.checks += 1
        return self.cancelled


@pytest.fixture(scope="module")
def one_cpu_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    state = tmp_path_factory.mktemp("references")
    ray_session.ensure_ray(Settings(state_dir=state, cpus=1, gpus=0, ray_address=None))
    yield
    ray_session.shutdown_ray()


@pytest.fixture(scope="module")
def data() -> MultimodalData:
    return make_dataset("xor_pid", 0, n_train=200, n_val=50, n_test=120)


def test_references_run_while_the_trials_hold_every_cpu(
    one_cpu_ray: None, data: MultimodalData
) -> None:
    import ray

    @ray.remote(num_cpus=1)
    class HoldsTheCpu:  # a running trial's actor
        def ready(self) -> bool:
            return True

    holder = HoldsTheCpu.remote()  # type: ignore[attr-defined]
    ray.get(holder.ready.remote())
    assert ray.available_resources().get("CPU", 0) == 0
    try:
        pending = start_references(KNOBS, data, [0, 1], Resources(cpus_per_trial=1))
        # With a CPU each they would wait for the trial to end: here, forever.
        done, _ = ray.wait(list(pending.values()), num_returns=2, timeout=60)
        assert len(done) == 2, "the references waited for a CPU"
        refs = wait_for_references(pending, Watch())
    finally:
        ray.kill(holder)
    assert set(refs) == {0, 1}
    for seed in (0, 1):
        assert set(refs[seed]) == {"a", "b"}
        for pred in refs[seed].values():
            assert pred.shape == (120,) and pred.dtype == np.int64
    # The same predictions as trained in this process: the references are deterministic.
    direct = reference_predictions(KNOBS, data, 1, 1)
    assert all(np.array_equal(direct[m], refs[1][m]) for m in ("a", "b"))


def test_a_trial_fetches_its_seeds_references_when_asked(
    one_cpu_ray: None, data: MultimodalData
) -> None:
    pending = start_references(KNOBS, data, [3], Resources(cpus_per_trial=1))
    fetch = seed_references(pending, 3)  # what fit calls after the last epoch
    got = fetch()
    assert got is not None and set(got) == {"a", "b"}
    assert seed_references(pending, 4)() is None  # no references for that seed: no synergy
    given = {"a": np.zeros(120, dtype=np.int64)}
    assert seed_references({0: given}, 0)() is given  # ready predictions pass through


def test_a_failed_reference_task_names_its_seed_and_cause(one_cpu_ray: None) -> None:
    import ray

    def fails(seed: int) -> dict[str, np.ndarray]:  # local: Ray pickles it by value
        raise ValueError(f"no modality could be trained for seed {seed}")

    ref = ray.remote(fails).options(num_cpus=0, max_retries=0).remote(7)
    with pytest.raises(ReferencesFailed) as trial_error:
        seed_references({7: ref}, 7)()
    expected = "unimodal references of seed 7 failed: ValueError: no modality could be trained"
    assert str(trial_error.value).startswith(expected)
    with pytest.raises(ReferencesFailed) as job_error:  # a ValueError: the job fails with it
        wait_for_references({7: ref}, Watch())
    assert isinstance(job_error.value, ValueError)
    assert str(job_error.value).startswith(expected)


def test_a_cancelled_job_stops_waiting_and_its_references_are_stopped(one_cpu_ray: None) -> None:
    import ray

    def sleeps(seconds: float) -> dict[str, np.ndarray]:
        time.sleep(seconds)
        return {}

    ref = ray.remote(sleeps).options(num_cpus=0, max_retries=0).remote(120)
    watch = Watch(cancelled=True)
    t0 = time.monotonic()
    with pytest.raises(JobCancelled):
        wait_for_references({0: ref}, watch)
    assert watch.checks == 1 and time.monotonic() - t0 < 10
    cancel_references({0: ref})
    with pytest.raises(ray.exceptions.RayError):  # cancelled (its process killed), not finished
        ray.get(ref, timeout=30)
    cancel_references({})  # nothing to stop: no error


class Stoppable:
    """What ``fit_off_main_thread`` asks of the job's CancelWatch (``interrupt``), and a stand-in
    for Tune's run: ``fit`` trains until the stopper says stop (Tune asks it every step)."""

    job_id = "job"

    def __init__(self) -> None:
        self.interrupted: str | None = None

    def interrupt(self, reason: str) -> None:
        self.interrupted = reason

    def fit(self) -> None:
        deadline = time.monotonic() + 60
        while self.interrupted is None and time.monotonic() < deadline:
            time.sleep(0.05)


def test_a_failed_reference_stops_the_trials_at_once(one_cpu_ray: None) -> None:
    """Not after the trials' last epoch: the job cannot be reported without its references."""
    import ray

    def fails(seed: int) -> dict[str, np.ndarray]:
        time.sleep(1.0)
        raise ValueError(f"seed {seed} diverged")

    def works(seed: int) -> dict[str, np.ndarray]:
        return {"a": np.zeros(3, dtype=np.int64)}

    options = {"num_cpus": 0, "max_retries": 0}
    pending = {0: ray.remote(works).options(**options).remote(0),
               1: ray.remote(fails).options(**options).remote(1)}  # fmt: skip
    check = ReferenceCheck(pending)
    assert check.failure() is None  # nothing failed yet (the first may be done: it passed)
    run = Stoppable()
    started = time.monotonic()
    fit_off_main_thread(run, run, check, check_every_s=0.2)  # type: ignore[arg-type]
    assert time.monotonic() - started < 15
    assert run.interrupted is not None
    assert run.interrupted.startswith("unimodal references of seed 1 failed: ValueError: seed 1")
    assert check.waiting == {}  # each finished task is looked at once
    with pytest.raises(ReferencesFailed, match="seed 1 failed"):  # how the job then fails
        wait_for_references(pending, Watch())

"""The worker's Ray (worker/ray_session.py) in this process, with a real local Ray: started at
the first job with ``ray.init``'s public arguments only, kept for the next job, started again
when it is gone, and the signal handlers Ray replaces put back after each job."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from worker import ray_session

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    yield Settings(state_dir=tmp_path, cpus=1, gpus=0, ray_address=None)
    ray_session.shutdown_ray()


def test_init_arguments_are_public_ones_for_a_local_ray_or_a_cluster(settings: Settings) -> None:
    local = ray_session.ray_init_kwargs(settings)
    assert local["address"] == "local"  # a private Ray, never one found on the machine
    assert (local["num_cpus"], local["num_gpus"], local["include_dashboard"]) == (1, 0, False)
    assert not [key for key in local if key.startswith("_")]
    cluster = settings.model_copy(update={"ray_address": "ray://head:10001"})
    assert ray_session.ray_init_kwargs(cluster) == {
        "address": "ray://head:10001",
        "log_to_driver": False,
        "configure_logging": False,
    }


def test_one_ray_is_kept_across_jobs_and_started_again_when_gone(settings: Settings) -> None:
    import ray

    with ray_session.ray_for_job(settings):
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 1
        node = ray.get_runtime_context().get_node_id()
    with ray_session.ray_for_job(settings):
        assert ray.get_runtime_context().get_node_id() == node  # the same Ray, not a new one
    ray.shutdown()  # gone between jobs (the worker process ends it with itself otherwise)
    with ray_session.ray_for_job(settings):
        assert ray.is_initialized() and ray.get_runtime_context().get_node_id() != node
    ray_session.shutdown_ray()
    assert not ray.is_initialized()


def test_handlers_ray_replaces_during_a_job_are_put_back(settings: Settings) -> None:
    def mine(signum: int, frame: Any) -> None:
        return None

    before = {num: signal.getsignal(num) for num in (signal.SIGTERM, signal.SIGUSR1)}
    signal.signal(signal.SIGTERM, mine)
    signal.signal(signal.SIGUSR1, mine)
    try:
        with ray_session.ray_for_job(settings):
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # what Tune's fit does to SIGUSR1
        assert signal.getsignal(signal.SIGTERM) is mine  # ray.init's own handler is gone too
        assert signal.getsignal(signal.SIGUSR1) is mine
    finally:
        for num, handler in before.items():
            signal.signal(num, handler)

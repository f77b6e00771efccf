"""The worker's Ray lifetime (worker/ray_session.py) in this process, with a real local Ray:
kept across jobs by default, or started and stopped per job with ``ray_keep_alive=false``."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.settings import Settings
from worker import ray_session

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    ray_tmp = Path(f"/tmp/srs_{secrets.token_hex(3)}")  # short: Ray's socket path limit
    yield Settings(state_dir=tmp_path, ray_tmp_dir=ray_tmp, cpus=1, ray_address=None)
    ray_session.shutdown_ray()
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_keep_alive_reuses_one_ray_and_a_background_start(settings: Settings) -> None:
    import ray

    assert ray_session.start_in_background(settings) is not None
    with ray_session.ray_for_job(settings):  # waits for the background start and warm-up
        assert ray.is_initialized()
        node = ray.get_runtime_context().get_node_id()
    with ray_session.ray_for_job(settings):
        assert ray.get_runtime_context().get_node_id() == node  # the same Ray, not a new one
    assert ray.is_initialized()
    ray_session.shutdown_ray(settings)
    assert not ray.is_initialized()


def test_without_keep_alive_each_job_starts_and_stops_its_ray(settings: Settings) -> None:
    import ray

    per_job = settings.model_copy(update={"ray_keep_alive": False})
    assert ray_session.start_in_background(per_job) is None
    with ray_session.ray_for_job(per_job):
        assert ray.is_initialized()
    assert not ray.is_initialized()

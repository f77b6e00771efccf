"""The worker's Ray lifetime (worker/ray_session.py) in this process, with a real local Ray:
kept across jobs by default, or started and stopped per job with ``ray_keep_alive=false``."""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from worker import ray_session
from worker.ray_envs import READY_TITLE

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


def test_tune_actors_start_in_processes_prestarted_with_ray_tune(settings: Settings) -> None:
    """After the warm-up, an idle process waits for each CPU's Tune actor with Ray Tune
    imported; an actor made the way Tune makes them (its class cache, its runtime
    environment) starts in it, and after the job the worker starts a new one for the next."""
    import ray
    from ray.tune.execution.class_cache import _ActorClassCache

    from worker import actor_prestart

    ray_session.start_in_background(settings)
    with ray_session.ray_for_job(settings):
        idle = actor_prestart.actor_processes()
        assert len(idle) == 1 and set(idle.values()) == {READY_TITLE}, idle
        # Every Ray worker process is one of ours: none that Ray starts for the driver by
        # itself (``prestart_worker_first_driver``), in neither of our environments.
        kinds = {pid: _environment_kind(pid) for pid in _ray_worker_processes()}
        assert kinds and set(kinds.values()) <= {"tasks", "tune actor"}, kinds

        class Probe:
            def where(self) -> tuple[int, bool]:
                import os
                import sys

                return os.getpid(), "ray.tune.trainable.function_trainable" in sys.modules

        actor = _ActorClassCache().get(Probe).options(num_cpus=0).remote()
        pid, tune_imported = ray.get(actor.where.remote(), timeout=60)
        assert pid in idle and tune_imported
        assert actor_prestart.actor_processes() == {}  # taken: none idle until topped up
        ray.kill(actor)
    ray_session.prepare_next_job(settings)
    again = actor_prestart.actor_processes()
    assert len(again) == 1 and pid not in again, (pid, again)


def test_prestarting_tune_actor_processes_can_be_turned_off(settings: Settings) -> None:
    from worker import actor_prestart

    off = settings.model_copy(update={"ray_prestart_actors": 0})
    ray_session.start_in_background(off)
    with ray_session.ray_for_job(off):
        assert actor_prestart.actor_processes() == {}
    ray_session.prepare_next_job(off)
    assert actor_prestart.actor_processes() == {}


def _ray_worker_processes() -> list[int]:
    """The Ray worker processes of this process's local Ray (not Ray's daemons or agents)."""
    import os

    from worker import ray_owners

    pids = []
    for pid in ray_owners.processes_of(os.environ[ray_owners.OWNER_ENV]):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            # Idle (``ray::IDLE...``), or still starting: ``python .../default_worker.py``.
            starting = len(argv) > 1 and argv[1].endswith("default_worker.py")
            if argv[0].startswith("ray::IDLE") or starting:
                pids.append(pid)
    return pids


def _environment_kind(pid: int) -> str:
    """``tasks`` (the task pool's environment), ``tune actor`` or ``other``."""
    from worker import actor_prestart, ray_envs

    environ = actor_prestart.process_environ(pid)
    if ray_envs.is_tune_actor_process(environ):
        return "tune actor"
    return "tasks" if ray_envs.TASK_POOL_VAR in environ else "other"

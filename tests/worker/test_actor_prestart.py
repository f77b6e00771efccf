"""How the worker tells its Ray worker processes apart (worker/ray_envs.py) and finds the idle
ones prestarted for Tune's actors (worker/actor_prestart.py), without Ray: real child processes
with the command lines and environments Ray gives its workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from infra.settings import Settings
from worker import actor_prestart, ray_envs, ray_owners


def test_tune_still_gives_its_actors_the_variable_we_recognise_them_by() -> None:
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS

    name, value = ray_envs.TUNE_ACTOR_VAR
    assert DEFAULT_ENV_VARS.get(name) == value


def test_the_task_pool_environment_is_tunes_plus_the_marker() -> None:
    actor = ray_envs.tune_actor_env()["env_vars"]
    tasks = ray_envs.task_pool_env()["env_vars"]
    assert tasks == {**actor, ray_envs.TASK_POOL_VAR: "tasks"}
    assert ray_envs.is_tune_actor_process(actor)
    assert not ray_envs.is_tune_actor_process(tasks)
    assert not ray_envs.is_tune_actor_process({})  # e.g. the processes ray.init prestarts


def test_serialized_is_the_compact_sorted_text_rays_core_worker_writes() -> None:
    env = {"env_vars": {"b": "2", "a": "1"}}
    assert ray_envs.serialized(env) == '{"env_vars":{"a":"1","b":"2"}}'
    assert json.loads(ray_envs.serialized(env)) == env


def test_target_is_one_per_cpu_unless_configured() -> None:
    assert actor_prestart.target(Settings(ray_prestart_actors=None), 4) == 4
    assert actor_prestart.target(Settings(ray_prestart_actors=None), 0) == 1
    assert actor_prestart.target(Settings(ray_prestart_actors=0), 4) == 0
    assert actor_prestart.target(Settings(ray_prestart_actors=3), 1) == 3


def test_top_up_does_nothing_on_a_cluster_or_when_turned_off() -> None:
    # No Ray here: a top-up that tried to reach a raylet would log a failure, not return [].
    assert actor_prestart.top_up(Settings(ray_address="ray://elsewhere:10001"), 2) == []
    assert actor_prestart.top_up(Settings(ray_prestart_actors=0, ray_address=None), 2) == []


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Sleeping child processes carrying this process's Ray owner token (as the processes of
    the local Ray it starts do): a Ray worker starting in Tune's environment, one in the task
    pool's, one with no runtime environment, one titled as a busy actor and a non-Ray one; and
    a Ray worker in Tune's environment that belongs to another owner."""
    monkeypatch.setenv(ray_owners.OWNER_ENV, "test-owner-token")
    sleep = "import time; time.sleep(60)"
    tune = {**os.environ, **ray_envs.tune_actor_env()["env_vars"]}
    tune.pop(ray_envs.TASK_POOL_VAR, None)
    tasks = {**tune, ray_envs.TASK_POOL_VAR: "tasks"}
    plain = {k: v for k, v in tune.items() if k != ray_envs.TUNE_ACTOR_VAR[0]}
    other_owner = {**tune, ray_owners.OWNER_ENV: "another-owner-token"}
    worker = [sys.executable, "-c", sleep, "/ray/_private/workers/default_worker.py"]
    busy = ["bash", "-c", f"exec -a ray::ImplicitFunc {sys.executable} -c '{sleep}'"]
    specs = {
        "tune_starting": (worker, tune),
        "tasks": (worker, tasks),
        "plain": (worker, plain),
        "busy_actor": (busy, tune),
        "not_ray": ([sys.executable, "-c", sleep], tune),
        "other_owner": (worker, other_owner),
    }
    procs = {name: subprocess.Popen(argv, env=env) for name, (argv, env) in specs.items()}
    time.sleep(0.5)  # exec done
    yield {name: p.pid for name, p in procs.items()}
    for p in procs.values():
        p.kill()
        p.wait()


def test_actor_processes_are_worker_processes_in_tunes_environment_not_busy(
    children: dict[str, int],
) -> None:
    found = actor_prestart.actor_processes()
    assert set(found) == {children["tune_starting"]}, (found, children)
    assert "default_worker.py" in found[children["tune_starting"]]  # still starting: not idle


def test_no_actor_processes_without_a_local_ray_of_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ray_owners.OWNER_ENV, raising=False)
    assert actor_prestart.actor_processes() == {}


@pytest.fixture
def titled(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Child processes in Tune's environment titled as Ray and ``ray_preload`` title them:
    connected (``ray::IDLE``, before the preload module runs), importing Ray Tune, ready."""
    monkeypatch.setenv(ray_owners.OWNER_ENV, "test-owner-token")
    tune = {**os.environ, **ray_envs.tune_actor_env()["env_vars"]}
    tune.pop(ray_envs.TASK_POOL_VAR, None)
    titles = {
        "connected": actor_prestart.IDLE_TITLE,
        "importing": ray_envs.IMPORTING_TITLE,
        "ready": ray_envs.READY_TITLE,
    }
    code = "import sys, time, ray._raylet as r; r.setproctitle(sys.argv[1]); time.sleep(60)"
    procs = {
        name: subprocess.Popen([sys.executable, "-c", code, title], env=tune)
        for name, title in titles.items()
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until each has set its title
        if all(_cmdline(p.pid) == titles[n] for n, p in procs.items()):
            break
        time.sleep(0.1)
    yield {name: p.pid for name, p in procs.items()}
    for p in procs.values():
        p.kill()
        p.wait()


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def test_top_up_waits_for_ready_processes_not_those_only_connected(
    titled: dict[str, int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ray titles a new worker process ``ray::IDLE`` when it connects, before it imports its
    preload modules: only ``READY_TITLE`` means Ray Tune is imported."""
    found = actor_prestart.actor_processes()
    assert found == {
        titled["connected"]: actor_prestart.IDLE_TITLE,
        titled["importing"]: ray_envs.IMPORTING_TITLE,
        titled["ready"]: ray_envs.READY_TITLE,
    }
    requested: list[int] = []
    monkeypatch.setattr(actor_prestart, "request", requested.append)
    settings = Settings(ray_prestart_actors=3, ray_address=None)
    assert actor_prestart.top_up(settings, 1, wait_s=0.5) == [titled["ready"]]
    assert requested == []  # 3 present (starting or not): none missing
    assert "1 of 3 processes for Tune's actors idle" in caplog.text

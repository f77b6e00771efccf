"""Idle Ray worker processes for the next job's Tune actors, started before the job.

Ray Tune runs each trial slot in an actor: on 2 CPUs, a job with 2 trials at a time starts 2.
Ray gives an actor an idle process only if that process never ran a task, and it starts
processes of its own only for the tasks and actors it is asked to run, so every job's actors
started new processes during the job: a process, Ray, and Ray Tune's imports (pandas, pyarrow,
Ray Data), about 3.5 CPU-seconds each when two started at once. On 2 cores, with two trials
training, those seconds add to the job's wall time.

So the worker asks its local raylet to start the processes beforehand: the raylet's
``PrestartWorkers`` gRPC call (internal to Ray; Ray 2.60's Python API does not expose it), with
this driver's job id and Tune's actor runtime environment (``ray_envs.tune_actor_env``, in the
text Ray gives the actors: ``ray_envs.serialized``), kept alive until used. Each imports Ray
Tune when it starts (``worker.ray_preload``). The worker tops the idle ones up to ``target``
when its Ray has warmed up and after every job (Tune ends its actors, and their processes, with
the job).

Local Ray only (a cluster's raylets belong to the cluster). Anything that fails here is logged
and skipped: a job's actors then start their own processes, as Ray does by default.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from worker import ray_owners
from worker.ray_envs import (
    IMPORTING_TITLE,
    READY_TITLE,
    is_tune_actor_process,
    serialized,
    tune_actor_env,
)

if TYPE_CHECKING:
    from infra.settings import Settings

log = logging.getLogger(__name__)

# Keep an unused prestarted process this long (the raylet's keep-alive; it is topped up
# after every job anyway).
KEEP_ALIVE_S = 7 * 24 * 3600
IDLE_TITLE = "ray::IDLE"  # Ray's title of an idle worker process (here: not yet importing)


def target(settings: Settings, cpus: int) -> int:
    """Idle Tune actor processes to keep (``settings.ray_prestart_actors``): by default one per
    CPU, the most trials a CPU-only job runs at once here (one Tune actor each)."""
    if settings.ray_prestart_actors is not None:
        return settings.ray_prestart_actors
    return max(1, int(cpus))


def actor_processes() -> dict[int, str]:
    """The Ray worker processes of this process's local Ray (those carrying its owner token,
    ``ray_owners``) started in Tune's actor environment and not yet running an actor, by pid,
    with their title: ``ray_envs.READY_TITLE`` when ready, ``ray_envs.IMPORTING_TITLE`` while
    they import Ray Tune, ``ray::IDLE`` or the command line before. (Read from ``/proc``: Linux
    only, like ``ray_owners``.)"""
    token = os.environ.get(ray_owners.OWNER_ENV)
    if not token:
        return {}  # no local Ray started by this process
    found: dict[int, str] = {}
    for pid in ray_owners.processes_of(token):
        try:
            title = " ".join(_read(pid, "cmdline").replace("\0", " ").split())
            if title.startswith("ray::"):
                if title not in (IDLE_TITLE, IMPORTING_TITLE, READY_TITLE):
                    continue  # running an actor or a task, or one of Ray's daemons
            elif "default_worker.py" not in title:
                continue  # not a Ray worker process
            environ = process_environ(pid)
        except OSError:  # ended meanwhile
            continue
        if is_tune_actor_process(environ):
            found[pid] = title
    return found


def process_environ(pid: int) -> dict[str, str]:
    """The environment a process started with (``/proc/<pid>/environ``); OSError if it is gone."""
    return dict(item.split("=", 1) for item in _read(pid, "environ").split("\0") if "=" in item)


def _read(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read().decode(errors="replace")


def request(count: int) -> None:
    """Ask the local raylet to start ``count`` worker processes for Tune's actors (the call
    returns at once; the processes start in the background)."""
    import grpc
    import ray
    from ray._private.utils import get_runtime_env_info, parse_runtime_env_for_task_or_actor
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc

    context = ray.get_runtime_context()
    node = next(n for n in ray.nodes() if n["NodeID"] == context.get_node_id())
    env = tune_actor_env()
    env_info = get_runtime_env_info(
        parse_runtime_env_for_task_or_actor(env), is_job_runtime_env=False, serialize=False
    )
    # The text Tune's actors get (merged with the job environment): ray_envs explains.
    env_info.serialized_runtime_env = serialized(env)
    message = node_manager_pb2.PrestartWorkersRequest(  # type: ignore[attr-defined]
        language=common_pb2.PYTHON,  # type: ignore[attr-defined]
        job_id=bytes.fromhex(context.get_job_id()),
        runtime_env_info=env_info,
        keep_alive_duration_secs=KEEP_ALIVE_S,
        num_workers=count,
    )
    with grpc.insecure_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}") as ch:
        node_manager_pb2_grpc.NodeManagerServiceStub(ch).PrestartWorkers(message, timeout=10)


def top_up(settings: Settings, cpus: int, wait_s: float = 30.0) -> list[int]:
    """Start what is missing of ``target`` idle Tune actor processes and wait (up to
    ``wait_s``) until they are idle, their imports done. Returns the idle ones' pids
    (empty when turned off, on a cluster, or when it failed: logged)."""
    want = target(settings, cpus)
    if want == 0 or settings.ray_address:
        return []
    try:
        present = actor_processes()
        missing = want - len(present)
        if missing > 0:
            request(missing)
        t0 = time.perf_counter()
        deadline = time.monotonic() + wait_s
        idle = [pid for pid, title in present.items() if title == READY_TITLE]
        while len(idle) < want and time.monotonic() < deadline:
            time.sleep(0.1)
            idle = [pid for pid, title in actor_processes().items() if title == READY_TITLE]
    except Exception:
        log.warning("could not prestart processes for Tune's actors; a job's actors will "
                    "start their own", exc_info=True)  # fmt: skip
        return []
    if len(idle) < want:
        log.warning("%d of %d processes for Tune's actors idle after %.0f s", len(idle), want,
                    wait_s)  # fmt: skip
    elif missing > 0:
        log.info("prestarted %d process(es) for Tune's actors in %.2f s (idle: pids %s)",
                 missing, time.perf_counter() - t0, " ".join(map(str, sorted(idle))))  # fmt: skip
    return sorted(idle)

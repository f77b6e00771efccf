"""One Ray per worker process: started (or joined) once, kept across jobs, shut down when the
process ends.

Local mode: a private Ray with a short temp dir (socket path limit), a capped object store, no
dashboard and ``RAY_AUTH_MODE=disabled``. ``settings.ray_address`` (or ``RAY_ADDRESS``, read
by the settings) joins an existing cluster instead.

Lifetime (``settings.ray_keep_alive``, default on): a Celery pool child starts its Ray in a
background thread as soon as it is forked (``start_in_background``), warms a pool of Ray worker
processes for the jobs' tasks (torch and synib_core imported: ``warm_up``) and prestarts idle
processes for the jobs' Tune actors (Ray Tune imported: ``worker.actor_prestart``, topped up
after every job by ``prepare_next_job``), and keeps all of it for every job it runs, so a job
pays neither ``ray.init`` (seconds) nor these imports. A Ray that died between jobs is started
again. With ``ray_keep_alive=false`` every job starts and stops its own
Ray (memory is returned between jobs; each job pays the start).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.settings import Settings
from worker import actor_prestart, ray_owners
from worker.ray_envs import task_pool_env, tune_actor_env

log = logging.getLogger(__name__)

DEFAULT_OBJECT_STORE_MB = 512
MAX_TEMP_DIR_CHARS = 40

_started_here = False
_owner: ray_owners.Owner | None = None
last_init_seconds: float | None = None
_lock = threading.Lock()  # one ensure_ray at a time (background start vs. a job)
_background: tuple[threading.Thread, threading.Event] | None = None  # (thread, started)
_keep_parent = threading.Event()  # set when the background thread may end


def ray_init_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``ray.init`` for these settings (cluster or private local Ray)."""
    common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if settings.ray_address:
        return {"address": settings.ray_address, **common}
    temp_dir = str(settings.ray_tmp_dir)
    if len(temp_dir) > MAX_TEMP_DIR_CHARS:
        raise ValueError(
            f"ray_tmp_dir: {temp_dir!r} is longer than {MAX_TEMP_DIR_CHARS} characters "
            "(Ray's socket paths would overflow); choose a short path such as /tmp/synib_ray"
        )
    object_store_mb = int(getattr(settings, "ray_object_store_mb", None) or DEFAULT_OBJECT_STORE_MB)
    gpus = {} if settings.gpus is None else {"num_gpus": settings.gpus}
    cpus = settings.cpus or os.cpu_count() or 1
    return {
        **gpus,
        "num_cpus": cpus,
        "include_dashboard": False,
        "_temp_dir": temp_dir,
        "object_store_memory": object_store_mb * 1024 * 1024,
        # Tune's actor environment for the whole job, so that Ray writes every task's and
        # actor's environment the same way (merged: worker/ray_envs.py explains why).
        "runtime_env": tune_actor_env(),
        "_system_config": {
            # Ray ends idle worker processes beyond this many (its default: one per CPU), and
            # with them their imports: keep the whole warm pool (``warm_pool_size``) and the
            # processes prestarted for Tune's actors (``worker.actor_prestart``).
            "num_workers_soft_limit": warm_pool_size(settings, cpus)
            + actor_prestart.target(settings, cpus),
            # Every new worker process imports this first: Ray Tune, in those prestarted for
            # Tune's actors (nothing in the others).
            "preload_python_modules": ["worker.ray_preload"],
            # Ray would start one process per CPU when the driver connects, in neither of our
            # environments (``worker.ray_envs``; they carry neither Tune's variables nor the
            # task pool's marker), so no task or actor of ours runs there: they would only
            # idle (about 0.9% of a core each, for Ray's own timers) and hold memory. The
            # warm-up and the prestart start ours.
            "prestart_worker_first_driver": False,
        },
        **common,
    }


def warm_pool_size(settings: Settings, cpus: int) -> int:
    """Ray worker processes a local Ray keeps warm (``settings.ray_warm_workers``), by default
    one per CPU for the trials' tasks (``trainable.trial_epochs``) and one per CPU, up to 4,
    for the reference tasks that train beside them (one per seed). Each holds torch and the
    training code: about 0.35 GB of private memory here."""
    if settings.ray_warm_workers:
        return int(settings.ray_warm_workers)
    cpus = max(1, int(cpus))
    return cpus + min(cpus, 4)


def ensure_ray(settings: Settings) -> bool:
    """Start or join Ray unless this process already has a live one; True if this call started
    it (a Ray whose processes died is shut down and started again)."""
    with _lock:
        return _ensure_ray_locked(settings)


def _ray_alive() -> bool:
    import ray

    try:
        ray.available_resources()  # a GCS round trip: fails when the cluster is gone
        return True
    except Exception:
        log.warning("the worker's Ray is not answering; starting it again", exc_info=True)
        return False


def _ensure_ray_locked(settings: Settings) -> bool:
    global _started_here, last_init_seconds, _owner
    import ray

    if ray.is_initialized():
        if _ray_alive():
            return False
        shutdown_ray(settings)
    if not settings.ray_address:
        # Only a private local Ray may run without auth (it listens on localhost only).
        os.environ["RAY_AUTH_MODE"] = "disabled"
        # Mark the Ray processes this process starts, so that if it is killed before
        # shutting Ray down, a reconciler can find and end them (worker/ray_owners.py).
        _owner = ray_owners.register_owner(settings.state_dir)
    # Tune saves its experiment state after every epoch's results; its "excessive snapshot"
    # warning about that is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # No JSON, CSV and TensorBoard files per trial: the database is the record of every epoch.
    # The TensorBoard logger alone imported tensorboardX and torch into the driver when a job
    # started (3 s here), and the three wrote a file each per epoch.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Tune's result grid (which no job reads) then warns that those files are missing.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    kwargs = ray_init_kwargs(settings)
    settings.ray_tmp_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ray.init(**kwargs)
    last_init_seconds = time.perf_counter() - t0
    log.info("ray.init took %.2f s (%s)", last_init_seconds, kwargs.get("address", "local"))
    _started_here = True
    return True


def ray_cpus() -> int:
    """The CPUs of the running Ray (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def warm_up(settings: Settings) -> float:
    """Import Ray Tune, torch and the training code here, and torch and the training code in
    ``warm_pool_size`` idle Ray worker processes (local Ray only), so that no job pays these
    imports: a job's trials and references run as tasks in those processes. Then prestart the
    processes of the first job's Tune actors (``actor_prestart.top_up``). Returns the seconds
    of the warm-up."""
    import ray

    t0 = time.perf_counter()
    # In this process, the driver of every job's Tune run: Tune, and torch with the training
    # code (a job reads its trials' checkpoints after the sweep; 2 s of imports otherwise).
    import ray.tune

    import synib_core.training  # noqa: F401

    if settings.ray_address:
        return time.perf_counter() - t0
    n = warm_pool_size(settings, ray_cpus())
    # No CPU slot, so that all n run at once, each in a process of its own; each waits until
    # n have started so that none takes two.
    warm = ray.remote(_import_training).options(
        num_cpus=0, max_retries=0, runtime_env=task_pool_env()
    )
    rendezvous = settings.ray_tmp_dir / f"warm_up_{os.getpid()}_{time.time_ns()}"
    try:
        pids = set(ray.get([warm.remote(n, rendezvous) for _ in range(n)]))
    finally:
        shutil.rmtree(rendezvous, ignore_errors=True)
    seconds = time.perf_counter() - t0
    log.info("warmed %d Ray worker(s) in %.2f s (pids %s)", len(pids), seconds,
             " ".join(map(str, sorted(pids))))  # fmt: skip
    actor_prestart.top_up(settings, ray_cpus())
    return seconds


def _import_training(n: int, rendezvous: Path, wait_s: float = 30.0) -> int:
    import torch

    import synib_core.training  # noqa: F401  (torch with it)
    import worker.trainable  # noqa: F401

    # A process's first torch optimizer imports torch._dynamo (1.3 s here): pay it now, not in
    # the first trial or reference model trained in this worker.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    # Rendezvous: stay busy until n warm-up tasks have started, each in its own process.
    rendezvous.mkdir(parents=True, exist_ok=True)
    (rendezvous / str(os.getpid())).touch()
    deadline = time.monotonic() + wait_s
    while len(list(rendezvous.iterdir())) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


def prepare_next_job(settings: Settings) -> None:
    """After a job: top up the idle processes prestarted for Tune's actors (the job's Tune
    ended its actors with their processes). A kept local Ray only; never raises."""
    if not settings.ray_keep_alive or settings.ray_address:
        return
    try:
        import ray

        with _lock:
            if ray.is_initialized():
                actor_prestart.top_up(settings, ray_cpus())
    except Exception:  # the next job's actors then start their own processes
        log.warning("preparing the next job's Tune actor processes failed", exc_info=True)


def start_in_background(settings: Settings) -> threading.Thread | None:
    """Start Ray (and warm its workers) in a daemon thread; the first job waits for it.

    A no-op when ``ray_keep_alive`` is off (jobs start their own Ray)."""
    global _background
    if not settings.ray_keep_alive:
        return None

    started = threading.Event()

    def run() -> None:
        try:
            if ensure_ray(settings):
                warm_up(settings)
        except Exception:  # the first job tries again and fails with the reason
            log.exception("starting Ray in the background failed")
        finally:
            started.set()
        # Ray's head processes (gcs_server, raylet) get PR_SET_PDEATHSIG from the *thread*
        # that spawned them: this thread must outlive them, or they are killed when it ends.
        _keep_parent.wait()

    _keep_parent.clear()
    _background = (threading.Thread(target=run, name="synib-ray", daemon=True), started)
    _background[0].start()
    return _background[0]


def wait_for_background_start() -> None:
    """Block until a background start (if any) has started Ray and warmed its workers."""
    if _background is not None and _background[0] is not threading.current_thread():
        _background[1].wait()


def shutdown_ray(settings: Settings | None = None) -> None:
    """Shut down Ray if it runs in this process (its local helper processes stop with it)."""
    global _started_here, _owner
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        _keep_parent.set()
    except Exception:  # never mask the job's own outcome
        log.exception("ray.shutdown failed")
    _started_here = False
    if _owner is not None:
        # Agents that outlived ray.shutdown carry our token: end them, then forget the token.
        ray_owners.kill_token(_owner.token)
        if settings is not None:
            ray_owners.unregister_owner(settings.state_dir, _owner)
        _owner = None


# Handlers Ray and Tune replace and keep: ray.init sets SIGTERM (sys.exit), Tune's fit sets
# SIGINT and SIGUSR1 (which Celery's soft time limit needs); SIGHUP for good measure.
RESTORED_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGHUP")


def signal_handlers() -> dict[int, Any]:
    """The Python-level handlers of ``RESTORED_SIGNALS`` now (signal number -> handler)."""
    handlers = {}
    for name in RESTORED_SIGNALS:
        num = getattr(signal, name, None)
        if num is not None:
            handler = signal.getsignal(num)
            if handler is not None:  # None: installed outside Python, cannot be restored
                handlers[int(num)] = handler
    return handlers


def restore_signal_handlers(handlers: dict[int, Any]) -> None:
    """Put back the handlers of ``signal_handlers()`` (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for num, handler in handlers.items():
        try:
            if signal.getsignal(num) is not handler:
                signal.signal(num, handler)
        except (OSError, ValueError):
            log.warning("could not restore the handler of signal %d", num)


@contextmanager
def ray_for_job(settings: Settings) -> Iterator[None]:
    """Ray for one job: the process's Ray (started if needed and kept, ``ray_keep_alive``),
    or with ``ray_keep_alive=false`` a Ray started for this job and shut down after it.

    A Celery pool child runs job after job; the signal handlers Ray and Tune replace are
    restored after each (Celery's soft time limit is SIGUSR1; SIGTERM must not become
    ``sys.exit``). A test (or a notebook) that started Ray itself keeps it.
    """
    handlers = signal_handlers()
    wait_for_background_start()
    started = ensure_ray(settings)
    try:
        yield
    finally:
        if started and not settings.ray_keep_alive:
            shutdown_ray(settings)
        restore_signal_handlers(handlers)

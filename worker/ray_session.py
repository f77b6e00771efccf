"""One Ray per worker process: started (or joined) at the first job, kept for the next ones,
shut down when the process ends.

Local mode starts a private Ray (``address="local"``: never another Ray found on the machine)
with the worker's CPUs and GPUs (``settings.cpus``, ``settings.gpus``; None: what Ray
detects), a capped object store and no dashboard. ``settings.ray_address`` (or ``RAY_ADDRESS``,
read by the settings) joins an existing cluster instead. Only ``ray.init``'s public arguments
are used; Ray's temp dir is its default (``RAY_TMPDIR`` moves it where /tmp is too long a path
for Ray's sockets).

On a cluster a node can go away under a running trial (its raylet killed, a spot instance
reclaimed): ``trial_retries`` is how many times Tune then restarts the trial from its last
checkpoint on the nodes left. A local Ray has no node to lose (a trial whose process died was
killed, e.g. out of memory, and would die again): no retry there.

A Ray that stopped answering between jobs is shut down and started again. Ray and Tune replace
some signal handlers of the process that drives them; ``ray_for_job`` puts them back after each
job (Celery's soft time limit is SIGUSR1, and SIGTERM must stay Celery's warm shutdown).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.settings import Settings

log = logging.getLogger(__name__)

OBJECT_STORE_MB = 512  # a local Ray's shared memory for the dataset and results (it spills)
CLUSTER_TRIAL_RETRIES = 3  # restarts of a trial from its checkpoint after a failure on a cluster

_lock = threading.Lock()  # one start at a time
last_init_seconds: float | None = None
joined_cluster = False  # whether this process's Ray is an existing cluster (settings.ray_address)


def ray_init_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``ray.init`` for these settings (a cluster, or a private local Ray)."""
    common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if settings.ray_address:
        return {"address": settings.ray_address, **common}
    gpus = {} if settings.gpus is None else {"num_gpus": settings.gpus}
    return {
        "address": "local",
        "num_cpus": settings.cpus or os.cpu_count() or 1,
        **gpus,
        "object_store_memory": OBJECT_STORE_MB * 1024 * 1024,
        "include_dashboard": False,
        **common,
    }


def _ray_alive() -> bool:
    import ray

    try:
        ray.available_resources()  # a round trip to Ray's control store: fails once it is gone
        return True
    except Exception:
        log.warning("the worker's Ray is not answering; starting it again", exc_info=True)
        return False


def ensure_ray(settings: Settings) -> bool:
    """Start or join Ray unless this process has a live one; True if this call started it."""
    global last_init_seconds, joined_cluster
    import ray

    with _lock:
        if ray.is_initialized():
            if _ray_alive():
                return False
            shutdown_ray()
        kwargs = ray_init_kwargs(settings)
        t0 = time.perf_counter()
        ray.init(**kwargs)
        last_init_seconds = time.perf_counter() - t0
        joined_cluster = kwargs["address"] != "local"
        log.info("ray.init took %.2f s (%s)", last_init_seconds, kwargs["address"])
        return True


def trial_retries() -> int:
    """How many times Tune restarts a failed trial from its last checkpoint: a few on a
    cluster (a lost node's trials go on elsewhere; a trial that fails by itself also fails
    each retry, then for good), none on a local Ray."""
    return CLUSTER_TRIAL_RETRIES if joined_cluster else 0


def ray_cpus() -> float:
    """The CPUs of the running Ray (its whole cluster)."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def shutdown_ray() -> None:
    """Shut down Ray if it runs in this process (a local Ray's processes stop with it)."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # never mask the job's own outcome
        log.exception("ray.shutdown failed")


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
    """The process's Ray for one job (started if needed, kept afterwards); the signal handlers
    Ray and Tune replace are restored after the job."""
    handlers = signal_handlers()
    ensure_ray(settings)
    try:
        yield
    finally:
        restore_signal_handlers(handlers)

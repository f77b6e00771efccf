"""One Ray per worker process: start (or join) it once, shut it down when the process is done.

Local mode: a private Ray with a short temp dir (socket path limit), a capped object store, no
dashboard and ``RAY_AUTH_MODE=disabled``. ``settings.ray_address`` (or ``RAY_ADDRESS``, read
by the settings) joins an existing cluster instead.
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

from api.settings import Settings
from worker import ray_owners

log = logging.getLogger(__name__)

DEFAULT_OBJECT_STORE_MB = 512
MAX_TEMP_DIR_CHARS = 40

_started_here = False
_owner: ray_owners.Owner | None = None
last_init_seconds: float | None = None


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
    return {
        "num_cpus": settings.cpus or os.cpu_count() or 1,
        "include_dashboard": False,
        "_temp_dir": temp_dir,
        "object_store_memory": object_store_mb * 1024 * 1024,
        **common,
    }


def ensure_ray(settings: Settings) -> bool:
    """Start or join Ray unless this process already has it; True if this call started it."""
    global _started_here, last_init_seconds, _owner
    import ray

    if ray.is_initialized():
        return False
    if not settings.ray_address:
        # Only a private local Ray may run without auth (it listens on localhost only).
        os.environ["RAY_AUTH_MODE"] = "disabled"
        # Mark the Ray processes this process starts, so that if it is killed before
        # shutting Ray down, a reconciler can find and end them (worker/ray_owners.py).
        _owner = ray_owners.register_owner(settings.state_dir)
    # One checkpoint per epoch is the point; Tune's "excessive snapshot" warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    kwargs = ray_init_kwargs(settings)
    settings.ray_tmp_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ray.init(**kwargs)
    last_init_seconds = time.perf_counter() - t0
    log.info("ray.init took %.2f s (%s)", last_init_seconds, kwargs.get("address", "local"))
    _started_here = True
    return True


def shutdown_ray(settings: Settings | None = None) -> None:
    """Shut down Ray if it runs in this process (its local helper processes stop with it)."""
    global _started_here, _owner
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
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
    """Ray for the duration of one job; shut down afterwards only if started here.

    A Celery pool child runs job after job: the Ray it started goes with each job, and the
    signal handlers Ray and Tune replaced are restored (Celery's soft time limit is SIGUSR1;
    SIGTERM must not become ``sys.exit``). A test (or a notebook) that started Ray keeps it.
    """
    handlers = signal_handlers()
    started = ensure_ray(settings)
    try:
        yield
    finally:
        if started:
            shutdown_ray(settings)
        restore_signal_handlers(handlers)

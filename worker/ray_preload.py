"""Imported by every Ray worker process of the worker's local Ray when it starts (Ray's
``preload_python_modules``, set in ``ray_session.ray_init_kwargs``), before it takes any task or
actor.

In a process started for Tune's trial actors (``ray_envs.is_tune_actor_process``: the
processes ``worker.actor_prestart`` asks for before each job) it imports what a trial's Tune
actor needs: Ray Tune (pandas, pyarrow and Ray Data with it: about 1.5 CPU-seconds here) and the
trainable. A job's Tune actors then start in processes that have paid this already. Meanwhile
the process's title is ``ray_envs.IMPORTING_TITLE``, then ``ray_envs.READY_TITLE`` (until an
actor takes it; ``worker.actor_prestart`` waits for it). Other
processes (the task pool, which imports torch instead) import nothing here.
"""

from __future__ import annotations

import os

from worker.ray_envs import IMPORTING_TITLE, READY_TITLE, is_tune_actor_process


def _set_title(title: str) -> None:
    try:
        import ray._raylet

        ray._raylet.setproctitle(title)  # type: ignore[attr-defined]  # (compiled module)
    except Exception:  # the title is informative only
        pass


if is_tune_actor_process(dict(os.environ)):
    _set_title(IMPORTING_TITLE)
    import ray.tune.trainable.function_trainable  # noqa: F401

    import worker.trainable  # noqa: F401

    _set_title(READY_TITLE)

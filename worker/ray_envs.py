"""The two runtime environments of a job's Ray processes (a light module: the Tune actors and
the trials' tasks import it, so it imports nothing heavy).

Ray hands an idle worker process only to a task or actor whose runtime environment has the
same hash as the one the process was started with. A job has two kinds of Ray processes:

- **Tune's trial actors** (they only relay epochs; ``worker.trainable.trainable``). Tune gives
  them its own runtime environment (``ray.tune.execution.class_cache``): ``tune_actor_env``.
  The worker prestarts idle processes in it before any job (``worker.actor_prestart``), with
  Ray Tune already imported (``worker.ray_preload``).
- **Tasks**: the trials' training (``trainable.trial_epochs``), the unimodal references and
  the warm-up. They run in the warm pool (``worker.ray_session.warm_up``): ``task_pool_env``,
  Tune's environment plus ``TASK_POOL_VAR``, so that a task never takes a process prestarted
  for an actor (an actor never takes one that ran a task: Ray's own rule).

Ray compares environments by a hash of their serialized text, and the same environment has two
texts: Python's (``{"env_vars": {...}}``, for a task submitted with no parent environment)
and Ray's core worker's (compact, ``{"env_vars":{...}}``, when it merges a task's environment
with its parent's). A trial's task is submitted by its Tune actor, so it gets the merged text.
For the warm-up and the references (submitted by the worker) to get the same one, the worker's
local Ray has Tune's environment as its job environment (``ray_session.ray_init_kwargs``):
everything is merged, and ``serialized`` gives that text for the prestart request.
"""

from __future__ import annotations

import json
import os
from typing import Any

# Set (to "tasks") in the processes of the task pool, absent in Tune's actor processes.
TASK_POOL_VAR = "SYNIB_RAY_POOL"
# A variable of Tune's default actor environment (``class_cache.DEFAULT_ENV_VARS``; a test
# checks it is still there), read where importing Ray Tune to look it up would defeat the purpose.
TUNE_ACTOR_VAR = ("PL_DISABLE_FORK", "1")
# The titles of a process prestarted for Tune's actors (``ray_preload``): while it imports Ray
# Tune, and once it has. Before either, Ray titles it ``ray::IDLE`` as soon as it connects,
# before it imports its preload modules: that title does not mean ready.
IMPORTING_TITLE = "ray::IDLE importing Ray Tune"
READY_TITLE = "ray::IDLE with Ray Tune"


def tune_actor_env() -> dict[str, Any]:
    """The runtime environment Ray Tune gives its trial actors, computed as Tune does it (its
    default variables plus those it propagates from this process's environment)."""
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE

    env = dict(DEFAULT_ENV_VARS)
    env.update({k: os.environ[k] for k in ENV_VARS_TO_PROPAGATE if k in os.environ})
    return {"env_vars": env}


def task_pool_env() -> dict[str, Any]:
    """The runtime environment of every task a job runs: Tune's, plus ``TASK_POOL_VAR``."""
    env = tune_actor_env()
    return {"env_vars": {**env["env_vars"], TASK_POOL_VAR: "tasks"}}


def is_tune_actor_process(environ: dict[str, str]) -> bool:
    """Whether a Ray worker process with this environment was started in Tune's actor
    environment: it has Tune's variable and not the task pool's marker."""
    name, value = TUNE_ACTOR_VAR
    return TASK_POOL_VAR not in environ and environ.get(name) == value


def serialized(env: dict[str, Any]) -> str:
    """An environment's text as Ray's core worker writes a merged one (sorted keys, no spaces):
    the text, and so the hash, of the Tune actors' environment under the job environment."""
    return json.dumps(env, sort_keys=True, separators=(",", ":"))

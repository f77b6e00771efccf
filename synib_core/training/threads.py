"""How many CPU threads training uses: one place, shared by the CLI and the service.

The service gives each trial ``cpus`` threads (default 1, one per CPU share) and sets them
before the trial does any work; ``synib train`` / ``synib compare`` do the same through
``--threads`` (default 1), so that one seed gives the same numbers from the CLI and from a job
(a float reduction summed by another number of threads can differ in its last bits, and over an
epoch such differences grow into other predictions).

Example:
    >>> use_threads(1)
    >>> torch.get_num_threads()
    1
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_THREADS", "THREAD_ENV_VARS", "use_threads"]

DEFAULT_THREADS = 1
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def use_threads(n: int) -> None:
    """Train with ``n`` >= 1 threads: torch's intra-op pool and the BLAS/OpenMP variables that
    child processes and lazily started libraries read."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {n!r}")
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)

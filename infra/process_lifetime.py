"""A child process that ends with its parent, however the parent ends (SIGKILL included).

Linux's ``prctl(PR_SET_PDEATHSIG, signal)`` (a documented kernel interface, called through
ctypes) asks the kernel to send the child ``signal`` when its parent exits. ``synib serve``
asks it for its api, worker and housekeeper children (``preexec_fn``), and every process of
``synib api --workers N`` asks it at startup (``exit_with_multiprocessing_parent``, from the
app's lifespan): a parent killed with SIGKILL, which can run no code, then leaves nothing
running. Elsewhere than Linux these functions do nothing.

Example (the parent's pid is taken before the child exists, so that a parent that died in
between is noticed)::

    subprocess.Popen(argv, preexec_fn=functools.partial(exit_with_parent, os.getpid()))
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

__all__ = ["exit_with_multiprocessing_parent", "exit_with_parent"]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Loaded once, in the parent: a preexec_fn runs between fork and exec and should only call it.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def exit_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent ``parent_pid`` exits;
    send it now if that parent is already gone (this process was re-parented)."""
    if _LIBC is None:
        return
    if _LIBC.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)


def exit_with_multiprocessing_parent(signum: int = signal.SIGTERM) -> None:
    """In a process started by ``multiprocessing`` (uvicorn's worker processes are): end with
    the process that started it. Does nothing in a main process (``synib api`` with one
    worker keeps running when the shell that started it goes away)."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        exit_with_parent(parent.pid, signum)

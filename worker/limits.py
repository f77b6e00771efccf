"""A trial's memory cap and how running out of memory is told to the user.

``memory_cap(mb)`` lets the trial allocate at most ``mb`` MiB beyond the footprint its process
has when the trial starts (a Tune trial process already holds Ray, torch and thread stacks,
mostly reserved address space). It lowers the process's soft ``RLIMIT_DATA`` (heap and private
writable mappings: what torch and numpy allocate on the CPU) to that footprint plus ``mb`` for
the duration of the trial and restores it afterwards (Tune may reuse the process for the next
trial). An allocation beyond it fails with ``MemoryError`` (numpy) or torch's
``DefaultCPUAllocator: can't allocate memory`` RuntimeError, which ``describe_out_of_memory``
turns into the reason ``out of memory: ...``; the process survives, so neither Tune nor the
Celery worker is affected.
"""

from __future__ import annotations

import gc
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from synib_spec.jobs import JobSpec

OOM_MARKERS = (
    "DefaultCPUAllocator: can't allocate memory",
    "CUDA out of memory",
    "out of memory",
    "Cannot allocate memory",
)
MIB = 1024 * 1024


def trial_memory_mb(spec: JobSpec, settings_mb: int | None) -> int | None:
    """The memory (MiB) each trial of a job may allocate: the smaller of the job's
    ``resources.memory_mb_per_trial`` and the worker's ``trial_memory_mb`` setting (either may be
    unset; None: no cap)."""
    caps = [c for c in (spec.resources.memory_mb_per_trial, settings_mb) if c is not None]
    return min(caps) if caps else None


def process_data_mb() -> int:
    """This process's data segment (``VmData``: heap and private writable mappings) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) // 1024
    return 0


@contextmanager
def memory_cap(mb: int | None) -> Iterator[None]:
    """Inside the block this process may grow its data segment by at most ``mb`` MiB (None: no
    limit); the previous limit is back afterwards."""
    if mb is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = (process_data_mb() + mb) * MIB
    limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch.cuda.OutOfMemoryError, or torch's allocator RuntimeError."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in OOM_MARKERS)


def describe_out_of_memory(exc: BaseException, memory_mb: int | None) -> str | None:
    """``out of memory: <what failed> (...)`` for an out-of-memory error, else None."""
    if not is_out_of_memory(exc):
        return None
    message = " ".join(str(exc).split()) or type(exc).__name__
    start = message.find("DefaultCPUAllocator")
    message = message[start:] if start >= 0 else message
    if memory_mb is not None:
        hint = f"the trial may allocate {memory_mb} MiB; raise memory_mb_per_trial"
    else:
        hint = "no memory cap was set; the machine ran out"
    return f"out of memory: {message[:800]} ({hint} or lower batch_size / hidden)"


def release_accelerator_memory() -> None:
    """Return cached GPU memory to the driver after a failed trial (no-op on CPU): Tune may run
    the next trial in the same process."""
    torch = sys.modules.get("torch")
    gc.collect()
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()

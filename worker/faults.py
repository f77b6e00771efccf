"""Training faults inside a trial: the per-trial memory cap, out-of-memory classification, and a
test-only fault-injection hook.

Memory cap: ``memory_cap(mb)`` lets the trial allocate at most ``mb`` MiB beyond the footprint
its process has when the trial starts (a Tune trial process holds ~1.4 GiB of Ray runtime, torch
and thread stacks, mostly reserved address space). It lowers the process's soft ``RLIMIT_DATA``
(heap and private writable mappings: what torch and numpy allocate on the CPU) to that footprint
plus ``mb`` for the duration of the trial and restores it afterwards (Ray reuses actor
processes). An allocation beyond it fails with
``MemoryError`` (numpy) or torch's ``DefaultCPUAllocator: can't allocate memory`` RuntimeError,
which ``describe_out_of_memory`` turns into the reason ``out of memory: ...``; the process
itself survives, so neither the Tune driver nor the Celery worker is affected.

Fault injection (tests only, never reachable through the API): the setting
``fault_injection`` (env ``SYNIB_FAULT_INJECTION``, default empty = off) holds rules separated by
``;``, each ``<action>:<trial key substring>:<epoch>[:<arg>...]``:

- ``raise_at_epoch:<substr>:<epoch>``: raise ``InjectedFault`` at the end of that epoch;
- ``allocate_at_epoch:<substr>:<epoch>:<MiB>[:cuda]``: allocate (and touch) that many MiB on
  the CPU (or the GPU), then free them: under a memory cap this is an out-of-memory failure;
- ``kill_at_epoch:<substr>:<epoch>``: SIGKILL the trial's own process (what the kernel's OOM
  killer does).

A rule fires in every trial whose key contains the substring, before that epoch is reported
(so epochs ``1 .. epoch-1`` are recorded).
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ACTIONS = ("raise_at_epoch", "allocate_at_epoch", "kill_at_epoch")
OOM_MARKERS = (
    "DefaultCPUAllocator: can't allocate memory",
    "CUDA out of memory",
    "out of memory",
    "Cannot allocate memory",
)
MIB = 1024 * 1024


class FaultSpecError(ValueError):
    """A malformed ``fault_injection`` setting (names the rule and the problem)."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"fault_injection: rule {rule!r}: {reason}")


class InjectedFault(RuntimeError):
    """The failure a ``raise_at_epoch`` rule injects."""


@dataclass(frozen=True)
class FaultRule:
    """One rule: ``action`` at the end of ``epoch`` in trials whose key contains ``match``."""

    action: str
    match: str
    epoch: int
    mib: int = 0
    device: str = "cpu"


def _positive_int(text: str, rule: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise FaultSpecError(rule, f"{what} must be an integer, got {text!r}") from None
    if value < 1:
        raise FaultSpecError(rule, f"{what} must be >= 1, got {value}")
    return value


def parse_rule(rule: str) -> FaultRule:
    """``"allocate_at_epoch:lambda=10|:1:2048"`` -> ``FaultRule(...)`` (raises FaultSpecError)."""
    parts = rule.strip().split(":")
    action = parts[0]
    if action not in ACTIONS:
        raise FaultSpecError(rule, f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    wanted = {"allocate_at_epoch": (4, 5)}.get(action, (3, 3))
    if not wanted[0] <= len(parts) <= wanted[1] or not parts[1]:
        raise FaultSpecError(rule, f"expected {wanted[0]} fields (action:substring:epoch...)")
    epoch = _positive_int(parts[2], rule, "epoch")
    if action != "allocate_at_epoch":
        return FaultRule(action, parts[1], epoch)
    device = parts[4] if len(parts) == 5 else "cpu"
    if device not in ("cpu", "cuda"):
        raise FaultSpecError(rule, f"device must be cpu or cuda, got {device!r}")
    return FaultRule(action, parts[1], epoch, _positive_int(parts[3], rule, "MiB"), device)


def parse_rules(text: str) -> list[FaultRule]:
    """Every rule of a ``fault_injection`` setting (empty text: no rules)."""
    return [parse_rule(r) for r in text.split(";") if r.strip()]


def checked_fault_rules(text: str) -> str:
    """``text`` once every rule in it parses (raises FaultSpecError, a ValueError, otherwise)."""
    parse_rules(text)
    return text


def fire(rule: FaultRule, trial_key: str) -> None:
    """Carry out one rule in this process."""
    where = f"at epoch {rule.epoch} of trial {trial_key} (SYNIB_FAULT_INJECTION)"
    if rule.action == "raise_at_epoch":
        raise InjectedFault(f"injected fault {where}")
    if rule.action == "kill_at_epoch":
        os.kill(os.getpid(), signal.SIGKILL)
    import torch

    block = torch.ones(rule.mib * MIB, dtype=torch.uint8, device=rule.device)
    del block


def with_faults(
    callback: Callable[[Any], None], rules_text: str, trial_key: str
) -> Callable[[Any], None]:
    """Wrap an ``on_epoch_end`` callback so that the matching rules fire before it reports.

    ``callback`` receives ``synib_core.training.EpochReport`` (``.epoch`` 1-based). Without a
    matching rule ``callback`` is returned unchanged.
    """
    rules = [r for r in parse_rules(rules_text) if r.match in trial_key]
    if not rules:
        return callback

    def on_epoch_end(report: Any) -> None:
        for rule in rules:
            if rule.epoch == int(report.epoch):
                fire(rule, trial_key)
        callback(report)

    return on_epoch_end


def trial_memory_mb(spec: dict[str, Any], settings_mb: int | None) -> int | None:
    """The memory (MiB) each trial of a job may allocate: the smaller of the job's
    ``resources.memory_mb_per_trial`` and the worker's ``trial_memory_mb`` setting (either may be
    unset; None: no cap)."""
    requested = (spec.get("resources") or {}).get("memory_mb_per_trial")
    caps = [int(c) for c in (requested, settings_mb) if c is not None]
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
    """Return cached GPU memory to the driver after an out-of-memory failure (no-op on CPU)."""
    torch = sys.modules.get("torch")
    gc.collect()
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()

"""Test-only fault injection into trials; the service never imports this.

A test puts this folder on ``PYTHONPATH`` of a worker process it starts and sets
``SYNIB_TEST_FAULTS`` to a JSON list of rules. Python runs ``sitecustomize`` in every process
started with that environment (the Celery worker and the processes of its Ray, which inherit
it); here that installs an import hook, and once ``synib_core.training`` is imported its
``fit`` runs the matching rules at the end of their epoch, before the epoch is reported (fit
has already saved its checkpoint then). A rule:

    {"action": "raise" | "allocate" | "kill", "method": "synib", "knobs": {"lambda": 1.0},
     "epoch": 2, "mib": 4096}

It fires in every ``fit`` of that method whose knobs have those values: ``raise`` raises
``InjectedFault``, ``allocate`` allocates (and touches) ``mib`` MiB on the CPU (under a memory
cap: an out-of-memory failure), ``kill`` SIGKILLs the trial's own process (what the kernel's
OOM killer does).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
from typing import Any

RULES_ENV = "SYNIB_TEST_FAULTS"
PATCHED = "synib_core.training"
MIB = 1024 * 1024


class InjectedFault(RuntimeError):
    """What a ``raise`` rule raises."""


def matches(rule: dict[str, Any], config: Any, method: str) -> bool:
    knobs = config.to_knobs()
    wanted = rule.get("knobs", {})
    return rule["method"] == method and all(knobs.get(k) == v for k, v in wanted.items())


def fire(rule: dict[str, Any], method: str, seed: int) -> None:
    if rule["action"] == "raise":
        where = ", ".join(f"{k}={v}" for k, v in rule.get("knobs", {}).items())
        raise InjectedFault(f"injected at epoch {rule['epoch']} of {method} ({where}), seed {seed}")
    if rule["action"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    import torch

    block = torch.ones(int(rule["mib"]) * MIB, dtype=torch.uint8)
    del block


def with_faults(fit: Any, rules: list[dict[str, Any]]) -> Any:
    @functools.wraps(fit)
    def faulty_fit(config: Any, data: Any, *, method: str, seed: int = 0, **kwargs: Any) -> Any:
        mine = [r for r in rules if matches(r, config, method)]
        report = kwargs.get("on_epoch_end")

        def on_epoch_end(epoch: Any) -> None:
            for rule in mine:
                if rule["epoch"] == epoch.epoch:
                    fire(rule, method, seed)
            if report is not None:
                report(epoch)

        if mine:
            kwargs["on_epoch_end"] = on_epoch_end
        return fit(config, data, method=method, seed=seed, **kwargs)

    return faulty_fit


class PatchFit(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``synib_core.training`` as usual, then wraps its ``fit``."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.rules = rules
        self.inner: Any = None

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != PATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        self.inner, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        module.fit = with_faults(module.fit, self.rules)


if os.environ.get(RULES_ENV):
    sys.meta_path.insert(0, PatchFit(json.loads(os.environ[RULES_ENV])))

"""Where a job's CPU time went: the processes of ``synib serve`` grouped by what they do.

``CpuMeter(root_pid)`` samples ``/proc`` in a thread (every ``interval_s``) while a job runs
and adds up, per component, the CPU seconds (user + system) that the processes under
``root_pid`` used between samples. A Ray worker process runs different tasks over time (a
trial, then a reference model, then nothing); its process title says which, so each interval's
CPU goes to the component named by the title seen at the end of the interval, or to the task
seen at its start when the process went idle meanwhile. A process that
ends between two samples loses its last interval (at most ``interval_s`` of its CPU): the Tune
actors end with the job, idle. A process that is ever a Tune actor counts as one from its start
(it imports Ray and Ray Tune under the title of an idle worker).

Linux only (``/proc``); nothing here asserts a timing.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

TRIALS = "trials run as Ray tasks"
REFERENCES = "unimodal references (Ray tasks)"
ACTORS = "Tune trial actors (process start, and the trials that train in them)"
POOL = "other Ray worker processes (starting, idle)"
OTHER = "other processes of the service"
TASKS = (TRIALS, REFERENCES)
# (component, substrings of the process title); the first match wins. A Ray worker process's
# title is ``ray::<what it runs>`` (``default_worker.py ...`` while it starts).
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (TRIALS, ("ray::trial",)),
    (REFERENCES, ("ray::reference_predictions",)),
    (ACTORS, ("ray::ImplicitFunc", "ray::_Inner")),
    (POOL, ("ray::", "default_worker.py")),
    ("Celery worker (job driver: Tune, database)", ("worker.cli worker", "celery")),
    ("API (answering this benchmark)", ("worker.cli api", "uvicorn")),
    (
        "Ray daemons (raylet, GCS, log monitor, ...)",
        ("raylet", "gcs_server", "log_monitor", "dashboard", "monitor.py", "runtime_env"),
    ),
)


def component(title: str) -> str:
    """The component a process title belongs to (``COMPONENTS``), else ``OTHER``."""
    for name, needles in COMPONENTS:
        if any(n in title for n in needles):
            return name
    return OTHER


def _read_stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) * TICK_S


def _read_title(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class CpuMeter:
    """CPU seconds per component of the process tree under ``root_pid`` between ``start()``
    and ``stop()``; ``own_s``: this (the benchmark's) process, polling included."""

    root_pid: int
    interval_s: float = 0.5
    by_pid: dict[str, dict[str, float]] = field(default_factory=dict)
    actor_pids: set[str] = field(default_factory=set)
    new_pids: set[str] = field(default_factory=set)  # processes that started during the job
    own_s: float = 0.0
    wall_s: float = 0.0
    _last: dict[str, float] = field(default_factory=dict)
    _component: dict[str, str] = field(default_factory=dict)  # at the previous sample
    _started: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0
    _own0: float = 0.0

    def _tree(self) -> dict[str, float]:
        """CPU seconds of every live process under the root (the root included)."""
        stats = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit() and (found := _read_stat(pid)) is not None:
                stats[pid] = found
        children: dict[str, list[str]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(str(ppid), []).append(pid)
        out, todo = {}, [str(self.root_pid)]
        while todo:
            pid = todo.pop()
            if pid in stats:
                out[pid] = stats[pid][1]
                todo.extend(children.get(pid, []))
        return out

    def sample(self) -> None:
        """Add each process's CPU since the previous sample to its current component."""
        for pid, cpu in self._tree().items():
            # A process seen first after start() began during the job: all its CPU counts.
            before = self._last.get(pid, 0.0 if self._started else None)
            if self._started and pid not in self._last:
                self.new_pids.add(pid)
            self._last[pid] = cpu
            # Every sample reads the title, so that ``was`` is the previous sample's.
            name = component(_read_title(pid))
            was, self._component[pid] = self._component.get(pid), name
            if before is None or cpu <= before:
                continue
            if name not in TASKS and was in TASKS:  # the task ended during the interval
                name = was
            if name == ACTORS:
                self.actor_pids.add(pid)
            spent = self.by_pid.setdefault(pid, {})
            spent[name] = spent.get(name, 0.0) + cpu - before

    def _own(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> CpuMeter:
        self.sample()  # the baseline: CPU before start() is not counted
        self.by_pid.clear()
        self.actor_pids.clear()
        self.new_pids.clear()
        self._started = True
        self._t0, self._own0 = time.perf_counter(), self._own()

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.sample()

        self._thread = threading.Thread(target=loop, name="cpu-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> CpuMeter:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        self.wall_s = time.perf_counter() - self._t0
        self.own_s = self._own() - self._own0
        return self

    def started(self) -> dict[str, tuple[int, float]]:
        """Processes that started during the job: component -> (count, their CPU seconds); a
        process counts under the component it spent most CPU in (a Tune actor as one)."""
        out: dict[str, tuple[int, float]] = {}
        for pid in self.new_pids:
            spent = self.by_pid.get(pid)
            if not spent:
                continue
            key = ACTORS if pid in self.actor_pids else max(spent, key=lambda n: spent[n])
            count, cpu = out.get(key, (0, 0.0))
            out[key] = (count + 1, cpu + sum(spent.values()))
        return out

    @property
    def seconds(self) -> dict[str, float]:
        """CPU seconds per component."""
        out: dict[str, float] = {}
        for pid, spent in self.by_pid.items():
            for name, value in spent.items():
                key = ACTORS if pid in self.actor_pids else name
                out[key] = out.get(key, 0.0) + value
        return out

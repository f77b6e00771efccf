"""Driver-side Tune hooks of one job: ``TrialRecorder`` (a ``tune.Callback``) writes trial
statuses and epoch metrics to the database as they arrive; ``CancelWatch`` (a ``tune.Stopper``)
stops every trial when the job is being cancelled or this worker no longer holds it.

They run in the worker process that drives Tune (not in the trials), so only this process talks
to the database. Epoch rows are upserts: a replayed epoch never duplicates a row.

Tune saves the run config, these hooks included, with the experiment and takes them from there
when ``Tuner.restore`` resumes it, possibly in another worker process. So a hook pickles as its
job id only and unpickles as the hook of that job registered in the unpickling process
(``live_hooks``): the worker that holds the job now, not the one that started the experiment.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.crud import unfinished_reason
from infra.db.models import JOB_LEASED
from worker.db_retry import DEFAULT_MAX_WAIT_S, is_connection_error, write_with_retry
from worker.trainable import TrialFailed, readable_error, task_cause

log = logging.getLogger(__name__)

# Keys Ray Tune adds to every result, and our own markers; everything else numeric is a metric.
TUNE_RESULT_KEYS = frozenset(
    {
        "training_iteration",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "timesteps_total",
        "episodes_total",
        "timesteps_since_restore",
        "timestamp",
        "done",
        "trial_id",
        "date",
        "hostname",
        "node_ip",
        "pid",
        "config",
        "experiment_tag",
        "checkpoint_dir_name",
        "should_checkpoint",
        "epoch",
        "final",
        "best_epoch",
    }
)
PROCESS_DIED = (
    "the trial's process died without an error (killed, e.g. by the kernel's out-of-memory "
    "killer; a lower batch_size or hidden, or a memory_mb_per_trial cap, may help)"
)


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The metrics a trial reported (Tune's bookkeeping keys and non-numbers dropped)."""
    return {
        k: float(v)
        for k, v in result.items()
        if k not in TUNE_RESULT_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
    }


def failure_reason(error: BaseException | None) -> str:
    """One line for a trial's error as Tune hands it back: the trainable's own reason
    (``TrialFailed``), the process's death, or the type and message of anything else."""
    import ray

    cause = task_cause(error) if error is not None else None
    if isinstance(cause, TrialFailed):
        return str(cause)
    if cause is None or isinstance(error, ray.exceptions.RayActorError):
        return PROCESS_DIED
    reason = readable_error(cause)
    if isinstance(cause, ray.exceptions.RayError):  # the reason names its type only
        log.warning("a trial failed: %s\n%s", reason, cause)
    return reason


def trial_error(trial: Any) -> BaseException | None:
    """The error Tune recorded for a trial that just failed: its pickled copy in the driver's
    folder of the trial (written before ``on_trial_error``; the copy in the experiment's
    storage follows later), else the one in storage."""
    local = trial.pickled_error_file
    if local and Path(local).is_file():
        with open(local, "rb") as f:
            error: BaseException = pickle.load(f)
        return error
    stored: BaseException | None = trial.get_pickled_error()
    return stored


def _key(trial: Any) -> str:
    return str(trial.config["trial"]["key"])


def trial_id_of(trial: Any) -> str:
    """Our trial id (the database row) of a Tune trial."""
    return str(trial.config["trial"]["trial_id"])


class DatabaseHook:
    """Holds the database URL, not a session factory (a hook may be pickled)."""

    database_url: str

    def sessions(self) -> Session:
        from infra.db.session import session_factory

        return session_factory(self.database_url)()


class CancelWatch(DatabaseHook, Stopper):
    """Stops all trials once the job row says ``cancelling``; also heartbeats the job.

    Polls the database at most every ``poll_s`` seconds (Tune asks every loop step). With
    ``worker`` given, it also stops everything (``superseded``) once the job is no longer held
    by that worker (the housekeeping gave it to another one), and its heartbeat is fenced the
    same way. A database outage is not a cancel: the poll is skipped until it returns.
    """

    def __init__(
        self,
        database_url: str,
        job_id: str,
        poll_s: float = 1.0,
        heartbeat_s: float = 15.0,
        worker: str | None = None,
    ) -> None:
        self.database_url = database_url
        self.job_id = job_id
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.worker = worker
        self.cancelled = False
        self.superseded = False
        self.interrupted: str | None = None  # why the worker's task is being stopped
        self._last_poll = 0.0
        self._last_heartbeat = 0.0

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (live_watch, (self.database_url, self.job_id))

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.stop_all()

    def check(self) -> bool:
        """Read the job's status now; True (and remembered) once cancel was requested."""
        if self.cancelled:
            return True
        try:
            status, owner = self._poll()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            log.warning("job %s: cancel poll skipped, database unavailable", self.job_id)
            return self.cancelled
        if self.worker is not None and (status not in JOB_LEASED or owner != self.worker):
            self.superseded = status is not None and status not in ("cancelling", "cancelled")
        if status in (None, "cancelling", "cancelled") or self.superseded:
            self.cancelled = True
        return self.cancelled

    def _poll(self) -> tuple[str | None, str | None]:
        """(status, worker) of the job now; heartbeats it every ``heartbeat_s`` seconds."""
        now = time.monotonic()
        with self.sessions() as session:
            status, owner = crud.job_status_and_worker(session, job_id=self.job_id)
            if now - self._last_heartbeat >= self.heartbeat_s:
                if self.worker is None:
                    crud.heartbeat(session, job_id=self.job_id)
                else:
                    crud.beat_job(session, job_id=self.job_id, worker=self.worker)
                self._last_heartbeat = now
        return status, owner

    def interrupt(self, reason: str) -> None:
        """Stop every trial at Tune's next step, whatever the database says: the task that runs
        the job is being stopped (``tune_runner.fit_off_main_thread``) for ``reason``, which the
        trials Tune ends meanwhile get in their failure reason."""
        self.interrupted = reason

    def stop_all(self) -> bool:
        if self.interrupted is not None:
            return True
        now = time.monotonic()
        if not self.cancelled and now - self._last_poll >= self.poll_s:
            self._last_poll = now
            try:
                self.check()
            except Exception:  # a database hiccup must not kill the sweep
                log.exception("job %s: cancel poll failed", self.job_id)
        return self.cancelled


class TrialRecorder(DatabaseHook, Callback):
    """Writes trial status and epoch metrics of one job to the database.

    ``resumed_epochs`` (trial id -> epochs already recorded) is set for a run that Tune
    restored: a trial resumes from its last checkpoint Tune knew of, which may be an epoch or
    two before the last one recorded; those epochs train again (with the same results) and are
    not recorded twice.
    """

    def __init__(
        self, database_url: str, watch: CancelWatch, retry_s: float = DEFAULT_MAX_WAIT_S
    ) -> None:
        self.database_url = database_url
        self.watch = watch
        self.retry_s = retry_s  # a write is retried this long while the database is down
        self.resumed_epochs: dict[str, int] = {}
        self.final: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}
        self.last_epoch: dict[str, dict[str, float]] = {}
        self.recorded: set[str] = set()  # trials whose final status was written
        self.placed: dict[str, tuple[Any, Any]] = {}  # trial id -> (node IP, pid) last logged

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (live_recorder, (self.database_url, self.watch.job_id))

    def _set_status(self, trial_id: str, status: str, **kwargs: Any) -> None:
        try:
            write_with_retry(
                self.sessions,
                lambda s: crud.set_trial_status(s, trial_id=trial_id, status=status, **kwargs),
                what=f"status {status} of trial {trial_id}",
                max_wait_s=self.retry_s,
            )
        except Exception:  # the job runner syncs the statuses from Tune's results afterwards
            log.exception("trial %s: could not record status %s", trial_id, status)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        trial_id = trial_id_of(trial)
        if trial_id in self.recorded:  # a late or repeated start never undoes a final status
            return
        self.started.setdefault(trial_id, time.monotonic())
        self._set_status(trial_id, "running")

    def _succeed(self, trial_id: str, final: dict[str, Any]) -> None:
        """Record ``succeeded`` (metrics of the selected epoch, best epoch) once, now."""
        if trial_id in self.recorded:
            return
        self.recorded.add(trial_id)
        self._set_status(
            trial_id, "succeeded", metrics=final["metrics"], best_epoch=final["best_epoch"]
        )

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        trial_id = trial_id_of(trial)
        self._log_placement(trial, trial_id, result)
        if result.get("final"):  # the trainable's last report: its outputs are saved
            self.final[trial_id] = {
                "metrics": metrics_of(result),
                "best_epoch": int(result.get("best_epoch") or 0) or None,
            }
            self._succeed(trial_id, self.final[trial_id])
            return
        if "epoch" not in result:
            return
        metrics = metrics_of(result)
        self.last_epoch[trial_id] = metrics
        epoch = int(result["epoch"])
        if epoch > self.resumed_epochs.get(trial_id, 0):
            self._write_epoch(trial_id, epoch, metrics)

    def _log_placement(self, trial: Any, trial_id: str, result: dict[str, Any]) -> None:
        """Log where the trial runs (Tune's node IP and process id of the result) when it
        first reports, and again when it moved (restarted on another node or process), with
        the epoch it reports first there: 1 for a fresh start, the epoch after its checkpoint
        for a trial that went on from one (a lost node, a resumed job)."""
        where = (result.get("node_ip"), result.get("pid"))
        if where[1] is not None and self.placed.get(trial_id) != where:
            self.placed[trial_id] = where
            first = f"from epoch {result['epoch']}" if "epoch" in result else "final outputs"
            log.info("trial %s runs on node %s, process %s, %s", _key(trial), *where, first)

    def _write_epoch(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None:
        try:
            write_with_retry(
                self.sessions,
                lambda s: crud.upsert_epoch_metrics(
                    s, trial_id=trial_id, epoch=epoch, metrics=metrics
                ),
                what=f"epoch {epoch} of trial {trial_id}",
                max_wait_s=self.retry_s,
            )
        except Exception:  # the job runner backfills missing epochs from Tune's results
            log.exception("trial %s: could not record epoch %s", trial_id, epoch)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        trial_id = trial_id_of(trial)
        seconds = time.monotonic() - self.started.get(trial_id, time.monotonic())
        log.info("trial %s ended after %.1f s", _key(trial), seconds)
        if trial_id in self.recorded:
            return
        last = self.last_epoch.get(trial_id)
        if self.watch.cancelled:
            self._set_status(trial_id, "cancelled", metrics=last)
        elif self.watch.interrupted is not None:  # the job's task is being stopped: no result
            reason = unfinished_reason(self.watch.interrupted)
            self._set_status(trial_id, "failed", failure_reason=reason, metrics=last)
        else:  # stopped early by the scheduler (ASHA)
            self._set_status(trial_id, "stopped", metrics=last)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        trial_id = trial_id_of(trial)
        if trial_id in self.recorded:
            return
        self.recorded.add(trial_id)
        status = "cancelled" if self.watch.cancelled else "failed"
        reason = None if status == "cancelled" else failure_reason(trial_error(trial))
        self._set_status(
            trial_id, status, failure_reason=reason, metrics=self.last_epoch.get(trial_id)
        )


_live: dict[str, tuple[CancelWatch, TrialRecorder]] = {}
_live_lock = threading.Lock()


@contextmanager
def live_hooks(watch: CancelWatch, recorder: TrialRecorder) -> Iterator[None]:
    """Make ``watch`` and ``recorder`` the hooks a restored run of their job gets here."""
    with _live_lock:
        _live[watch.job_id] = (watch, recorder)
    try:
        yield
    finally:
        with _live_lock:
            _live.pop(watch.job_id, None)


def live_watch(database_url: str, job_id: str) -> CancelWatch:
    """The registered watch of the job, else a new one that is not fenced to a worker."""
    with _live_lock:
        hooks = _live.get(job_id)
    return hooks[0] if hooks is not None else CancelWatch(database_url, job_id)


def live_recorder(database_url: str, job_id: str) -> TrialRecorder:
    """The registered recorder of the job, else a new one."""
    with _live_lock:
        hooks = _live.get(job_id)
    if hooks is not None:
        return hooks[1]
    return TrialRecorder(database_url, live_watch(database_url, job_id))

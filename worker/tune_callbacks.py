"""Driver-side Tune hooks: write trial status and epoch metrics to the database as they arrive,
and stop every trial when the job is being cancelled.

These run in the worker process that drives Tune (not in the trials), so only this process
talks to the database. Epoch rows are upserts: a replayed epoch never duplicates.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Job
from worker.db_ops import unfinished_reason
from worker.db_retry import DEFAULT_MAX_WAIT_S, is_connection_error, write_with_retry
from worker.heartbeat import LEASE_STATUSES, beat

log = logging.getLogger(__name__)

# Keys Ray Tune adds to every result; everything else numeric is one of our metrics.
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


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The metrics a trial reported (Tune's bookkeeping keys and non-numbers dropped)."""
    return {
        k: float(v)
        for k, v in result.items()
        if k not in TUNE_RESULT_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
    }


def failure_reason(trial: Any) -> str:
    """A one-line reason: the trainable's ``error.json``, else the last line of Tune's error."""
    out_dir = Path(trial.config["trial"]["out_dir"])
    error_json = out_dir / "error.json"
    if error_json.is_file():
        try:
            return str(json.loads(error_json.read_text())["reason"])
        except (ValueError, KeyError):
            pass
    error_file = getattr(trial, "error_file", None)
    if error_file and Path(error_file).is_file():
        lines = [ln.strip() for ln in Path(error_file).read_text().splitlines() if ln.strip()]
        if lines:
            return lines[-1][:1000]
    return "the trial process failed without an error message (killed, e.g. out of memory?)"


def saved_result(trial: Any) -> dict[str, Any] | None:
    """``{"metrics", "best_epoch"}`` from the trial's ``result.json`` if its outputs are complete.

    For a trial whose final report never reached the callbacks (it finished all the same).
    """
    from worker.job_resume import finished_result

    result = finished_result(Path(trial.config["trial"]["out_dir"]))
    if result is None:
        return None
    metrics = {
        k: float(v)
        for k, v in result["metrics"].items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {"metrics": metrics, "best_epoch": int(result.get("best_epoch") or 0) or None}


class DatabaseHook:
    """Holds the database URL, not a session factory: Tune pickles its callbacks and stopper."""

    database_url: str

    def sessions(self) -> Session:
        from worker.db_ops import session_factory

        return session_factory(self.database_url)()


class CancelWatch(DatabaseHook, Stopper):
    """Stops all trials once the job row says ``cancelling``; also heartbeats the job.

    Polls the database at most every ``poll_s`` seconds (Tune asks every loop step). With
    ``worker`` given, it also stops everything (``superseded``) once the job is no longer held
    by that worker (the reconciler gave it to another one), and its heartbeat is fenced the
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
        if self.worker is not None and (status not in LEASE_STATUSES or owner != self.worker):
            self.superseded = status is not None and status not in ("cancelling", "cancelled")
        if status in (None, "cancelling", "cancelled") or self.superseded:
            self.cancelled = True
        return self.cancelled

    def _poll(self) -> tuple[str | None, str | None]:
        """(status, worker) of the job now; heartbeats it every ``heartbeat_s`` seconds."""
        now = time.monotonic()
        with self.sessions() as session:
            job = session.get(Job, self.job_id)
            status, owner = (job.status, job.worker) if job is not None else (None, None)
            if now - self._last_heartbeat >= self.heartbeat_s:
                if self.worker is None:
                    crud.heartbeat(session, job_id=self.job_id)
                else:
                    beat(session, job_id=self.job_id, worker=self.worker)
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
    """Writes trial status and epoch metrics of one job to the database."""

    def __init__(
        self, database_url: str, watch: CancelWatch, retry_s: float = DEFAULT_MAX_WAIT_S
    ) -> None:
        self.database_url = database_url
        self.watch = watch
        self.retry_s = retry_s  # a write is retried this long while the database is down
        self.final: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}
        self.last_epoch: dict[str, dict[str, float]] = {}
        self.recorded: set[str] = set()  # trials whose final status was written

    @staticmethod
    def _trial_id(trial: Any) -> str:
        return str(trial.config["trial"]["trial_id"])

    def _set_status(self, trial_id: str, status: str, **kwargs: Any) -> None:
        try:
            write_with_retry(
                self.sessions,
                lambda s: crud.set_trial_status(s, trial_id=trial_id, status=status, **kwargs),
                what=f"status {status} of trial {trial_id}",
                max_wait_s=self.retry_s,
            )
        except Exception:  # the job runner adopts finished trials from their outputs later
            log.exception("trial %s: could not record status %s", trial_id, status)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
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
        trial_id = self._trial_id(trial)
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
        try:
            write_with_retry(
                self.sessions,
                lambda s: crud.upsert_epoch_metrics(
                    s, trial_id=trial_id, epoch=epoch, metrics=metrics
                ),
                what=f"epoch {epoch} of trial {trial_id}",
                max_wait_s=self.retry_s,
            )
        except Exception:  # the job runner backfills missing epochs from the checkpoints
            log.exception("trial %s: could not record epoch %s", trial_id, epoch)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        seconds = time.monotonic() - self.started.get(trial_id, time.monotonic())
        log.info("trial %s ended after %.1f s", trial.config["trial"]["key"], seconds)
        if trial_id in self.recorded:
            return
        final = self.final.get(trial_id) or saved_result(trial)
        if final is not None:
            self._succeed(trial_id, final)
        elif self.watch.cancelled:
            self._set_status(trial_id, "cancelled", metrics=self.last_epoch.get(trial_id))
        elif self.watch.interrupted is not None:  # the job's task is being stopped: no result
            self._set_status(
                trial_id,
                "failed",
                failure_reason=unfinished_reason(self.watch.interrupted),
                metrics=self.last_epoch.get(trial_id),
            )
        else:  # stopped early by the scheduler (ASHA)
            self._set_status(trial_id, "stopped", metrics=self.last_epoch.get(trial_id))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id in self.recorded:
            return
        self.recorded.add(trial_id)
        status = "cancelled" if self.watch.cancelled else "failed"
        reason = None if status == "cancelled" else failure_reason(trial)
        self._set_status(
            trial_id, status, failure_reason=reason, metrics=self.last_epoch.get(trial_id)
        )

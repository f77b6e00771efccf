"""Bounded retries of the worker's database writes while the database is unreachable.

A connection problem (``OperationalError``, ``InterfaceError`` or an invalidated connection)
is retried with exponential backoff (``base_s``, doubled each time, at most ``cap_s`` between
tries) until ``max_wait_s`` have passed; then the last error is raised. Other errors (a
constraint violation, a bug) are raised at once. Each try runs in a fresh session, so a
connection that died mid-transaction is never reused (the engine's pre-ping replaces it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_WAIT_S = 60.0
BASE_DELAY_S = 0.2
MAX_DELAY_S = 5.0


def is_connection_error(exc: BaseException) -> bool:
    """True for errors that mean "the database is not reachable right now"."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def backoff_delays(
    max_wait_s: float, base_s: float = BASE_DELAY_S, cap_s: float = MAX_DELAY_S
) -> Iterator[float]:
    """Yield the sleeps between tries: base, 2*base, ... capped at cap_s, summing <= max_wait_s."""
    total, delay = 0.0, base_s
    while total + delay <= max_wait_s:
        yield delay
        total += delay
        delay = min(cap_s, delay * 2)
    if total < max_wait_s:
        yield max_wait_s - total


def retry_db(
    fn: Callable[[], T],
    *,
    what: str,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried on connection errors for at most ``max_wait_s`` seconds of backoff.

    ``what`` names the write in the log (``"epoch 3 of trial <id>"``).
    """
    delays = backoff_delays(max_wait_s)
    tries = 0
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                log.error("database unavailable: giving up on %s after %d tries", what, tries + 1)
                raise
            tries += 1
            log.warning(
                "database unavailable (%s); retrying %s in %.1f s (try %d)",
                type(exc).__name__,
                what,
                delay,
                tries,
            )
            sleep(delay)
            continue
        if tries:
            log.info("database back: %s written after %d retries", what, tries)
        return result


def write_with_retry(
    sessions: Callable[[], Session],
    fn: Callable[[Session], T],
    *,
    what: str,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> T:
    """``fn(session)`` in a fresh session per try (rolled back and closed on error), retried."""

    def attempt() -> T:
        with sessions() as session:
            try:
                return fn(session)
            except BaseException:
                session.rollback()
                raise

    return retry_db(attempt, what=what, max_wait_s=max_wait_s)

"""Artifact writes that survive a passing storage fault (not writable, full): try again after
``storage_retry_delay_s``, then twice as long, ``storage_retry_tries`` times in all; then give
up with ``StorageUnavailable``, a one-line reason that fails the dataset or job cleanly."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from infra.settings import Settings, get_settings
from infra.storage import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")


class StorageUnavailable(ValueError):
    """The artifact store stayed unusable through every try (the reason names no path)."""


def with_storage_retry(write: Callable[[], T], what: str, settings: Settings | None = None) -> T:
    """``write()``, tried again on ``StorageError`` as the settings say; raises
    StorageUnavailable once the tries are spent. ``what`` names the write in the log."""
    settings = settings or get_settings()
    tries = settings.storage_retry_tries
    for attempt in range(1, tries + 1):
        try:
            return write()
        except StorageError as exc:
            if attempt == tries:
                log.error("%s: %s (%s); giving up after %d tries", what, exc, exc.cause, tries)
                raise StorageUnavailable(f"{exc}; gave up after {tries} tries") from exc
            delay = settings.storage_retry_delay_s * 2 ** (attempt - 1)
            log.warning(
                "%s: %s (%s); retrying in %.1f s (try %d of %d)",
                what, exc, exc.cause, delay, attempt + 1, tries,
            )  # fmt: skip
            time.sleep(delay)
    raise AssertionError("unreachable: storage_retry_tries >= 1")

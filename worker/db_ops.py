"""Old import paths of the database functions the worker uses, all now in ``infra.db``.

Kept only until the Tune rewrite imports them from there; delete this module then.
"""

from __future__ import annotations

from infra.db.crud import (
    close_open_trials,
    model_artifact_of,
    replace_artifact_file,
    report_artifact_of,
    set_trials_total,
    unfinished_reason,
)
from infra.db.session import SessionFactory, session_factory

__all__ = [
    "SessionFactory",
    "close_open_trials",
    "model_artifact_of",
    "replace_artifact_file",
    "report_artifact_of",
    "session_factory",
    "set_trials_total",
    "unfinished_reason",
]

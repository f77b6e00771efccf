"""The housekeeping pass removes files left in the artifact store's temporary folder by a
process that crashed mid-write (``temp_file_max_age_s`` after their last change), and leaves
files still being written alone."""

from __future__ import annotations

import os
import time

from infra.settings import Settings
from infra.storage import ArtifactStore
from worker.housekeeping import Housekeeper


def test_a_pass_removes_stale_temp_files_only(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"temp_file_max_age_s": 3600.0})
    store = ArtifactStore(settings.artifact_root)
    stale, fresh = store.new_temp_file(".npz"), store.new_temp_file(".npz")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))  # as a crashed upload's file would be
    housekeeper = Housekeeper(settings, assume_db_continuity=True)
    try:
        result = housekeeper.run_once()
        assert result.temp_files_removed == [stale.name]
        assert not stale.exists() and fresh.exists()
        assert housekeeper.run_once().temp_files_removed == []
    finally:
        housekeeper.close()

"""A short run of benchmarks/load_test.py: the API under uvicorn on loopback (PostgreSQL, the
embedded SQLite broker, no worker), 10 concurrent clients submitting and reading jobs for 5 s.
Zero errors, and no lost submission: every 202 has its job row and its broker message.

The full run (50 clients x 60 s) is a benchmark: ``python benchmarks/load_test.py``.
No latency is asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from db_testing import PG_ADMIN_URL

LOAD_TEST = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synib_load_test", LOAD_TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_short_load_run_has_no_errors_and_loses_no_submission() -> None:
    load_test = load_module()
    result = load_test.run_load(clients=10, duration_s=5.0, pg_admin_url=PG_ADMIN_URL)
    print("\n" + load_test.format_table(result))
    assert result.errors == []
    assert len(result.accepted) >= 10  # every client got at least one submission through
    assert len(set(result.accepted)) == len(result.accepted)
    assert result.lost == 0 and result.unexpected_rows == 0
    assert result.jobs_in_db == len(result.accepted)
    assert result.broker_messages == len(result.accepted)
    assert set(result.latencies_ms) == {"submit", "get", "list"}


def test_percentile_is_linear_between_ranks() -> None:
    percentile = load_module().percentile
    values = [40.0, 10.0, 30.0, 20.0]  # sorted: 10, 20, 30, 40
    assert percentile(values, 50) == 25.0  # halfway between ranks 1 and 2
    assert percentile(values, 100) == 40.0
    assert percentile(values, 0) == 10.0
    assert abs(percentile(values, 99) - 39.7) < 1e-9  # 10 + 30 * 0.99

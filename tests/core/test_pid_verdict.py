"""The plain-words PID verdict at each documented threshold."""

from __future__ import annotations

import pytest

from synib_core.metrics import PID, pid_verdict


def pid(synergy: float, total: float, pair: tuple[str, str] = ("a", "b")) -> PID:
    return PID(pair, "label", 0.0, dict.fromkeys(pair, 0.0), synergy, total, {}, 100)


@pytest.mark.parametrize(
    ("synergy", "total", "start"),
    [
        (0.01, 0.03, "little information about the label (0.03 bits between a and b)"),
        (0.02, 0.80, "little synergy (0.02 bits of 0.80 between a and b): SynIB is unlikely"),
        (0.10, 0.99, "some synergy (0.10 bits of 0.99 between a and b): SynIB may help"),
        (0.15, 0.99, "much synergy (0.15 bits of 0.99 between a and b): SynIB is likely"),
    ],
)
def test_thresholds(synergy: float, total: float, start: str) -> None:
    assert pid_verdict([pid(synergy, total)]).startswith(start)


def test_the_pair_with_most_synergy_decides() -> None:
    text = pid_verdict([pid(0.01, 0.5), pid(0.3, 0.6, ("a", "c"))])
    assert text.startswith("much synergy (0.30 bits of 0.60 between a and c)")
    with pytest.raises(ValueError, match="pids"):
        pid_verdict([])

"""A plain-words verdict on a dataset's PID: is there synergy for SynIB to gain?

Thresholds (bits of information about the label, from the pair of modalities with the most
synergy):
- total I(Y; X_1, X_2) < ``LITTLE_INFORMATION`` (0.05): the modalities say little about the
  label at all; check the data (or the discretisation) before training anything;
- synergy < ``LITTLE_SYNERGY`` (0.05, about the estimator's plug-in bias at the default number
  of clusters): SynIB is unlikely to help;
- synergy >= ``MUCH_SYNERGY`` (0.15, e.g. one sample in seven needing both modalities for a
  binary label): SynIB is likely to help;
- in between: SynIB may help; compare it with vanilla on the synergy subset.

Example:
    >>> pid_verdict([PID(("a", "b"), "label", 0.5, {"a": 0.3, "b": 0.0}, 0.02, 0.82, {}, 100)])
    'little synergy (0.02 bits of 0.82 between a and b): SynIB is unlikely to help'
"""

from __future__ import annotations

from collections.abc import Sequence

from synib_core.metrics.pid import PID

__all__ = ["LITTLE_INFORMATION", "LITTLE_SYNERGY", "MUCH_SYNERGY", "describe_pid", "pid_verdict"]

LITTLE_INFORMATION = 0.05
LITTLE_SYNERGY = 0.05
MUCH_SYNERGY = 0.15


def pid_verdict(pids: Sequence[PID]) -> str:
    """One sentence from the pair with the most synergy (thresholds in the module docstring)."""
    if not pids:
        raise ValueError("pids: needs the PID of at least one pair of modalities")
    best = max(pids, key=lambda p: p.synergy)
    pair = f"between {best.modalities[0]} and {best.modalities[1]}"
    if max(p.total for p in pids) < LITTLE_INFORMATION:
        return (
            f"little information about the label ({best.total:.2f} bits {pair}): check the "
            "data before training"
        )
    amount = f"{best.synergy:.2f} bits of {best.total:.2f} {pair}"
    if best.synergy < LITTLE_SYNERGY:
        return f"little synergy ({amount}): SynIB is unlikely to help"
    if best.synergy >= MUCH_SYNERGY:
        return f"much synergy ({amount}): SynIB is likely to help"
    return f"some synergy ({amount}): SynIB may help; compare it with vanilla"


def describe_pid(pid: PID) -> str:
    """One line: "a + b: redundancy 0.450, unique a 0.450, unique b 0.000, synergy 0.100 bits
    (I(label; a, b) = 1.000)"."""
    m1, m2 = pid.modalities
    return (
        f"{m1} + {m2}: redundancy {pid.redundancy:.3f}, unique {m1} {pid.unique[m1]:.3f}, "
        f"unique {m2} {pid.unique[m2]:.3f}, synergy {pid.synergy:.3f} bits "
        f"(I({pid.target}; {m1}, {m2}) = {pid.total:.3f})"
    )

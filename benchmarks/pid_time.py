"""PID estimator: time for 10,000 samples x 2 modalities on one CPU thread, and the estimates
against ground truth worked out by hand (tests/core/test_pid.py derives each one).

    PYTHONPATH=. python benchmarks/pid_time.py            # 10,000 samples, 3 timed repeats
    python benchmarks/pid_time.py --smoke    # 2,000 samples, 1 repeat (seconds)

Prints two Markdown tables. Target: under 30 s for 10,000 x 2 (issue #24).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one thread, as on the shared box

import numpy as np  # noqa: E402

from synib_core.data import GENERATORS  # noqa: E402
from synib_core.metrics import dataset_pid, discretise_modalities  # noqa: E402
from synib_core.metrics.pid import pairwise_pid  # noqa: E402

TARGET_S = 30.0

# case -> (R, U_a, U_b, S) in bits
TRUTH = {
    "XOR bits (Y = X_a xor X_b)": (0.0, 0.0, 0.0, 1.0),
    "copies (X_a = X_b = Y)": (1.0, 0.0, 0.0, 0.0),
    "one informative modality (X_a = Y)": (0.0, 1.0, 0.0, 0.0),
    "xor_pid p = (0.45, 0, 0.45, 0.10), signal 10": (0.45, 0.45, 0.0, 0.10),
    "xor_pid p = (0.3, 0.2, 0.3, 0.2), signal 10": (0.5, 0.1, 0.0, 0.4),
    "xor_pid p = (0.45, 0, 0.45, 0.10), signal 3 (default)": (0.45, 0.45, 0.0, 0.10),
}


def xor_pid(n: int, p: tuple[float, ...], signal: float) -> tuple[dict, np.ndarray]:
    sizes = {"n_train": int(0.8 * n), "n_val": n // 10, "n_test": n - int(0.8 * n) - n // 10}
    data = GENERATORS["xor_pid"](seed=0, p=p, signal=signal, **sizes)
    return data.x, data.y


def cases(n: int) -> dict[str, tuple[dict, np.ndarray]]:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, size=(2, n))
    return {
        "XOR bits (Y = X_a xor X_b)": ({"a": a[:, None], "b": b[:, None]}, a ^ b),
        "copies (X_a = X_b = Y)": ({"a": a[:, None], "b": a[:, None]}, a),
        "one informative modality (X_a = Y)": ({"a": a[:, None], "b": b[:, None]}, a),
        "xor_pid p = (0.45, 0, 0.45, 0.10), signal 10": xor_pid(n, (0.45, 0, 0.45, 0.10), 10.0),
        "xor_pid p = (0.3, 0.2, 0.3, 0.2), signal 10": xor_pid(n, (0.3, 0.2, 0.3, 0.2), 10.0),
        "xor_pid p = (0.45, 0, 0.45, 0.10), signal 3 (default)": xor_pid(
            n, (0.45, 0, 0.45, 0.10), 3.0
        ),
    }


def timing_table(n: int, repeats: int) -> list[str]:
    x, y = xor_pid(n, (0.45, 0.0, 0.45, 0.10), 3.0)
    dataset_pid(x, y)  # first call: imports scikit-learn and cvxpy (timed separately below)
    rows = []
    for _ in range(repeats):
        start = time.perf_counter()
        states = discretise_modalities(x, 2)
        middle = time.perf_counter()
        (pid,) = pairwise_pid(states, y)
        end = time.perf_counter()
        rows.append((middle - start, end - middle, end - start))
    k_means, solver, total = (statistics.median(col) for col in zip(*rows, strict=True))
    dims = "x".join(str(v.shape[1]) for v in x.values())
    return [
        "| samples | modalities (dims) | states | k-means (s) | solver (s) | total (s) | target |",
        "|---|---|---|---|---|---|---|",
        f"| {n} | 2 ({dims}) | {pid.states['a']} x {pid.states['b']} | {k_means:.2f} | "
        f"{solver:.2f} | {total:.2f} | < {TARGET_S:.0f} s |",
        f"(median of {repeats}, one thread; xor_pid default generator, default cluster rule)",
    ]


def accuracy_table(n: int) -> list[str]:
    lines = [
        "| case | R est / true | U_a est / true | U_b est / true | S est / true | max error |",
        "|---|---|---|---|---|---|",
    ]
    for name, (x, y) in cases(n).items():
        (pid,) = dataset_pid(x, y)
        est = (pid.redundancy, pid.unique["a"], pid.unique["b"], pid.synergy)
        cells = [f"{e:.3f} / {t:.2f}" for e, t in zip(est, TRUTH[name], strict=True)]
        error = max(abs(e - t) for e, t in zip(est, TRUTH[name], strict=True))
        lines.append(f"| {name} | {' | '.join(cells)} | {error:.3f} |")
    lines.append(
        f"({n} samples, default cluster rule. With signal 3 the noise hides part of each "
        "source: the truth shown is that of the noiseless mixture.)"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2,000 samples, one repeat")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, repeats = (2_000, 1) if args.smoke else (args.samples, args.repeats)
    print("\n".join(timing_table(n, repeats)))
    print()
    print("\n".join(accuracy_table(n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

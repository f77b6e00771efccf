"""The synthetic reference datasets of docs/METHOD.md: xor_spurious and xor_pid."""

from __future__ import annotations

import numpy as np

from synib_core.data.dataset import MultimodalData

PID_DIM = 32
PID_BLOCKS = {"unique": slice(0, 6), "redundant": slice(6, 12), "synergy": slice(12, 18)}
PID_SOURCES = ("unique_a", "unique_b", "redundant", "synergy")


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def make_xor_spurious(
    seed: int,
    *,
    alpha: float,
    n_train: int,
    n_val: int,
    n_test: int,
    dim: int,
    fingerprint: str,
    val_alpha: float = -1.0,
) -> MultimodalData:
    """y = b0 XOR b1; bit b_m written into x_m[0:4]; shortcut of strength alpha in x_a[4:10] in
    train and validation (alpha = 0 at test). Modalities "a", "b": (N, dim) float32.

    val_alpha: the shortcut's strength in the validation split; -1 (default) = alpha, as in the
    paper. 0 gives a validation split drawn like the test split (no shortcut): selecting on it
    uses knowledge of the shift, never the test samples."""
    rng = np.random.default_rng(seed)
    parts = []
    v_alpha = alpha if val_alpha < 0 else val_alpha
    for sid, n, a in ((0, n_train, alpha), (1, n_val, v_alpha), (2, n_test, 0.0)):
        bits = rng.integers(0, 2, size=(2, n))
        y = bits[0] ^ bits[1]
        xs = []
        for m in range(2):
            x = rng.standard_normal((n, dim))
            x[:, 0:4] = 2.2 * (2 * bits[m] - 1)[:, None] + 0.55 * rng.standard_normal((n, 4))
            xs.append(x)
        eps = rng.standard_normal((n, 6))
        xs[0][:, 4:10] = 1.3 * (a * (2 * y - 1)[:, None] + np.sqrt(max(0.0, 1 - a * a)) * eps)
        parts.append({"a": xs[0], "b": xs[1], "y": y, "split": np.full(n, sid, dtype=np.int8)})
    cat = _concat(parts)
    oracle = np.arange(4, dtype=np.int64)
    return MultimodalData(
        x={"a": cat["a"].astype(np.float32), "b": cat["b"].astype(np.float32)},
        y=cat["y"].astype(np.int64),
        split=cat["split"],
        group=np.full(cat["y"].shape[0], "synergy"),
        oracle={"a": oracle, "b": oracle.copy()},
        lengths={},
        num_classes=2,
        fingerprint=fingerprint,
    )


def _pid_projections(projection_seed: int, signal: float) -> dict[tuple[str, str], np.ndarray]:
    """Fixed (modality, block) -> (6,) direction of norm `signal` that carries a sign bit."""
    rng = np.random.default_rng(projection_seed)
    out = {}
    for m in ("a", "b"):
        for block in PID_BLOCKS:
            w = rng.standard_normal(6)
            out[(m, block)] = signal * w / np.linalg.norm(w)
    return out


def _pid_part(rng: np.random.Generator, n: int, p: np.ndarray, proj: dict) -> dict[str, np.ndarray]:
    source = rng.choice(len(PID_SOURCES), size=n, p=p)
    y = rng.integers(0, 2, size=n)
    x = {m: rng.standard_normal((n, PID_DIM)) for m in ("a", "b")}
    sign = 2 * y - 1  # (n,)
    bit_a = rng.integers(0, 2, size=n)
    sign_syn = {"a": 2 * bit_a - 1, "b": 2 * (bit_a ^ y) - 1}
    writes = (  # (source id, modality, block, sign per sample)
        (0, "a", "unique", sign),
        (1, "b", "unique", sign),
        (2, "a", "redundant", sign),
        (2, "b", "redundant", sign),
        (3, "a", "synergy", sign_syn["a"]),
        (3, "b", "synergy", sign_syn["b"]),
    )
    for sid, m, block, s in writes:
        rows = source == sid
        x[m][rows, PID_BLOCKS[block]] += s[rows, None] * proj[(m, block)][None, :]
    return {"a": x["a"], "b": x["b"], "y": y, "source": source}


def make_xor_pid(
    seed: int,
    *,
    p: tuple[float, ...],
    n_train: int,
    n_val: int,
    n_test: int,
    signal: float,
    projection_seed: int,
    fingerprint: str,
) -> MultimodalData:
    """Two 32-d modalities with blocks unique [0:6], redundant [6:12], synergy [12:18], noise
    [18:32]; one active source per sample drawn with p = (pU_a, pU_b, pR, pS); the source writes
    a sign bit along a fixed direction into its block (synergy: b_a random, b_b = b_a XOR y).
    Standardised with training statistics; group = source; oracle = the synergy block."""
    rng = np.random.default_rng(seed)
    proj = _pid_projections(projection_seed, signal)
    probs = np.asarray(p, dtype=np.float64) / float(np.sum(p))
    parts = []
    for sid, n in ((0, n_train), (1, n_val), (2, n_test)):
        part = _pid_part(rng, n, probs, proj)
        part["split"] = np.full(n, sid, dtype=np.int8)
        parts.append(part)
    cat = _concat(parts)
    train = cat["split"] == 0
    x = {}
    for m in ("a", "b"):
        mean = cat[m][train].mean(axis=0)
        std = np.maximum(cat[m][train].std(axis=0), 1e-8)
        x[m] = ((cat[m] - mean) / std).astype(np.float32)
    oracle = np.arange(PID_BLOCKS["synergy"].start, PID_BLOCKS["synergy"].stop, dtype=np.int64)
    return MultimodalData(
        x=x,
        y=cat["y"].astype(np.int64),
        split=cat["split"],
        group=np.asarray(PID_SOURCES)[cat["source"]],
        oracle={"a": oracle, "b": oracle.copy()},
        lengths={},
        num_classes=2,
        fingerprint=fingerprint,
    )

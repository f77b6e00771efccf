"""`digits_pairs`: semi-synthetic two-view data from scikit-learn's bundled 8x8 digits.

Each sample shows two different digit images, view "a" (digit d_a) and view "b" (digit d_b).
d_a is uniform over 0..9. Non-synergy samples (group "unique_a"): label y = d_a and d_b is a
uniform digit of the SAME parity as d_a. Synergy samples (share `synergy_rate`, group
"synergy"): label y = 10 and d_b is a uniform digit of the OPPOSITE parity.

Why neither view alone reveals class 10: view a's digit is uniform in both groups; view b's digit
is "uniform parity, then uniform digit of that parity" in both groups, i.e. uniform over 0..9,
and the image is drawn uniformly from that digit's pool. So each view's marginal distribution is
identical for synergy and non-synergy samples; only the parity relation between the two views
tells them apart. Among non-synergy samples the label beyond its parity is in view a only.
Images are partitioned into train/val/test pools (stratified 70/15/15), so no test image is
seen in training.
"""

from __future__ import annotations

import numpy as np

from synib_core.data.dataset import MultimodalData
from synib_spec.datasets import stratified_split

SYNERGY_CLASS = 10


def _image_pools(images: np.ndarray, digits: np.ndarray, rng_seed: int) -> list[list[np.ndarray]]:
    """pools[split][digit] -> indices of the images of that digit in that split's pool."""
    pool_split = stratified_split(digits, seed=rng_seed)
    return [
        [np.flatnonzero((pool_split == s) & (digits == d)) for d in range(10)] for s in range(3)
    ]


def _draw_pairs(
    rng: np.random.Generator, n: int, synergy_rate: float, pools: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(idx_a, idx_b, y, is_synergy), each (n,), for one split."""
    is_syn = np.zeros(n, dtype=bool)
    is_syn[rng.permutation(n)[: round(synergy_rate * n)]] = True
    d_a = rng.integers(0, 10, size=n)
    parity_b = np.where(is_syn, 1 - d_a % 2, d_a % 2)
    d_b = 2 * rng.integers(0, 5, size=n) + parity_b
    idx_a = np.empty(n, dtype=np.int64)
    idx_b = np.empty(n, dtype=np.int64)
    for i in range(n):
        pool_a, pool_b = pools[d_a[i]], pools[d_b[i]]
        idx_a[i] = pool_a[rng.integers(pool_a.size)]
        j = int(rng.integers(pool_b.size))
        if pool_b[j] == idx_a[i]:  # never the same image in both views
            j = (j + 1) % pool_b.size
        idx_b[i] = pool_b[j]
    y = np.where(is_syn, SYNERGY_CLASS, d_a)
    return idx_a, idx_b, y, is_syn


def make_digits_pairs(
    seed: int,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    synergy_rate: float,
    layout: str,
    fingerprint: str,
) -> MultimodalData:
    """Views "a", "b": (N, 64) with layout "flat" or (N, 1, 8, 8) with "image", values in [0, 1];
    11 classes (digits 0..9 and the synergy class 10)."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn is optional for synib_core

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 64)
    digits = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    pools = _image_pools(images, digits, rng_seed=seed)
    cols: dict[str, list[np.ndarray]] = {"a": [], "b": [], "y": [], "syn": [], "split": []}
    for sid, n in ((0, n_train), (1, n_val), (2, n_test)):
        idx_a, idx_b, y, is_syn = _draw_pairs(rng, n, synergy_rate, pools[sid])
        for key, val in (("a", images[idx_a]), ("b", images[idx_b]), ("y", y), ("syn", is_syn)):
            cols[key].append(val)
        cols["split"].append(np.full(n, sid, dtype=np.int8))
    cat = {key: np.concatenate(vals) for key, vals in cols.items()}
    shape = (-1, 1, 8, 8) if layout == "image" else (-1, 64)
    return MultimodalData(
        x={"a": cat["a"].reshape(shape), "b": cat["b"].reshape(shape)},
        y=cat["y"].astype(np.int64),
        split=cat["split"],
        group=np.where(cat["syn"], "synergy", "unique_a"),
        oracle={},
        lengths={},
        num_classes=SYNERGY_CLASS + 1,
        fingerprint=fingerprint,
    )

"""The dataset file contract (ARCHITECTURE.md "Dataset file"), checked on already-read arrays.

`api/datasets/validation.py` re-implements these checks without synib_core (the API must not
import it); tests/core/test_validation_parity.py keeps the two in agreement. Keep the order of
the checks and the field names identical in both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from synib_core.data.dataset import DatasetError

MODALITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
PREFIXES = ("x_", "oracle_", "len_")
FIXED_KEYS = ("y", "split", "group")
MAX_CLASSES = 100_000
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
ALLOWED_NAMES = "y, x_<modality>, split, group, oracle_<modality>, len_<modality>"


@dataclass
class CheckedArrays:
    """The validated content of a dataset file (x values untouched, still possibly memmaps)."""

    x: dict[str, np.ndarray]
    y: np.ndarray
    split: np.ndarray
    group: np.ndarray | None
    oracle: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    num_classes: int


def check_arrays(arrays: Mapping[str, np.ndarray], *, split_seed: int = 0) -> CheckedArrays:
    """Validate the arrays of a dataset file; raise `DatasetError(field, reason)` on the first problem.

    arrays: key -> array as stored in the .npz (y (N,), x_<m> (N, ...), split (N,), ...).
    Without `split`, a stratified 70/15/15 split seeded by `split_seed` is drawn.
    """
    modalities = _check_keys(arrays)
    y = _check_labels(arrays["y"])
    n = y.shape[0]
    x = {m: _check_modality(f"x_{m}", arrays[f"x_{m}"], n) for m in modalities}
    if "split" in arrays:
        split = _check_split(arrays["split"], n)
    else:
        split = stratified_split(y, seed=split_seed)
    group = _check_group(arrays["group"], n) if "group" in arrays else None
    oracle, lengths = {}, {}
    for key, arr in arrays.items():
        if key.startswith("oracle_"):
            m = _owner(key, modalities)
            oracle[m] = _check_oracle(key, arr, x[m])
        elif key.startswith("len_"):
            m = _owner(key, modalities)
            lengths[m] = _check_lengths(key, arr, x[m])
    return CheckedArrays(x, y, split, group, oracle, lengths, int(y.max()) + 1)


def _check_keys(arrays: Mapping[str, np.ndarray]) -> list[str]:
    for key in arrays:
        if key in FIXED_KEYS:
            continue
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise DatasetError(key, f"unknown array; allowed names: {ALLOWED_NAMES}")
        if not MODALITY_NAME.match(key[len(prefix) :]):
            raise DatasetError(key, "modality names must match [A-Za-z0-9][A-Za-z0-9_]*")
    if "y" not in arrays:
        raise DatasetError("y", "missing: the file needs integer class labels `y` of shape (N,)")
    modalities = [k[2:] for k in arrays if k.startswith("x_")]
    if len(modalities) < 2:
        raise DatasetError(
            "x_<modality>", f"at least two modality arrays are needed, found {len(modalities)}"
        )
    return modalities


def _check_labels(y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise DatasetError("y", f"must have shape (N,), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise DatasetError("y", f"must be an integer array, got dtype {y.dtype}")
    if y.shape[0] == 0:
        raise DatasetError("y", "is empty")
    if int(y.min()) < 0:
        raise DatasetError("y", f"labels must be in 0..K-1, found {int(y.min())}")
    if int(y.max()) >= MAX_CLASSES:
        raise DatasetError("y", f"labels must be below {MAX_CLASSES}, found {int(y.max())}")
    if np.unique(y).size < 2:
        raise DatasetError("y", "needs at least two classes, found one")
    return y.astype(np.int64)


def _check_modality(key: str, arr: np.ndarray, n: int) -> np.ndarray:
    if arr.dtype.kind != "f":
        raise DatasetError(key, f"must be a float array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3, 4):
        raise DatasetError(
            key, f"must have shape (N, D), (N, T, D) or (N, C, H, W), got {arr.shape}"
        )
    if arr.shape[0] != n:
        raise DatasetError(key, f"has {arr.shape[0]} samples but y has {n}")
    if min(arr.shape[1:]) < 1:
        raise DatasetError(key, f"has an empty feature dimension: shape {arr.shape}")
    bad_row = first_non_finite_row(arr)
    if bad_row is not None:
        raise DatasetError(key, f"contains NaN or infinite values (first at sample {bad_row})")
    return arr


def first_non_finite_row(arr: np.ndarray, chunk_elements: int = 1 << 22) -> int | None:
    """Index of the first sample of arr (N, ...) holding NaN/inf, or None; reads in chunks."""
    row_size = max(int(np.prod(arr.shape[1:])), 1)
    step = max(chunk_elements // row_size, 1)
    for start in range(0, arr.shape[0], step):
        ok = np.isfinite(arr[start : start + step]).reshape(-1, row_size).all(axis=1)
        if not ok.all():
            return start + int(np.argmin(ok))
    return None


def _check_split(split: np.ndarray, n: int) -> np.ndarray:
    if split.ndim != 1 or split.shape[0] != n:
        raise DatasetError("split", f"must have shape ({n},) like y, got {split.shape}")
    if split.dtype.kind not in "iu":
        raise DatasetError("split", f"must be an integer array, got dtype {split.dtype}")
    values = set(np.unique(split).tolist())
    if not values <= {0, 1, 2}:
        raise DatasetError(
            "split",
            f"values must be 0 (train), 1 (val) or 2 (test), found {sorted(values - {0, 1, 2})}",
        )
    for sid, name in enumerate(("train", "val", "test")):
        if sid not in values:
            raise DatasetError("split", f"the {name} split ({sid}) is empty")
    return split.astype(np.int8)


def auto_split_counts(class_count: int) -> tuple[int, int, int]:
    """(train, val, test) sizes of one class of `class_count` samples in the automatic split."""
    n_val = int(np.floor(SPLIT_FRACTIONS[1] * class_count + 0.5))
    n_test = int(np.floor(SPLIT_FRACTIONS[2] * class_count + 0.5))
    return class_count - n_val - n_test, n_val, n_test


def stratified_split(y: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(N,) int8 seeded stratified 70/15/15 split of labels y (N,); DatasetError if one is empty."""
    rng = np.random.default_rng(seed)
    split = np.zeros(y.shape[0], dtype=np.int8)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train, n_val, _ = auto_split_counts(idx.size)
        split[idx[n_train : n_train + n_val]] = 1
        split[idx[n_train + n_val :]] = 2
    for sid, name in ((1, "val"), (2, "test")):
        if not (split == sid).any():
            raise DatasetError(
                "split",
                f"not given, and {y.shape[0]} samples are too few for the automatic stratified "
                f"70/15/15 split (the {name} split would be empty); add a `split` array",
            )
    return split


def _check_group(group: np.ndarray, n: int) -> np.ndarray:
    if group.ndim != 1 or group.shape[0] != n:
        raise DatasetError("group", f"must have shape ({n},) like y, got {group.shape}")
    if group.dtype.kind not in "iuUS":
        raise DatasetError("group", f"must hold strings or integers, got dtype {group.dtype}")
    if group.dtype.kind == "S":
        return np.char.decode(group, "ascii", errors="replace").astype(str)
    return group.astype(str)


def _owner(key: str, modalities: list[str]) -> str:
    m = key.split("_", 1)[1]
    if m not in modalities:
        raise DatasetError(key, f"names no modality; modalities are {', '.join(modalities)}")
    return m


def _check_oracle(key: str, idx: np.ndarray, x: np.ndarray) -> np.ndarray:
    size = int(np.prod(x.shape[1:]))
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise DatasetError(key, f"must be a 1-d integer array, got {idx.dtype} {idx.shape}")
    if idx.size == 0:
        raise DatasetError(key, "is empty")
    if int(idx.min()) < 0 or int(idx.max()) >= size:
        raise DatasetError(key, f"indices must be in 0..{size - 1} (flattened features)")
    return idx.astype(np.int64)


def _check_lengths(key: str, lengths: np.ndarray, x: np.ndarray) -> np.ndarray:
    if x.ndim != 3:
        raise DatasetError(key, f"only sequence modalities (N, T, D) take lengths, got {x.shape}")
    if lengths.ndim != 1 or lengths.shape[0] != x.shape[0] or lengths.dtype.kind not in "iu":
        raise DatasetError(key, f"must be an integer array of shape ({x.shape[0]},)")
    if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
        raise DatasetError(key, f"lengths must be in 1..{x.shape[1]}")
    return lengths.astype(np.int64)

"""Validate an uploaded dataset `.npz` with numpy only, safely (never unpickles, bounded memory).

The modality arrays (`x_*`, nearly all of a dataset's bytes) are never held whole: their shape
and dtype come from the .npy header and their values are checked while they are read from the
archive, a few MB at a time (`api.datasets.archive.StreamedArray`). The small per-sample arrays
(`y`, `split`, `group`, `oracle_*`, `len_*`) are read into memory.

The same contract as `synib_core.data.load_npz` (ARCHITECTURE.md "Dataset file"), re-implemented
here because the API must not import synib_core; tests/core/test_validation_parity.py checks that
both accept and reject the same files and name the same field. Keep the check order and field
names identical to synib_core/data/contract.py.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np

from api.datasets.archive import (
    NOT_AN_ARCHIVE,
    ArrayLike,
    StreamedArray,
    UploadError,
    UploadLimits,
    read_archive,
)

__all__ = ["UploadError", "UploadLimits", "check_arrays", "validate_npz"]

MODALITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
PREFIXES = ("x_", "oracle_", "len_")
FIXED_KEYS = ("y", "split", "group")
MAX_CLASSES = 100_000
ALLOWED_NAMES = "y, x_<modality>, split, group, oracle_<modality>, len_<modality>"
SPLITS = ("train", "val", "test")


def validate_npz(
    source: str | os.PathLike[str] | IO[bytes], *, limits: UploadLimits | None = None
) -> dict[str, Any]:
    """Check an uploaded .npz and summarise it; raise `UploadError(field, reason)` if invalid.

    Returns {num_samples, modalities: [{name, shape}] (full array shapes), num_classes,
    split_sizes {train, val, test}, class_counts {"0": n, ...}, group_counts {name: n},
    has_oracle}. Example: ``validate_npz("data.npz")["num_classes"] == 2``.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UploadError("file", NOT_AN_ARCHIVE) from exc
    with archive:  # open while the checks stream the modality arrays out of it
        return check_arrays(read_archive(archive, limits or UploadLimits()))


def check_arrays(arrays: Mapping[str, ArrayLike]) -> dict[str, Any]:
    """The contract checks on read arrays (same order as synib_core); returns the summary."""
    modalities = _check_keys(arrays)
    y = _check_labels(_whole(arrays["y"]))
    n = int(y.shape[0])
    for m in modalities:
        _check_modality(f"x_{m}", arrays[f"x_{m}"], n)
    if "split" in arrays:
        split_sizes = _check_split(_whole(arrays["split"]), n)
    else:
        split_sizes = _auto_split_sizes(y)
    group_counts = _check_group(_whole(arrays["group"]), n) if "group" in arrays else {}
    for key, arr in arrays.items():
        if key.startswith("oracle_"):
            _check_oracle(key, _whole(arr), arrays[_owner(key, modalities)])
        elif key.startswith("len_"):
            _check_lengths(key, _whole(arr), arrays[_owner(key, modalities)])
    classes, counts = np.unique(y, return_counts=True)
    return {
        "num_samples": n,
        "modalities": [{"name": m, "shape": list(arrays[f"x_{m}"].shape)} for m in modalities],
        "num_classes": int(y.max()) + 1,
        "split_sizes": split_sizes,
        "class_counts": {str(c): int(k) for c, k in zip(classes, counts, strict=True)},
        "group_counts": group_counts,
        "has_oracle": any(key.startswith("oracle_") for key in arrays),
    }


def _whole(arr: ArrayLike) -> np.ndarray:
    """A per-sample array, read whole (only modality arrays are streamed)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{arr.key} was streamed, not read")
    return arr


def _check_keys(arrays: Mapping[str, ArrayLike]) -> list[str]:
    for key in arrays:
        if key in FIXED_KEYS:
            continue
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise UploadError(key, f"unknown array; allowed names: {ALLOWED_NAMES}")
        if not MODALITY_NAME.match(key[len(prefix) :]):
            raise UploadError(key, "modality names must match [A-Za-z0-9][A-Za-z0-9_]*")
    if "y" not in arrays:
        raise UploadError("y", "missing: the file needs integer class labels `y` of shape (N,)")
    modalities = [k[2:] for k in arrays if k.startswith("x_")]
    if len(modalities) < 2:
        raise UploadError(
            "x_<modality>", f"at least two modality arrays are needed, found {len(modalities)}"
        )
    return modalities


def _check_labels(y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise UploadError("y", f"must have shape (N,), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise UploadError("y", f"must be an integer array, got dtype {y.dtype}")
    if y.shape[0] == 0:
        raise UploadError("y", "is empty")
    if int(y.min()) < 0:
        raise UploadError("y", f"labels must be in 0..K-1, found {int(y.min())}")
    if int(y.max()) >= MAX_CLASSES:
        raise UploadError("y", f"labels must be below {MAX_CLASSES}, found {int(y.max())}")
    if np.unique(y).size < 2:
        raise UploadError("y", "needs at least two classes, found one")
    return y.astype(np.int64)


def _check_modality(key: str, arr: ArrayLike, n: int) -> None:
    if arr.dtype.kind != "f":
        raise UploadError(key, f"must be a float array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3, 4):
        raise UploadError(
            key, f"must have shape (N, D), (N, T, D) or (N, C, H, W), got {arr.shape}"
        )
    if arr.shape[0] != n:
        raise UploadError(key, f"has {arr.shape[0]} samples but y has {n}")
    if min(arr.shape[1:]) < 1:
        raise UploadError(key, f"has an empty feature dimension: shape {arr.shape}")
    row_size = int(np.prod(arr.shape[1:]))
    step = max((1 << 20) // row_size, 1)  # ~1M values at a time: bounded memory
    if isinstance(arr, StreamedArray):
        chunks: Iterator[tuple[int, np.ndarray]] = arr.row_chunks(step)
    else:
        chunks = ((i, arr[i : i + step].reshape(-1, row_size)) for i in range(0, n, step))
    for start, rows in chunks:
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            first = start + int(np.argmin(finite))
            raise UploadError(key, f"contains NaN or infinite values (first at sample {first})")


def _check_split(split: np.ndarray, n: int) -> dict[str, int]:
    if split.ndim != 1 or split.shape[0] != n:
        raise UploadError("split", f"must have shape ({n},) like y, got {split.shape}")
    if split.dtype.kind not in "iu":
        raise UploadError("split", f"must be an integer array, got dtype {split.dtype}")
    values = set(np.unique(split).tolist())
    if not values <= {0, 1, 2}:
        raise UploadError(
            "split",
            f"values must be 0 (train), 1 (val) or 2 (test), found {sorted(values - {0, 1, 2})}",
        )
    counts = np.bincount(split.astype(np.int64), minlength=3)
    for sid, name in enumerate(SPLITS):
        if counts[sid] == 0:
            raise UploadError("split", f"the {name} split ({sid}) is empty")
    return {name: int(counts[sid]) for sid, name in enumerate(SPLITS)}


def _auto_split_sizes(y: np.ndarray) -> dict[str, int]:
    """Sizes of the seeded stratified 70/15/15 split synib_core draws when `split` is absent."""
    sizes = np.zeros(3, dtype=np.int64)
    for count in np.unique(y, return_counts=True)[1]:
        n_val = int(np.floor(0.15 * count + 0.5))
        n_test = int(np.floor(0.15 * count + 0.5))
        sizes += (count - n_val - n_test, n_val, n_test)
    for sid in (1, 2):
        if sizes[sid] == 0:
            raise UploadError(
                "split",
                f"not given, and {y.shape[0]} samples are too few for the automatic stratified "
                f"70/15/15 split (the {SPLITS[sid]} split would be empty); add a `split` array",
            )
    return {name: int(sizes[sid]) for sid, name in enumerate(SPLITS)}


def _check_group(group: np.ndarray, n: int) -> dict[str, int]:
    if group.ndim != 1 or group.shape[0] != n:
        raise UploadError("group", f"must have shape ({n},) like y, got {group.shape}")
    if group.dtype.kind not in "iuUS":
        raise UploadError("group", f"must hold strings or integers, got dtype {group.dtype}")
    if group.dtype.kind == "S":
        group = np.char.decode(group, "ascii", errors="replace")
    names, counts = np.unique(group.astype(str), return_counts=True)
    return {str(g): int(c) for g, c in zip(names, counts, strict=True)}


def _owner(key: str, modalities: list[str]) -> str:
    m = key.split("_", 1)[1]
    if m not in modalities:
        raise UploadError(key, f"names no modality; modalities are {', '.join(modalities)}")
    return f"x_{m}"


def _check_oracle(key: str, idx: np.ndarray, x: ArrayLike) -> None:
    size = int(np.prod(x.shape[1:]))
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise UploadError(key, f"must be a 1-d integer array, got {idx.dtype} {idx.shape}")
    if idx.size == 0:
        raise UploadError(key, "is empty")
    if int(idx.min()) < 0 or int(idx.max()) >= size:
        raise UploadError(key, f"indices must be in 0..{size - 1} (flattened features)")


def _check_lengths(key: str, lengths: np.ndarray, x: ArrayLike) -> None:
    if x.ndim != 3:
        raise UploadError(key, f"only sequence modalities (N, T, D) take lengths, got {x.shape}")
    if lengths.ndim != 1 or lengths.shape[0] != x.shape[0] or lengths.dtype.kind not in "iu":
        raise UploadError(key, f"must be an integer array of shape ({x.shape[0]},)")
    if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
        raise UploadError(key, f"lengths must be in 1..{x.shape[1]}")

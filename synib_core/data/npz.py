"""Reading and writing dataset ``.npz`` files. Reading goes through ``synib_spec.npz_reader``
and ``synib_spec.datasets`` (the one reader and the contract the API's upload validation uses
too): headers checked in exact integers before any data is read, never unpickles, and stored
uncompressed modality arrays are memory-mapped."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from synib_core.data.dataset import MultimodalData
from synib_spec.datasets import check_arrays, open_archive, read_archive


def fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_npz(
    path: str | os.PathLike[str], *, split_seed: int = 0, mmap: bool = True
) -> MultimodalData:
    """Load and validate a dataset file (``synib_spec.datasets``: the contract).

    Never unpickles. Uncompressed float32 modality arrays are memory-mapped read-only when
    ``mmap`` is true. Raises ``DatasetError(field, reason)`` (a ValueError).

    Example:
        >>> data = load_npz("xor.npz")            # doctest: +SKIP
        >>> data.x["a"].shape, data.num_classes   # ((30600, 64), 2)
    """
    with open_archive(os.fspath(path)) as archive:
        checked = check_arrays(read_archive(archive), split_seed=split_seed)
        x = {m: _as_float32(checked.load_x(m, mmap)) for m in checked.modalities}
        y = checked.load_y()
        split = checked.load_split(y)
        group, oracle, lengths = checked.load_group(), checked.load_oracle(), checked.load_lengths()
    return MultimodalData(
        x=x,
        y=y,
        split=split,
        group=group,
        oracle=oracle,
        lengths=lengths,
        num_classes=checked.num_classes,
        fingerprint=fingerprint(path),
    )


def read_arrays(path: str | os.PathLike[str], *, mmap: bool = True) -> dict[str, np.ndarray]:
    """key -> array of an .npz file, in archive order (checked headers, no contract checks)."""
    with open_archive(os.fspath(path)) as archive:
        return {k: member.load(mmap) for k, member in read_archive(archive).items()}


def _as_float32(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "U":  # raw text stays strings (the rawdata branch replaces this)
        return np.asarray(arr)
    return arr if arr.dtype == np.float32 else arr.astype(np.float32)


def save_npz(data: MultimodalData, path: str | os.PathLike[str]) -> str:
    """Write `data` as an uncompressed .npz (memory-mappable) and return the file's sha256.

    Keys: y, x_<m>, split, and when present group, oracle_<m>, len_<m>.
    """
    arrays: dict[str, np.ndarray] = {"y": np.asarray(data.y, dtype=np.int64)}
    for m, arr in data.x.items():
        arrays[f"x_{m}"] = np.ascontiguousarray(arr, dtype=np.float32)
    arrays["split"] = np.asarray(data.split, dtype=np.int8)
    if data.group is not None:
        arrays["group"] = np.asarray(data.group).astype(str)
    for m, idx in data.oracle.items():
        arrays[f"oracle_{m}"] = np.asarray(idx, dtype=np.int64)
    for m, lengths in data.lengths.items():
        arrays[f"len_{m}"] = np.asarray(lengths, dtype=np.int64)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, target)
    return fingerprint(target)

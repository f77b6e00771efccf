"""Reading and writing dataset ``.npz`` files through ``synib_spec.datasets`` (the one reader
and the contract the API's upload validation uses too): never unpickles, and stored float32
modality arrays are memory-mapped."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from synib_core.data.dataset import DatasetError, MultimodalData
from synib_spec.datasets import StreamedArray, check_arrays, open_archive, read_archive

NOT_AN_ARCHIVE = "not a readable .npz archive: not a zip file, or truncated or corrupt"


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
        x = {m: _as_float32(_materialise(arr, mmap)) for m, arr in checked.x.items()}
    return MultimodalData(
        x=x,
        y=checked.y,
        split=checked.split,
        group=checked.group,
        oracle=checked.oracle,
        lengths=checked.lengths,
        num_classes=checked.num_classes,
        fingerprint=fingerprint(path),
    )


def read_arrays(path: str | os.PathLike[str], *, mmap: bool = True) -> dict[str, np.ndarray]:
    """key -> array of an .npz file, in archive order (checked headers, no contract checks)."""
    with open_archive(os.fspath(path)) as archive:
        return {k: _materialise(a, mmap) for k, a in read_archive(archive).items()}


def _materialise(arr: np.ndarray | StreamedArray, mmap: bool) -> np.ndarray:
    if not isinstance(arr, StreamedArray):
        return arr
    try:
        return arr.load() if mmap else np.array(arr.load())
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(arr.key, f"could not be read: truncated or corrupt ({exc})") from exc


def _as_float32(arr: np.ndarray) -> np.ndarray:
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

"""Validate an uploaded dataset `.npz` with numpy only, safely (never unpickles, bounded memory).

The same contract as `synib_core.data.load_npz` (ARCHITECTURE.md "Dataset file"), re-implemented
here because the API must not import synib_core; tests/core/test_validation_parity.py checks that
both accept and reject the same files and name the same field. Keep the check order and field
names identical to synib_core/data/contract.py.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

MODALITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
PREFIXES = ("x_", "oracle_", "len_")
FIXED_KEYS = ("y", "split", "group")
MAX_CLASSES = 100_000
ALLOWED_NAMES = "y, x_<modality>, split, group, oracle_<modality>, len_<modality>"
SPLITS = ("train", "val", "test")

NOT_AN_ARCHIVE = "not a readable .npz archive: not a zip file, or truncated or corrupt"


class UploadError(ValueError):
    """An uploaded dataset is invalid; `field` names the array (or "file"), `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"dataset field {field!r}: {reason}")


@dataclass(frozen=True)
class UploadLimits:
    """Zip-bomb guards, checked on the zip directory before anything is decompressed."""

    max_member_bytes: int = 2 << 30  # declared uncompressed size of one array
    max_total_bytes: int = 4 << 30  # all arrays together
    max_ratio: float = 200.0  # uncompressed / compressed, for members above ratio_min_bytes
    ratio_min_bytes: int = 16 << 20
    max_members: int = 1000


def validate_npz(
    source: str | os.PathLike[str] | IO[bytes], *, limits: UploadLimits | None = None
) -> dict[str, Any]:
    """Check an uploaded .npz and summarise it; raise `UploadError(field, reason)` if invalid.

    Returns {num_samples, modalities: [{name, shape}] (full array shapes), num_classes,
    split_sizes {train, val, test}, class_counts {"0": n, ...}, group_counts {name: n},
    has_oracle}. Example: ``validate_npz("data.npz")["num_classes"] == 2``.
    """
    arrays = read_archive(source, limits or UploadLimits())
    return check_arrays(arrays)


def read_archive(
    source: str | os.PathLike[str] | IO[bytes], limits: UploadLimits
) -> dict[str, np.ndarray]:
    """key -> array, in archive order, after checking the zip directory and each .npy header."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UploadError("file", NOT_AN_ARCHIVE) from exc
    with archive:
        infos = archive.infolist()
        _check_directory(infos, limits)
        return {info.filename[:-4]: _read_member(archive, info) for info in infos}


def _check_directory(infos: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    if len(infos) > limits.max_members:
        raise UploadError("file", f"has {len(infos)} members, more than {limits.max_members}")
    names = [info.filename for info in infos]
    for name in names:
        if not name.endswith(".npy") or names.count(name) > 1:
            raise UploadError("file", f"archive member {name!r} is not a distinct .npy array")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise UploadError(
            "file", f"declares {total} uncompressed bytes, over the limit {limits.max_total_bytes}"
        )
    for info in infos:
        key = info.filename[:-4]
        if info.file_size > limits.max_member_bytes:
            raise UploadError(
                key,
                f"declares {info.file_size} uncompressed bytes, over the limit {limits.max_member_bytes}",
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
            raise UploadError(key, f"compression ratio {ratio:.0f}:1 is implausible (zip bomb?)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    key = info.filename[:-4]
    try:
        with archive.open(info) as fh:  # header only: decide before allocating anything
            _check_header(key, fh, info.file_size)
        with archive.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except UploadError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UploadError(key, f"could not be read: truncated or corrupt ({exc})") from exc


def _check_header(key: str, fh: IO[bytes], stored_bytes: int) -> None:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise UploadError(key, f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise UploadError(key, "object arrays (pickled data) are not allowed")
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if declared > stored_bytes:  # a forged header must not make us allocate more than stored
        raise UploadError(key, "could not be read: the header declares more data than stored")


def check_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The contract checks on read arrays (same order as synib_core); returns the summary."""
    modalities = _check_keys(arrays)
    y = _check_labels(arrays["y"])
    n = int(y.shape[0])
    for m in modalities:
        _check_modality(f"x_{m}", arrays[f"x_{m}"], n)
    split_sizes = _check_split(arrays["split"], n) if "split" in arrays else _auto_split_sizes(y)
    group_counts = _check_group(arrays["group"], n) if "group" in arrays else {}
    for key, arr in arrays.items():
        if key.startswith("oracle_"):
            _check_oracle(key, arr, arrays[_owner(key, modalities)])
        elif key.startswith("len_"):
            _check_lengths(key, arr, arrays[_owner(key, modalities)])
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


def _check_keys(arrays: Mapping[str, np.ndarray]) -> list[str]:
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


def _check_modality(key: str, arr: np.ndarray, n: int) -> None:
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
    step = max((1 << 22) // row_size, 1)  # bounded temporary memory on large uploads
    for start in range(0, n, step):
        finite = np.isfinite(arr[start : start + step]).reshape(-1, row_size).all(axis=1)
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


def _check_oracle(key: str, idx: np.ndarray, x: np.ndarray) -> None:
    size = int(np.prod(x.shape[1:]))
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise UploadError(key, f"must be a 1-d integer array, got {idx.dtype} {idx.shape}")
    if idx.size == 0:
        raise UploadError(key, "is empty")
    if int(idx.min()) < 0 or int(idx.max()) >= size:
        raise UploadError(key, f"indices must be in 0..{size - 1} (flattened features)")


def _check_lengths(key: str, lengths: np.ndarray, x: np.ndarray) -> None:
    if x.ndim != 3:
        raise UploadError(key, f"only sequence modalities (N, T, D) take lengths, got {x.shape}")
    if lengths.ndim != 1 or lengths.shape[0] != x.shape[0] or lengths.dtype.kind not in "iu":
        raise UploadError(key, f"must be an integer array of shape ({x.shape[0]},)")
    if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
        raise UploadError(key, f"lengths must be in 1..{x.shape[1]}")

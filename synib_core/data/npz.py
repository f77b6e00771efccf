"""Reading and writing dataset ``.npz`` files. Reading goes through ``synib_spec.npz_reader``
and ``synib_spec.datasets`` (the one reader and the contract the API's upload validation uses
too): headers checked in exact integers before any data is read, never unpickles, and stored
uncompressed modality arrays are memory-mapped.

Raw kinds (``synib_spec.modality_kinds``): text stays a (N,) ``<U`` string array, audio a
(N, T) float32 waveform with its rate in ``MultimodalData.rates``, and uint8 images become
float32 (N, C, H, W) in [0, 1] (channels-last files are transposed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from synib_core.data.dataset import MultimodalData
from synib_spec.datasets import CheckedArrays, check_arrays, open_archive, read_archive
from synib_spec.modality_kinds import image_channels_last

IMAGE_BLOCK = 1024  # uint8 images are converted this many samples at a time (bounded memory)


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

    Never unpickles. Uncompressed float32 modality arrays (and text) are memory-mapped
    read-only when ``mmap`` is true. Text: (N,) ``<U`` strings; audio: (N, T) float32 with
    ``rates[m]``; uint8 images: float32 (N, C, H, W) / 255. Raises ``DatasetError(field,
    reason)`` (a ValueError).

    Example:
        >>> data = load_npz("xor.npz")            # doctest: +SKIP
        >>> data.x["a"].shape, data.num_classes   # ((30600, 64), 2)
    """
    with open_archive(os.fspath(path)) as archive:
        checked = check_arrays(read_archive(archive), split_seed=split_seed)
        x = {m: _load_modality(checked, m, mmap) for m in checked.modalities}
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
        rates=dict(checked.rates),
    )


def read_arrays(path: str | os.PathLike[str], *, mmap: bool = True) -> dict[str, np.ndarray]:
    """key -> array of an .npz file, in archive order (checked headers, no contract checks)."""
    with open_archive(os.fspath(path)) as archive:
        return {k: member.load(mmap) for k, member in read_archive(archive).items()}


def _as_float32(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype == np.float32 else arr.astype(np.float32)


def _load_modality(checked: CheckedArrays, m: str, mmap: bool) -> np.ndarray:
    arr = checked.load_x(m, mmap)
    if checked.kinds[m] == "text":
        return arr
    if arr.dtype == np.uint8:
        return uint8_images(arr)
    return _as_float32(arr)


def uint8_images(arr: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) or (N, C, H, W) (``image_channels_last`` decides) -> float32
    (N, C, H, W) in [0, 1], converted ``IMAGE_BLOCK`` samples at a time."""
    channels_last = image_channels_last(arr.shape)
    n = arr.shape[0]
    shape = (n, arr.shape[3], arr.shape[1], arr.shape[2]) if channels_last else arr.shape
    out = np.empty(shape, dtype=np.float32)
    for start in range(0, n, IMAGE_BLOCK):
        block = np.asarray(arr[start : start + IMAGE_BLOCK], dtype=np.float32)
        if channels_last:
            block = block.transpose(0, 3, 1, 2)
        np.multiply(block, 1.0 / 255.0, out=out[start : start + IMAGE_BLOCK])
    return out


def save_npz(data: MultimodalData, path: str | os.PathLike[str]) -> str:
    """Write `data` as an uncompressed .npz (memory-mappable) and return the file's sha256.

    Keys: y, x_<m>, split, and when present group, oracle_<m>, len_<m>, rate_<m>. Text is
    written as ``<U`` strings, every other modality as float32.
    """
    arrays: dict[str, np.ndarray] = {"y": np.asarray(data.y, dtype=np.int64)}
    for m, arr in data.x.items():
        text = np.asarray(arr).dtype.kind == "U"
        arrays[f"x_{m}"] = np.ascontiguousarray(arr, dtype=None if text else np.float32)
    for m, rate in data.rates.items():
        if m in data.x:  # a rate of a dropped modality (single_modality keeps them) says nothing
            arrays[f"rate_{m}"] = np.asarray(rate, dtype=np.int64)
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

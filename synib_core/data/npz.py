"""Reading and writing dataset `.npz` files (never unpickling; memory-mapping stored members)."""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from synib_core.data.contract import check_arrays
from synib_core.data.dataset import DatasetError, MultimodalData

NOT_AN_ARCHIVE = "not a readable .npz archive: not a zip file, or truncated or corrupt"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header, 30 bytes


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
    """Load and validate a dataset file (ARCHITECTURE.md "Dataset file").

    Never unpickles (allow_pickle=False). Uncompressed float32 members are memory-mapped
    read-only when `mmap` is true. Raises `DatasetError(field, reason)` (a ValueError).

    Example:
        >>> data = load_npz("xor.npz")            # doctest: +SKIP
        >>> data.x["a"].shape, data.num_classes   # ((30600, 64), 2)
    """
    arrays = read_arrays(path, mmap=mmap)
    checked = check_arrays(arrays, split_seed=split_seed)
    return MultimodalData(
        x={m: _as_float32(arr) for m, arr in checked.x.items()},
        y=checked.y,
        split=checked.split,
        group=checked.group,
        oracle=checked.oracle,
        lengths=checked.lengths,
        num_classes=checked.num_classes,
        fingerprint=fingerprint(path),
    )


def read_arrays(path: str | os.PathLike[str], *, mmap: bool = True) -> dict[str, np.ndarray]:
    """key -> array of an .npz file, in archive order; DatasetError("file"|key, ...) if unreadable."""
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DatasetError("file", f"not found: {path}") from exc
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError("file", NOT_AN_ARCHIVE) from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError("file", "is a single .npy array, expected an .npz archive")
    with npz:
        archive = npz.zip
        if archive is None:
            raise DatasetError("file", "not a readable .npz archive")
        arrays: dict[str, np.ndarray] = {}
        for name in archive.namelist():
            key = name.removesuffix(".npy")
            if not name.endswith(".npy") or key in arrays:
                raise DatasetError("file", f"archive member {name!r} is not a distinct .npy array")
            mapped = _memmap_member(path, archive.getinfo(name)) if mmap else None
            arrays[key] = mapped if mapped is not None else _read_member(npz, key)
    return arrays


def _read_member(npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DatasetError(key, "object arrays (pickled data) are not allowed") from exc
        raise DatasetError(key, f"could not be read ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(key, f"could not be read: truncated or corrupt ({exc})") from exc


def _memmap_member(path: str | os.PathLike[str], info: zipfile.ZipInfo) -> np.ndarray | None:
    """A read-only memmap of an uncompressed float32 member, or None to read it normally."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            header = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
            if header[0] != b"PK\x03\x04":
                return None
            fh.seek(header[-2] + header[-1], os.SEEK_CUR)  # file name + extra field
            version = np.lib.format.read_magic(fh)
            if version != (1, 0) and version != (2, 0):
                return None
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
    except (OSError, ValueError, struct.error):
        return None
    if dtype != np.dtype(np.float32) or len(shape) < 2 or 0 in shape:
        return None
    order: Literal["C", "F"] = "F" if fortran else "C"
    try:
        return np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=shape, order=order)
    except (OSError, ValueError):  # e.g. a truncated member: let the normal read report it
        return None


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

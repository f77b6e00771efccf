"""Read an uploaded `.npz` safely: the zip directory's bomb guards, each `.npy` header before
any data, no pickles; modality arrays are streamed (`StreamedArray`), not held whole."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

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


def read_archive(archive: zipfile.ZipFile, limits: UploadLimits) -> dict[str, ArrayLike]:
    """key -> array (a ``StreamedArray`` for C-ordered modality arrays), in archive order,
    after checking the zip directory and each .npy header."""
    infos = archive.infolist()
    _check_directory(infos, limits)
    return {info.filename[:-4]: _read_member(archive, info) for info in infos}


@dataclass(frozen=True)
class StreamedArray:
    """A modality array known by its .npy header; ``row_chunks`` reads its values from the
    archive, ``rows`` samples at a time, without keeping them."""

    key: str
    archive: zipfile.ZipFile
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def row_chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first sample, values of up to ``rows`` samples, shape (k, row size)) in order; a
        short or corrupt member raises ``UploadError``."""
        n = self.shape[0]
        row_size = int(np.prod(self.shape[1:], dtype=np.int64))
        try:
            with self.archive.open(self.info) as fh:
                _read_header(self.key, fh)
                for start in range(0, n, rows):
                    count = min(rows, n - start) * row_size
                    data = fh.read(count * self.dtype.itemsize)
                    if len(data) != count * self.dtype.itemsize:
                        raise UploadError(self.key, "could not be read: truncated or corrupt")
                    yield start, np.frombuffer(data, dtype=self.dtype).reshape(-1, row_size)
        except UploadError:
            raise  # already names the field and the reason (it is a ValueError too)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise UploadError(self.key, f"could not be read: truncated or corrupt ({exc})") from exc


ArrayLike = np.ndarray | StreamedArray


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


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> ArrayLike:
    key = info.filename[:-4]
    try:
        with archive.open(info) as fh:  # header only: decide before allocating anything
            shape, fortran_order, dtype = _read_header(key, fh)
        declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if declared > info.file_size:  # a forged header must not make us allocate more
            raise UploadError(key, "could not be read: the header declares more data than stored")
        if key.startswith("x_") and not fortran_order and len(shape) >= 1:
            return StreamedArray(key, archive, info, tuple(shape), dtype)
        with archive.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except UploadError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UploadError(key, f"could not be read: truncated or corrupt ({exc})") from exc


def _read_header(key: str, fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran order, dtype) of a .npy stream, left at the start of its data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise UploadError(key, f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise UploadError(key, "object arrays (pickled data) are not allowed")
    return shape, fortran_order, dtype

"""The one reader of dataset ``.npz`` files (numpy only, never unpickles): the API's upload
validation and the library's ``load_npz`` both read through it.

``read_archive`` checks the zip directory (bomb guards) and every member's ``.npy`` header
before any data is read: the version, the dtype (no objects), the shape in exact Python
integers, and that the header's shape times the item size is exactly the data the member holds.
Each array comes back as an ``NpyMember``: ``chunks`` reads its values a few MB at a time (what
validation uses, whatever the file's size); ``load`` gives the whole array (what training uses).

Example:
    >>> with open_archive("data.npz") as archive:                          # doctest: +SKIP
    ...     y = read_archive(archive)["y"]
    ...     y.shape, sum(int(c.max()) for _, c in y.chunks())
"""

from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

import numpy as np

from synib_spec.errors import SpecError

__all__ = [
    "CHUNK_BYTES",
    "NOT_AN_ARCHIVE",
    "DatasetError",
    "Limits",
    "NpyMember",
    "open_archive",
    "read_archive",
]

NOT_AN_ARCHIVE = "not a readable .npz archive: not a zip file, or truncated or corrupt"
# Read at most this many bytes, and this many values, at a time: memory stays bounded whatever
# the file's size (a chunk cast to int64 or float64 is at most 4 MiB too).
CHUNK_BYTES = 4 << 20
CHUNK_VALUES = 1 << 19
COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
CORRUPT = "could not be read: truncated or corrupt"


class DatasetError(SpecError):
    """A dataset file (or a built-in generator's parameter) is invalid: ``field`` names the
    array (or ``file``, or the parameter). Prints as ``dataset field 'y': <reason>``."""

    label = "dataset field"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.args = (f"{self.label} {field!r}: {reason}",)


@dataclass(frozen=True)
class Limits:
    """Guards checked on the zip directory and the headers before anything is decompressed
    (``max_text_chars``: on the values of a text modality, streamed)."""

    max_member_bytes: int = 2 << 30  # declared uncompressed size of one array
    max_total_bytes: int = 4 << 30  # all arrays together
    max_ratio: float = 200.0  # uncompressed / compressed, for members above ratio_min_bytes
    ratio_min_bytes: int = 16 << 20
    max_members: int = 1000
    max_text_chars: int = 100_000  # characters of one string of a text modality


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip local file header, 30 bytes
# What reading a damaged member raises: zipfile's errors, zlib's on a corrupt deflate stream,
# and tokenize's from numpy's parsing of a mangled header.
_READ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    NotImplementedError,  # zipfile: a feature or version it cannot read
    zipfile.BadZipFile,
    zlib.error,
    tokenize.TokenError,
)


class _Header(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    length: int  # bytes of the member before its data: magic, version and header


def _read_header(key: str, fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran order, dtype) of a .npy stream, left at the start of its data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise DatasetError(key, f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise DatasetError(
            key,
            "object arrays (pickled data) are not allowed; save strings as a fixed-width "
            "unicode array: np.array(texts, dtype=str)",
        )
    if dtype.itemsize == 0:
        raise DatasetError(key, f"dtype {dtype} has zero-size elements")
    return tuple(shape), bool(fortran_order), dtype


@dataclass(frozen=True)
class NpyMember:
    """One array of an archive, known by its checked header; its values stay in the archive
    until ``chunks`` or ``load`` reads them (the archive must still be open)."""

    key: str
    archive: zipfile.ZipFile
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def row_size(self) -> int:
        """Values per sample (first axis)."""
        return math.prod(self.shape[1:])

    def sample_of(self, index: int) -> int:
        """The sample (first-axis index) of the ``index``-th value in storage order."""
        if self.fortran_order:
            return index % self.shape[0]
        return index // max(self.row_size, 1)

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
        """(index of the first value, 1-d values) in storage order, ``chunk_bytes`` at a time;
        a short or corrupt member (its CRC is checked at the end) raises DatasetError."""
        per_chunk = max(min(chunk_bytes // self.dtype.itemsize, CHUNK_VALUES), 1)
        try:
            with self.archive.open(self.info) as fh:
                _read_header(self.key, fh)
                for start in range(0, self.size, per_chunk):
                    want = min(per_chunk, self.size - start) * self.dtype.itemsize
                    data = fh.read(want)
                    if len(data) != want:
                        raise DatasetError(self.key, CORRUPT)
                    yield start, np.frombuffer(data, dtype=self.dtype)
                if fh.read(1):  # also makes zipfile check the CRC of what it read
                    raise DatasetError(self.key, CORRUPT)
        except DatasetError:
            raise
        except _READ_ERRORS as exc:
            raise DatasetError(self.key, f"{CORRUPT} ({exc})") from exc

    def load(self, mmap: bool = False) -> np.ndarray:
        """The whole array: a read-only memory map when ``mmap`` and the member is stored
        uncompressed, C-ordered and non-empty; else read chunk by chunk into memory."""
        mapped = self._memmap() if mmap else None
        if mapped is not None:
            return mapped
        flat = np.empty(self.size, dtype=self.dtype)
        for start, values in self.chunks():
            flat[start : start + values.size] = values
        return flat.reshape(self.shape, order="F" if self.fortran_order else "C")

    def _memmap(self) -> np.ndarray | None:
        info, path = self.info, self.archive.filename
        if info.compress_type != zipfile.ZIP_STORED or path is None:
            return None
        if self.fortran_order or self.size == 0:
            return None
        try:
            with open(path, "rb") as fh:
                fh.seek(info.header_offset)
                header = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
                if header[0] != b"PK\x03\x04":
                    return None
                fh.seek(header[-2] + header[-1], 1)  # file name + extra field
                _read_header(self.key, fh)
                offset = fh.tell()
            return np.memmap(path, dtype=self.dtype, mode="r", offset=offset, shape=self.shape)
        except (*_READ_ERRORS, struct.error):
            return None


def _check_directory(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_members:
        raise DatasetError("file", f"has {len(infos)} members, more than {limits.max_members}")
    names = [info.filename for info in infos]
    for name in names:
        if not name.endswith(".npy") or names.count(name) > 1:
            raise DatasetError("file", f"archive member {name!r} is not a distinct .npy array")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise DatasetError(
            "file", f"declares {total} uncompressed bytes, over the limit {limits.max_total_bytes}"
        )
    for info in infos:
        _check_entry(info, limits)


def _check_entry(info: zipfile.ZipInfo, limits: Limits) -> None:
    key = info.filename[:-4]
    if info.flag_bits & 0x1:
        raise DatasetError(key, "is encrypted")
    if info.compress_type not in COMPRESSIONS:
        raise DatasetError(
            key,
            f"uses zip compression method {info.compress_type}; only stored or deflated "
            "(what np.savez and np.savez_compressed write)",
        )
    if info.file_size > limits.max_member_bytes:
        raise DatasetError(
            key, f"declares {info.file_size} uncompressed bytes, over the limit "
            f"{limits.max_member_bytes}"
        )  # fmt: skip
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise DatasetError(key, f"compression ratio {ratio:.0f}:1 is implausible (zip bomb?)")


def _check_shape(key: str, info: zipfile.ZipInfo, header: _Header, limits: Limits) -> None:
    """Every dimension a non-negative integer, at most ``max_member_bytes``, and the header's
    shape times the item size exactly the data the member holds after its header. Python
    integers: a forged shape neither overflows nor wraps around (numpy counts in int64)."""
    shape, dtype = header.shape, header.dtype
    if any(dim < 0 for dim in shape):
        raise DatasetError(key, f"shape {shape} has a negative dimension")
    data_bytes = math.prod(shape) * dtype.itemsize
    held = info.file_size - header.length
    if data_bytes != held:
        raise DatasetError(
            key,
            f"{CORRUPT}: its header declares shape {shape} of {dtype} ({data_bytes} bytes) but "
            f"the archive member holds {held} bytes of data",
        )
    if max(shape, default=0) > limits.max_member_bytes:  # an empty array with a huge axis
        raise DatasetError(key, f"shape {shape} has a dimension above {limits.max_member_bytes}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> NpyMember:
    key = info.filename[:-4]
    try:
        with archive.open(info) as fh:  # the header only: decide before reading any data
            shape, fortran_order, dtype = _read_header(key, fh)
            header = _Header(shape, dtype, fh.tell())
    except DatasetError:
        raise
    except _READ_ERRORS as exc:
        raise DatasetError(key, f"{CORRUPT} ({exc})") from exc
    _check_shape(key, info, header, limits)
    return NpyMember(key, archive, info, shape, dtype, fortran_order)


def read_archive(archive: zipfile.ZipFile, limits: Limits | None = None) -> dict[str, NpyMember]:
    """key -> array in archive order, after checking the zip directory and every header (no
    data is read yet). The archive must stay open while the arrays are read."""
    limits = limits or Limits()
    infos = archive.infolist()
    _check_directory(infos, limits)
    return {info.filename[:-4]: _read_member(archive, info, limits) for info in infos}


def open_archive(source: str | os.PathLike[str] | IO[bytes]) -> zipfile.ZipFile:
    """The zip archive of a dataset file; DatasetError("file", ...) when it is none."""
    try:
        return zipfile.ZipFile(source)
    except FileNotFoundError as exc:
        raise DatasetError("file", f"not found: {source}") from exc
    except _READ_ERRORS as exc:
        raise DatasetError("file", NOT_AN_ARCHIVE) from exc

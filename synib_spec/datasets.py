"""The dataset file contract, and the one reader of dataset files (numpy only, never unpickles).

A dataset is one ``.npz``: ``y`` (N,) integer class ids 0..K-1; one array per modality
``x_<m>``: float (N, D) vectors, (N, T, D) sequences or (N, C, H, W) images, at least two;
optional ``split`` (N,) 0 train / 1 validation / 2 test (default: a seeded, stratified
70/15/15 split); optional ``group`` (N,) strings or ints, a ground-truth interaction label per
sample; optional ``oracle_<m>`` (k,) coordinates that carry modality m's synergistic signal;
optional ``len_<m>`` (N,) valid steps of a sequence modality.

``read_archive`` checks the zip directory (bomb guards) and each ``.npy`` header before any
data is read, with exact integer arithmetic for shapes; modality arrays come back as
``StreamedArray`` (values read a chunk at a time, or memory-mapped when stored uncompressed).
``check_arrays`` applies the contract and returns a ``CheckedArrays``. The API validates an
upload with both and stores ``summary()``; the library's ``load_npz`` reads files the same way.

Example:
    >>> with zipfile.ZipFile("data.npz") as archive:                      # doctest: +SKIP
    ...     checked = check_arrays(read_archive(archive))
    >>> checked.summary()["num_classes"]
"""

from __future__ import annotations

import math
import re
import struct
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from synib_spec.errors import SpecError

__all__ = [
    "NOT_AN_ARCHIVE",
    "ArrayLike",
    "CheckedArrays",
    "DatasetError",
    "GeneratorParamError",
    "Limits",
    "StreamedArray",
    "check_arrays",
    "read_archive",
    "stratified_split",
    "validate_npz",
]

NOT_AN_ARCHIVE = "not a readable .npz archive: not a zip file, or truncated or corrupt"
MODALITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
PREFIXES = ("x_", "oracle_", "len_")
FIXED_KEYS = ("y", "split", "group")
MAX_CLASSES = 100_000
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
ALLOWED_NAMES = "y, x_<modality>, split, group, oracle_<modality>, len_<modality>"
CHUNK_VALUES = 1 << 20  # values checked at a time: bounded memory whatever the file's size


class DatasetError(SpecError):
    """A dataset file (or a built-in generator's parameter) is invalid: ``field`` names the
    array (or ``file``, or the parameter). Prints as ``dataset field 'y': <reason>``."""

    label = "dataset field"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.args = (f"{self.label} {field!r}: {reason}",)


class GeneratorParamError(DatasetError):
    """A built-in generator's parameter (or seed) is invalid; ``field`` names the parameter."""

    label = "generator parameter"


@dataclass(frozen=True)
class Limits:
    """Guards checked on the zip directory and the headers before anything is decompressed."""

    max_member_bytes: int = 2 << 30  # declared uncompressed size of one array
    max_total_bytes: int = 4 << 30  # all arrays together
    max_ratio: float = 200.0  # uncompressed / compressed, for members above ratio_min_bytes
    ratio_min_bytes: int = 16 << 20
    max_members: int = 1000


# --- reading ----------------------------------------------------------------------------------

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip local file header, 30 bytes


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
        raise DatasetError(key, "object arrays (pickled data) are not allowed")
    return tuple(int(d) for d in shape), bool(fortran_order), dtype


@dataclass(frozen=True)
class StreamedArray:
    """A modality array known by its ``.npy`` header: ``row_chunks`` reads its values from the
    archive a few samples at a time; ``load`` gives the whole array (a read-only memory map
    when the member is stored uncompressed as C-ordered float32, else read into memory)."""

    key: str
    archive: zipfile.ZipFile
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def row_size(self) -> int:
        return math.prod(self.shape[1:])

    def row_chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first sample, values of up to ``rows`` samples as (k, row_size)) in order; a short
        or corrupt member raises DatasetError."""
        n, row_size, itemsize = self.shape[0], self.row_size, self.dtype.itemsize
        try:
            with self.archive.open(self.info) as fh:
                _read_header(self.key, fh)
                for start in range(0, n, rows):
                    count = min(rows, n - start) * row_size
                    data = fh.read(count * itemsize)
                    if len(data) != count * itemsize:
                        raise DatasetError(self.key, "could not be read: truncated or corrupt")
                    yield start, np.frombuffer(data, dtype=self.dtype).reshape(-1, row_size)
        except DatasetError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(
                self.key, f"could not be read: truncated or corrupt ({exc})"
            ) from exc

    def load(self) -> np.ndarray:
        """The whole array (see the class docstring)."""
        mapped = self._memmap()
        if mapped is not None:
            return mapped
        with self.archive.open(self.info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)

    def _memmap(self) -> np.ndarray | None:
        info, path = self.info, self.archive.filename
        stored = info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1
        if not stored or path is None or self.dtype != np.dtype(np.float32) or 0 in self.shape:
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
            return np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=self.shape)
        except (OSError, ValueError, struct.error):
            return None


ArrayLike = np.ndarray | StreamedArray


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
        key = info.filename[:-4]
        if info.file_size > limits.max_member_bytes:
            raise DatasetError(
                key, f"declares {info.file_size} uncompressed bytes, over the limit "
                f"{limits.max_member_bytes}"
            )  # fmt: skip
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
            raise DatasetError(key, f"compression ratio {ratio:.0f}:1 is implausible (zip bomb?)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> ArrayLike:
    key = info.filename[:-4]
    try:
        with archive.open(info) as fh:  # header only: decide before allocating anything
            shape, fortran_order, dtype = _read_header(key, fh)
        # Exact integers: a forged shape whose product overflows int64 must not wrap around.
        declared = math.prod(shape) * dtype.itemsize
        if declared > info.file_size:  # a forged header must not make us allocate more
            raise DatasetError(key, "could not be read: the header declares more data than stored")
        if key.startswith("x_") and not fortran_order and len(shape) >= 1:
            return StreamedArray(key, archive, info, shape, dtype)
        with archive.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(key, f"could not be read: truncated or corrupt ({exc})") from exc


def read_archive(archive: zipfile.ZipFile, limits: Limits | None = None) -> dict[str, ArrayLike]:
    """key -> array in archive order (modality arrays as ``StreamedArray``), after checking the
    zip directory and each header. The archive must stay open while the arrays are used."""
    infos = archive.infolist()
    _check_directory(infos, limits or Limits())
    return {info.filename[:-4]: _read_member(archive, info) for info in infos}


def open_archive(source: str | IO[bytes]) -> zipfile.ZipFile:
    """The zip archive of a dataset file; DatasetError("file", ...) when it is none."""
    try:
        return zipfile.ZipFile(source)
    except FileNotFoundError as exc:
        raise DatasetError("file", f"not found: {source}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DatasetError("file", NOT_AN_ARCHIVE) from exc


# --- the contract -----------------------------------------------------------------------------


@dataclass
class CheckedArrays:
    """A dataset that meets the contract. ``x`` holds the modality arrays as read (streamed or
    in memory); ``split`` is the given split or the automatic one."""

    x: dict[str, ArrayLike]
    y: np.ndarray
    split: np.ndarray
    split_given: bool
    group: np.ndarray | None
    oracle: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    num_classes: int

    def summary(self) -> dict[str, Any]:
        """What the API stores and shows: {num_samples, modalities [{name, shape}], num_classes,
        split_sizes, class_counts, group_counts, has_oracle}."""
        classes, counts = np.unique(self.y, return_counts=True)
        group_counts: dict[str, int] = {}
        if self.group is not None:
            names, sizes = np.unique(self.group, return_counts=True)
            group_counts = {str(g): int(c) for g, c in zip(names, sizes, strict=True)}
        splits = np.bincount(self.split.astype(np.int64), minlength=3)
        return {
            "num_samples": int(self.y.shape[0]),
            "modalities": [{"name": m, "shape": list(a.shape)} for m, a in self.x.items()],
            "num_classes": self.num_classes,
            "split_sizes": {name: int(splits[i]) for i, name in enumerate(SPLITS)},
            "class_counts": {str(c): int(k) for c, k in zip(classes, counts, strict=True)},
            "group_counts": group_counts,
            "has_oracle": bool(self.oracle),
        }


def check_arrays(arrays: Mapping[str, ArrayLike], *, split_seed: int = 0) -> CheckedArrays:
    """Apply the contract to read arrays; DatasetError(field, reason) on the first problem.

    Order of the checks: names, ``y``, each modality (dtype, shape, finite values, streamed),
    ``split`` (or the automatic split), ``group``, ``oracle_*`` and ``len_*``.
    """
    modalities = _check_keys(arrays)
    y = _check_labels(_whole(arrays["y"]))
    n = int(y.shape[0])
    for m in modalities:
        _check_modality(f"x_{m}", arrays[f"x_{m}"], n)
    given = "split" in arrays
    split = _check_split(_whole(arrays["split"]), n) if given else stratified_split(y, split_seed)
    group = _check_group(_whole(arrays["group"]), n) if "group" in arrays else None
    oracle, lengths = {}, {}
    for key, arr in arrays.items():
        if key.startswith("oracle_"):
            m = _owner(key, modalities)
            oracle[m] = _check_oracle(key, _whole(arr), arrays[f"x_{m}"])
        elif key.startswith("len_"):
            m = _owner(key, modalities)
            lengths[m] = _check_lengths(key, _whole(arr), arrays[f"x_{m}"])
    x = {m: arrays[f"x_{m}"] for m in modalities}
    return CheckedArrays(x, y, split, given, group, oracle, lengths, int(y.max()) + 1)


def validate_npz(source: str | IO[bytes], *, limits: Limits | None = None) -> dict[str, Any]:
    """Check a dataset file and return its summary (``CheckedArrays.summary``)."""
    with open_archive(source) as archive:
        return check_arrays(read_archive(archive, limits)).summary()


def _whole(arr: ArrayLike) -> np.ndarray:
    """A per-sample array, read whole (only modality arrays are streamed)."""
    if isinstance(arr, StreamedArray):
        raise DatasetError(arr.key, "must be a per-sample array, not a modality")
    return arr


def _check_keys(arrays: Mapping[str, ArrayLike]) -> list[str]:
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


def _check_modality(key: str, arr: ArrayLike, n: int) -> None:
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
    row_size = math.prod(arr.shape[1:])
    step = max(CHUNK_VALUES // row_size, 1)
    if isinstance(arr, StreamedArray):
        chunks: Iterator[tuple[int, np.ndarray]] = arr.row_chunks(step)
    else:
        chunks = ((i, arr[i : i + step].reshape(-1, row_size)) for i in range(0, n, step))
    for start, rows in chunks:
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            first = start + int(np.argmin(finite))
            raise DatasetError(key, f"contains NaN or infinite values (first at sample {first})")


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
    for sid, name in enumerate(SPLITS):
        if sid not in values:
            raise DatasetError("split", f"the {name} split ({sid}) is empty")
    return split.astype(np.int8)


def auto_split_counts(class_count: int) -> tuple[int, int, int]:
    """(train, val, test) sizes of one class of ``class_count`` samples in the automatic split."""
    n_val = int(np.floor(SPLIT_FRACTIONS[1] * class_count + 0.5))
    n_test = int(np.floor(SPLIT_FRACTIONS[2] * class_count + 0.5))
    return class_count - n_val - n_test, n_val, n_test


def stratified_split(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) int8 seeded stratified 70/15/15 split of labels y (N,); DatasetError if one is empty."""
    rng = np.random.default_rng(seed)
    split = np.zeros(y.shape[0], dtype=np.int8)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train, n_val, _ = auto_split_counts(idx.size)
        split[idx[n_train : n_train + n_val]] = 1
        split[idx[n_train + n_val :]] = 2
    for sid in (1, 2):
        if not (split == sid).any():
            raise DatasetError(
                "split",
                f"not given, and {y.shape[0]} samples are too few for the automatic stratified "
                f"70/15/15 split (the {SPLITS[sid]} split would be empty); add a `split` array",
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


def _check_oracle(key: str, idx: np.ndarray, x: ArrayLike) -> np.ndarray:
    size = math.prod(x.shape[1:])
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise DatasetError(key, f"must be a 1-d integer array, got {idx.dtype} {idx.shape}")
    if idx.size == 0:
        raise DatasetError(key, "is empty")
    if int(idx.min()) < 0 or int(idx.max()) >= size:
        raise DatasetError(key, f"indices must be in 0..{size - 1} (flattened features)")
    return idx.astype(np.int64)


def _check_lengths(key: str, lengths: np.ndarray, x: ArrayLike) -> np.ndarray:
    if x.ndim != 3:
        raise DatasetError(key, f"only sequence modalities (N, T, D) take lengths, got {x.shape}")
    if lengths.ndim != 1 or lengths.shape[0] != x.shape[0] or lengths.dtype.kind not in "iu":
        raise DatasetError(key, f"must be an integer array of shape ({x.shape[0]},)")
    if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
        raise DatasetError(key, f"lengths must be in 1..{x.shape[1]}")
    return lengths.astype(np.int64)

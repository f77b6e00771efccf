"""The dataset file contract: which arrays a dataset ``.npz`` holds and what each must be.

A dataset is one ``.npz``: ``y`` (N,) integer class ids 0..K-1; one array per modality
``x_<m>``: float (N, D) vectors, (N, T, D) sequences or (N, C, H, W) images, at least two;
optional ``split`` (N,) 0 train / 1 validation / 2 test (default: a seeded, stratified
70/15/15 split); optional ``group`` (N,) strings or ints, a ground-truth interaction label per
sample; optional ``oracle_<m>`` (k,) coordinates that carry modality m's synergistic signal;
optional ``len_<m>`` (N,) valid steps of a sequence modality.

``check_arrays`` applies the contract to what ``synib_spec.npz_reader.read_archive`` found:
first every header (names, dtypes, shapes, sample counts), then every value, a few MB at a
time, so memory stays bounded whatever the file's size. It returns ``CheckedArrays``: the
counts the API stores (``summary()``) and loaders of each array (the library's ``load_npz``).

Example:
    >>> with open_archive("data.npz") as archive:                       # doctest: +SKIP
    ...     checked = check_arrays(read_archive(archive))
    >>> checked.summary()["num_classes"]
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from synib_spec.npz_reader import (
    NOT_AN_ARCHIVE,
    DatasetError,
    Limits,
    NpyMember,
    open_archive,
    read_archive,
)

__all__ = [
    "NOT_AN_ARCHIVE",
    "CheckedArrays",
    "DatasetError",
    "GeneratorParamError",
    "Limits",
    "NpyMember",
    "auto_split_counts",
    "check_arrays",
    "open_archive",
    "read_archive",
    "stratified_split",
    "validate_npz",
]

MODALITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
PREFIXES = ("x_", "oracle_", "len_")
FIXED_KEYS = ("y", "split", "group")
MAX_CLASSES = 100_000
MAX_GROUPS = 1000  # distinct `group` values: a few kinds of interaction, not an id per sample
MAX_GROUP_CHARS = 256
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
ALLOWED_NAMES = "y, x_<modality>, split, group, oracle_<modality>, len_<modality>"


class GeneratorParamError(DatasetError):
    """A built-in generator's parameter (or seed) is invalid; ``field`` names the parameter."""

    label = "generator parameter"


@dataclass(frozen=True)
class CheckedArrays:
    """A dataset that meets the contract: its counts and its arrays, still in the archive (the
    ``load_*`` methods read them whole while the archive is open)."""

    members: Mapping[str, NpyMember]
    modalities: tuple[str, ...]
    class_counts: dict[int, int]  # class id -> samples, classes in increasing order
    split_sizes: tuple[int, int, int]  # the given split's or the automatic split's
    group_counts: dict[str, int]
    split_seed: int = 0

    @property
    def num_samples(self) -> int:
        return self.members["y"].shape[0]

    @property
    def num_classes(self) -> int:
        return max(self.class_counts) + 1

    @property
    def split_given(self) -> bool:
        return "split" in self.members

    def summary(self) -> dict[str, Any]:
        """What the API stores and shows: {num_samples, modalities [{name, shape}], num_classes,
        split_sizes, class_counts, group_counts, has_oracle}."""
        return {
            "num_samples": self.num_samples,
            "modalities": [
                {"name": m, "shape": list(self.members[f"x_{m}"].shape)} for m in self.modalities
            ],
            "num_classes": self.num_classes,
            "split_sizes": dict(zip(SPLITS, self.split_sizes, strict=True)),
            "class_counts": {str(c): k for c, k in self.class_counts.items()},
            "group_counts": self.group_counts,
            "has_oracle": any(k.startswith("oracle_") for k in self.members),
        }

    def load_x(self, modality: str, mmap: bool = True) -> np.ndarray:
        """Modality ``modality``'s array as stored (a read-only memory map when it can be)."""
        return self.members[f"x_{modality}"].load(mmap)

    def load_y(self) -> np.ndarray:
        """(N,) int64 labels."""
        return self.members["y"].load().astype(np.int64)

    def load_split(self, y: np.ndarray) -> np.ndarray:
        """(N,) int8: the given split, or the automatic one of labels ``y``."""
        if self.split_given:
            return self.members["split"].load().astype(np.int8)
        return stratified_split(y, self.split_seed)

    def load_group(self) -> np.ndarray | None:
        """(N,) str group labels, or None."""
        if "group" not in self.members:
            return None
        group = self.members["group"].load()
        if group.dtype.kind == "S":
            return np.char.decode(group, "ascii", errors="replace").astype(str)
        return group.astype(str)

    def load_oracle(self) -> dict[str, np.ndarray]:
        """modality -> int64 flattened feature indices."""
        return {k[7:]: a.load().astype(np.int64) for k, a in self._prefixed("oracle_")}

    def load_lengths(self) -> dict[str, np.ndarray]:
        """modality -> (N,) int64 valid steps."""
        return {k[4:]: a.load().astype(np.int64) for k, a in self._prefixed("len_")}

    def _prefixed(self, prefix: str) -> list[tuple[str, NpyMember]]:
        return [(k, a) for k, a in self.members.items() if k.startswith(prefix)]


def check_arrays(arrays: Mapping[str, NpyMember], *, split_seed: int = 0) -> CheckedArrays:
    """Apply the contract; DatasetError(field, reason) on the first problem.

    Order of the checks: names; the headers of ``y``, each modality, ``split``, ``group``,
    ``oracle_*`` and ``len_*``; then their values in the same order, streamed.
    """
    modalities = _check_keys(arrays)
    _check_headers(arrays, modalities)
    class_counts = _label_counts(arrays["y"])
    for m in modalities:
        if arrays[f"x_{m}"].dtype.kind != "U":
            _check_finite(arrays[f"x_{m}"])
    if "split" in arrays:
        split_sizes = _split_counts(arrays["split"])
    else:
        split_sizes = _auto_split_sizes(class_counts, arrays["y"].shape[0])
    group_counts = _group_counts(arrays["group"]) if "group" in arrays else {}
    for key, arr in arrays.items():
        if key.startswith("oracle_"):
            _check_range(arr, 0, arrays[f"x_{key[7:]}"].row_size - 1, "indices")
        elif key.startswith("len_"):
            _check_range(arr, 1, arrays[f"x_{key[4:]}"].shape[1], "lengths")
    return CheckedArrays(
        arrays, tuple(modalities), class_counts, split_sizes, group_counts, split_seed
    )


def validate_npz(
    source: str | os.PathLike[str] | IO[bytes], *, limits: Limits | None = None
) -> dict[str, Any]:
    """Check a dataset file and return its summary (``CheckedArrays.summary``)."""
    with open_archive(source) as archive:
        return check_arrays(read_archive(archive, limits)).summary()


# --- headers ----------------------------------------------------------------------------------


def _check_keys(arrays: Mapping[str, NpyMember]) -> list[str]:
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
    for key in arrays:
        if key.startswith(("oracle_", "len_")) and key.split("_", 1)[1] not in modalities:
            raise DatasetError(key, f"names no modality; modalities are {', '.join(modalities)}")
    return modalities


def _check_headers(arrays: Mapping[str, NpyMember], modalities: list[str]) -> None:
    y = arrays["y"]
    if y.ndim != 1:
        raise DatasetError("y", f"must have shape (N,), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise DatasetError("y", f"must be an integer array, got dtype {y.dtype}")
    if y.shape[0] == 0:
        raise DatasetError("y", "is empty")
    n = y.shape[0]
    for m in modalities:
        _check_modality_header(arrays[f"x_{m}"], n)
    if "split" in arrays:
        _check_per_sample(arrays["split"], n, "iu", "an integer array")
    if "group" in arrays:
        _check_group_header(arrays["group"], n)
    for key, arr in arrays.items():
        if key.startswith("oracle_"):
            if arr.ndim != 1 or arr.dtype.kind not in "iu":
                raise DatasetError(key, f"must be a 1-d integer array, got {arr.dtype} {arr.shape}")
            if arr.size == 0:
                raise DatasetError(key, "is empty")
        elif key.startswith("len_"):
            x = arrays[f"x_{key[4:]}"]
            if x.ndim != 3:
                raise DatasetError(
                    key, f"only sequence modalities (N, T, D) take lengths, got {x.shape}"
                )
            _check_per_sample(arr, n, "iu", "an integer array")


def _check_modality_header(arr: NpyMember, n: int) -> None:
    key = arr.key
    if arr.dtype.kind == "U" and arr.ndim == 1 and arr.shape[0] == n:
        return  # raw text, one string per sample (the rawdata branch replaces this check)
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


def _check_per_sample(arr: NpyMember, n: int, kinds: str, what: str) -> None:
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DatasetError(arr.key, f"must have shape ({n},) like y, got {arr.shape}")
    if arr.dtype.kind not in kinds:
        raise DatasetError(arr.key, f"must be {what}, got dtype {arr.dtype}")


def _check_group_header(arr: NpyMember, n: int) -> None:
    _check_per_sample(arr, n, "iuUS", "strings or integers")
    chars = arr.dtype.itemsize // (4 if arr.dtype.kind == "U" else 1)
    if arr.dtype.kind in "US" and chars > MAX_GROUP_CHARS:
        raise DatasetError(
            "group", f"labels must be at most {MAX_GROUP_CHARS} characters, dtype is {arr.dtype}"
        )


# --- values, streamed -------------------------------------------------------------------------


def _label_counts(y: NpyMember) -> dict[int, int]:
    counts = np.zeros(0, dtype=np.int64)
    for _, values in y.chunks():
        low, high = int(values.min()), int(values.max())
        if low < 0:
            raise DatasetError("y", f"labels must be in 0..K-1, found {low}")
        if high >= MAX_CLASSES:
            raise DatasetError("y", f"labels must be below {MAX_CLASSES}, found {high}")
        found = np.bincount(values.astype(np.int64))
        if found.size > counts.size:
            found[: counts.size] += counts
            counts = found
        else:
            counts[: found.size] += found
    classes = np.flatnonzero(counts)
    if classes.size < 2:
        raise DatasetError("y", "needs at least two classes, found one")
    return {int(c): int(counts[c]) for c in classes}


def _check_finite(arr: NpyMember) -> None:
    for start, values in arr.chunks():
        finite = np.isfinite(values)
        if not finite.all():
            first = arr.sample_of(start + int(np.argmin(finite)))
            raise DatasetError(
                arr.key, f"contains NaN or infinite values (first found at sample {first})"
            )


def _split_counts(split: NpyMember) -> tuple[int, int, int]:
    counts = np.zeros(3, dtype=np.int64)
    for start, values in split.chunks():
        bad = (values < 0) | (values > 2)
        if bad.any():
            at = int(np.argmax(bad))
            raise DatasetError(
                "split",
                "values must be 0 (train), 1 (val) or 2 (test), "
                f"found {int(values[at])} (first at sample {start + at})",
            )
        counts += np.bincount(values.astype(np.int64), minlength=3)
    for sid, name in enumerate(SPLITS):
        if counts[sid] == 0:
            raise DatasetError("split", f"the {name} split ({sid}) is empty")
    return int(counts[0]), int(counts[1]), int(counts[2])


def _auto_split_sizes(class_counts: Mapping[int, int], n: int) -> tuple[int, int, int]:
    """The sizes ``stratified_split`` gives labels with these class counts (without the labels)."""
    sizes = [0, 0, 0]
    for count in class_counts.values():
        for sid, k in enumerate(auto_split_counts(count)):
            sizes[sid] += k
    for sid in (1, 2):
        if sizes[sid] == 0:
            raise _too_few_for_auto_split(n, sid)
    return sizes[0], sizes[1], sizes[2]


def _group_counts(group: NpyMember) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for _, values in group.chunks():
        names, sizes = np.unique(values, return_counts=True)
        for name, size in zip(names, sizes, strict=True):
            counts[_group_name(name)] += int(size)
        if len(counts) > MAX_GROUPS:
            raise DatasetError(
                "group", f"has more than {MAX_GROUPS} distinct values; it names kinds of samples"
            )
    return dict(sorted(counts.items()))


def _group_name(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return str(value)


def _check_range(arr: NpyMember, low: int, high: int, what: str) -> None:
    for _, values in arr.chunks():
        if int(values.min()) < low or int(values.max()) > high:
            where = " (flattened features)" if what == "indices" else ""
            raise DatasetError(arr.key, f"{what} must be in {low}..{high}{where}")


# --- the automatic split ----------------------------------------------------------------------


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
            raise _too_few_for_auto_split(y.shape[0], sid)
    return split


def _too_few_for_auto_split(n: int, sid: int) -> DatasetError:
    return DatasetError(
        "split",
        f"not given, and {n} samples are too few for the automatic stratified 70/15/15 split "
        f"(the {SPLITS[sid]} split would be empty); add a `split` array",
    )

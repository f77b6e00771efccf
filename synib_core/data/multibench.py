"""Convert a MultiBench affect pickle (CMU-MOSI, CMU-MOSEI, MUStARD, UR-Funny, ...) into the
dataset contract (``synib_spec.datasets``): ``synib datasets import multibench FILE.pkl``.

The pickle is the user's own file and is read on the user's machine only: unpickling runs
whatever code the file names, so convert only files you trust. The server never unpickles
anything; it receives the ``.npz`` this writes.

Layout read (MultiBench's ``datasets/affect`` pickles)::

    {"train" | "valid" | "test": {"vision": (N, T, Dv) float, "audio": (N, T, Da) float,
                                  "text": (N, T, Dt) float,     # precomputed feature sequences
                                  "labels": (N, 1, 1) | (N, 1) | (N,) float sentiment,
                                  "id": optional, ignored}}

Written, in the order vision, audio, text: ``x_<m>`` (N, T, D) float32 with every sample's steps moved to the front and
``len_<m>`` (N,) its number of steps (the span from its first to its last step that is not all
zeros: MultiBench pads some sets at the front, others at the back; both are read), ``split``
(0 train / 1 valid / 2 test), ``y`` class ids. Splits of different lengths T are padded to the
longest. NaN and infinite features (MOSEI's audio has some) become 0, counted in the log. As
MultiBench's loader does (``drop_entry``), samples whose text is all zeros are dropped when the
text modality is imported. Labels (sentiment in [-3, 3] for MOSI/MOSEI):

- ``classes=2``: 1 when the score is > 0, else 0 -- MultiBench's ``task="classification"``
  rule, which keeps the zero scores as the negative class (it drops none);
- ``classes=7``: the score rounded and clipped to -3..3, plus 3: classes 0..6.

Example:
    >>> summary = import_multibench("mosi_raw.pkl", "mosi.npz", classes=2)   # doctest: +SKIP
    >>> summary["split_sizes"]                                              # doctest: +SKIP
    {'train': 1284, 'val': 229, 'test': 686}
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synib_spec.datasets import DatasetError, validate_npz

__all__ = [
    "CLASS_RULES",
    "MODALITIES",
    "SPLITS",
    "MultiBenchError",
    "convert_multibench",
    "import_multibench",
    "load_pickle",
    "pack_steps",
    "sentiment_classes",
]

SPLITS = ("train", "valid", "test")  # -> split ids 0, 1, 2
MODALITIES = ("vision", "audio", "text")
CLASS_RULES = (2, 7)
BLOCK = 2048  # samples handled at a time when packing (bounded temporary memory)

Log = Callable[[str], None]


class MultiBenchError(DatasetError):
    """The file is not a MultiBench affect pickle of the expected layout; ``field`` names the
    key (``train.vision``) or ``file``."""

    label = "MultiBench file"


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """The object in the user's own pickle file (runs the code the pickle names: trusted files
    only); MultiBenchError("file", ...) when it is missing or not a pickle."""
    try:
        with open(path, "rb") as fh:
            try:
                return pickle.load(fh)
            except UnicodeDecodeError:  # a Python 2 pickle of numpy arrays
                fh.seek(0)
                return pickle.load(fh, encoding="latin1")
    except FileNotFoundError as exc:
        raise MultiBenchError("file", f"not found: {path}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise MultiBenchError("file", f"not a readable pickle: {exc}") from exc
    except (ImportError, IndexError, KeyError) as exc:
        raise MultiBenchError("file", f"not a readable pickle: {exc!r}") from exc


def sentiment_classes(scores: np.ndarray, classes: int) -> np.ndarray:
    """(N,) float sentiment -> (N,) int64 class ids by the rule of ``classes`` (module doc)."""
    if classes == 2:
        return (scores > 0).astype(np.int64)
    if classes == 7:
        return (np.clip(np.round(scores), -3, 3) + 3).astype(np.int64)
    raise ValueError(f"classes: expected one of {CLASS_RULES}, got {classes}")


def pack_steps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Move every sample's steps to the front, in place.

    x: (N, T, D) float32. Returns (x, lengths (N,) int64 in 1..T, the number of samples that
    were padded at the front, (N,) bool: the sample has a non-zero step; one without has
    length 1). A sample's steps are the span from its first to its last step that is not all
    zeros.
    """
    n, steps = x.shape[0], x.shape[1]
    lengths = np.ones(n, dtype=np.int64)
    present = np.zeros(n, dtype=bool)
    leading = 0
    for start in range(0, n, BLOCK):
        nonzero = np.any(x[start : start + BLOCK] != 0, axis=2)  # (B, T)
        has = nonzero.any(axis=1)
        first = np.argmax(nonzero, axis=1)
        last = steps - 1 - np.argmax(nonzero[:, ::-1], axis=1)
        lengths[start : start + has.size] = np.where(has, last - first + 1, 1)
        present[start : start + has.size] = has
        for i in np.flatnonzero(has & (first > 0)):
            row, size = x[start + i], int(last[i] - first[i] + 1)
            row[:size] = row[first[i] : first[i] + size].copy()
            row[size:] = 0
            leading += 1
    return x, lengths, leading, present


def _split_part(raw: Any, split: str, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """{m: (N, T, D) float32, "labels": (N,) float64} of one split, shapes checked."""
    if not isinstance(raw, Mapping):
        raise MultiBenchError(split, f"expected a dict of arrays, got {type(raw).__name__}")
    part: dict[str, np.ndarray] = {}
    for key in (*modalities, "labels"):
        if key not in raw:
            raise MultiBenchError(
                f"{split}.{key}", f"missing; the split has {sorted(map(str, raw))}"
            )
        try:
            arr = np.asarray(raw[key], dtype=np.float32 if key != "labels" else np.float64)
        except (TypeError, ValueError) as exc:
            raise MultiBenchError(f"{split}.{key}", f"not a numeric array: {exc}") from exc
        if key != "labels" and (arr.ndim != 3 or min(arr.shape[1:]) < 1):
            raise MultiBenchError(
                f"{split}.{key}", f"expected a (N, T, D) feature sequence, got shape {arr.shape}"
            )
        part[key] = arr
    n = part["labels"].shape[0] if part["labels"].ndim else 0
    if part["labels"].size != n or n == 0:
        raise MultiBenchError(
            f"{split}.labels",
            f"expected one score per sample, (N, 1, 1), (N, 1) or (N,), got {part['labels'].shape}",
        )
    part["labels"] = part["labels"].reshape(n)
    for m in modalities:
        if part[m].shape[0] != n:
            raise MultiBenchError(
                f"{split}.{m}", f"has {part[m].shape[0]} samples but {split}.labels has {n}"
            )
    if not np.isfinite(part["labels"]).all():
        raise MultiBenchError(f"{split}.labels", "contains NaN or infinite scores")
    return part


def _joined(parts: list[dict[str, np.ndarray]], m: str, log: Log) -> np.ndarray:
    """Modality m of every split as one (N, T_max, D) float32 array, NaN/inf -> 0."""
    steps = max(p[m].shape[1] for p in parts)
    out = np.zeros((sum(p[m].shape[0] for p in parts), steps, parts[0][m].shape[2]), np.float32)
    start = 0
    for p in parts:
        out[start : start + p[m].shape[0], : p[m].shape[1]] = p[m]
        start += p[m].shape[0]
    bad = ~np.isfinite(out)
    if bad.any():
        log(f"{m}: {int(bad.sum())} NaN or infinite values replaced by 0")
        out[bad] = 0.0
    return out


def convert_multibench(
    raw: Any, *, classes: int = 2, modalities: Sequence[str] = MODALITIES, log: Log = print
) -> dict[str, np.ndarray]:
    """The dataset arrays (x_<m>, len_<m>, split, y) of a loaded MultiBench affect pickle."""
    if classes not in CLASS_RULES:
        raise ValueError(f"classes: expected one of {CLASS_RULES}, got {classes}")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or len(set(modalities)) < 2:
        raise ValueError(
            f"modalities: expected at least two of {', '.join(MODALITIES)}, got {list(modalities)}"
        )
    if not isinstance(raw, Mapping):
        raise MultiBenchError("file", f"expected a dict of splits, got {type(raw).__name__}")
    for name in SPLITS:
        if name not in raw:
            raise MultiBenchError(name, f"missing; the file has {sorted(map(str, raw))}")
    modalities = [m for m in MODALITIES if m in modalities]  # the file's order, always
    parts = [_split_part(raw[name], name, modalities) for name in SPLITS]
    for m in modalities:
        dims = {p[m].shape[2] for p in parts}
        if len(dims) > 1:
            raise MultiBenchError(m, f"the splits disagree on the feature size: {sorted(dims)}")
    log(
        "; ".join(
            f"{s}: {p['labels'].shape[0]} samples" for s, p in zip(SPLITS, parts, strict=True)
        )
    )
    split_ids = [np.full(p["labels"].shape[0], i, np.int8) for i, p in enumerate(parts)]
    split = np.concatenate(split_ids)
    arrays: dict[str, np.ndarray] = {}
    keep: np.ndarray = np.ones(split.size, dtype=np.bool_)
    for m in modalities:
        x, lengths, leading, present = pack_steps(_joined(parts, m, log))
        log(
            f"{m}: (N, T, D) = {x.shape}, padded at the front in {leading} samples, "
            f"{int((~present).sum())} samples all zeros"
        )
        arrays[f"x_{m}"], arrays[f"len_{m}"] = x, lengths
        if m == "text":
            keep = present
    if not keep.all():  # only text decides, as in MultiBench's loader
        log(f"text: {int((~keep).sum())} samples without text dropped (as MultiBench does)")
        arrays = {k: v[keep] for k, v in arrays.items()}
    arrays["split"] = split[keep]
    arrays["y"] = sentiment_classes(np.concatenate([p["labels"] for p in parts])[keep], classes)
    return arrays


def import_multibench(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    classes: int = 2,
    modalities: Sequence[str] = MODALITIES,
    log: Log = print,
) -> dict[str, Any]:
    """Convert the user's own pickle ``source`` into the dataset file ``out`` (uncompressed,
    memory-mappable .npz, written atomically) and return its summary (``validate_npz``: the
    checks an upload gets)."""
    raw = load_pickle(source)
    arrays = convert_multibench(raw, classes=classes, modalities=modalities, log=log)
    del raw
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    try:
        summary = validate_npz(tmp)
    except DatasetError:
        tmp.unlink()
        raise
    os.replace(tmp, target)
    return summary

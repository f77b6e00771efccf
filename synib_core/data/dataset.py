"""The in-memory multimodal dataset (`MultimodalData`) and its model-building summary (`DataSpec`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synib_spec.datasets import DatasetError, GeneratorParamError
from synib_spec.modality_kinds import RAW_KINDS, kind_of

__all__ = ["DataSpec", "DatasetError", "GeneratorParamError", "MultimodalData"]

SPLIT_NAMES = {0: "train", 1: "val", 2: "test"}
SPLIT_IDS = {name: sid for sid, name in SPLIT_NAMES.items()}


@dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about a dataset.

    `shapes[m]` is the per-sample shape of modality m: (D,), (T, D) or (C, H, W); () for raw
    text (one string per sample) and (T,) for raw audio. `kinds[m]` is its kind
    (``synib_spec.backbones.MODALITY_KINDS``); `rates[m]` the sample rate of an audio modality.
    """

    modalities: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    num_classes: int
    oracle_sizes: dict[str, int] = field(default_factory=dict)
    has_lengths: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)
    rates: dict[str, int] = field(default_factory=dict)

    def raw_modalities(self) -> dict[str, str]:
        """modality -> kind of the modalities only a pretrained model can read (text, audio)."""
        return {m: k for m, k in self.kinds.items() if k in RAW_KINDS}


@dataclass
class MultimodalData:
    """A multimodal classification dataset held in memory.

    x: modality -> (N, D) | (N, T, D) | (N, C, H, W) float32 (possibly a read-only memmap),
    or raw: text (N,) unicode strings (dtype ``<U``), audio (N, T) float32 waveforms;
    y: (N,) int64 in 0..num_classes-1; split: (N,) int8 (0 train, 1 val, 2 test);
    group: (N,) str or None; oracle: modality -> int coordinate indices into the flattened
    per-sample features; lengths: modality -> (N,) int64 valid steps of a sequence modality
    or valid samples of an audio one; rates: audio modality -> sample rate in Hz (an (N, T)
    float array is audio exactly when its modality has a rate, else vectors).

    Example:
        >>> data = GENERATORS["xor_spurious"](seed=0, n_test=100)   # doctest: +SKIP
        >>> train = data.subset("train"); train.spec().shapes["a"]  # (64,)
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    split: np.ndarray
    group: np.ndarray | None
    oracle: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    num_classes: int
    fingerprint: str
    rates: dict[str, int] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.x)

    @property
    def kinds(self) -> dict[str, str]:
        """modality -> kind: vector, sequence, image, text or audio (``kind_of``, the rule the
        dataset contract applies to files)."""
        return {
            m: kind_of(f"x_{m}", arr.dtype, tuple(arr.shape), m in self.rates)
            for m, arr in self.x.items()
        }

    def raw_modalities(self) -> dict[str, str]:
        """modality -> kind of the raw text and audio modalities (a pretrained model reads them)."""
        return {m: k for m, k in self.kinds.items() if k in RAW_KINDS}

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def spec(self) -> DataSpec:
        """Modalities, per-sample shapes and class count for building a model."""
        return DataSpec(
            modalities=self.modalities,
            shapes={m: tuple(int(d) for d in arr.shape[1:]) for m, arr in self.x.items()},
            num_classes=self.num_classes,
            oracle_sizes={m: int(idx.size) for m, idx in self.oracle.items()},
            has_lengths=tuple(self.lengths),
            kinds=self.kinds,
            rates=dict(self.rates),
        )

    def split_sizes(self) -> dict[str, int]:
        """Number of samples per split: {"train": n0, "val": n1, "test": n2}."""
        counts = np.bincount(self.split.astype(np.int64), minlength=3)
        return {SPLIT_NAMES[i]: int(counts[i]) for i in range(3)}

    def subset(self, split: int | str) -> MultimodalData:
        """The samples of one split ("train"/"val"/"test" or 0/1/2), with `split` kept.

        Oracle indices, num_classes, rates and fingerprint are unchanged.
        """
        sid = _split_id(split)
        keep = np.flatnonzero(self.split == sid)
        return MultimodalData(
            x={m: arr[keep] for m, arr in self.x.items()},
            y=self.y[keep],
            split=self.split[keep],
            group=None if self.group is None else self.group[keep],
            oracle=dict(self.oracle),
            lengths={m: arr[keep] for m, arr in self.lengths.items()},
            num_classes=self.num_classes,
            fingerprint=self.fingerprint,
            rates=dict(self.rates),
        )

    def train_prior(self) -> np.ndarray:
        """(K,) float64 label frequencies of the training split."""
        counts = np.bincount(self.y[self.split == 0], minlength=self.num_classes)
        return counts / max(int(counts.sum()), 1)


def _split_id(split: int | str) -> int:
    if isinstance(split, str):
        if split not in SPLIT_IDS:
            raise ValueError(f"split: unknown split {split!r}; allowed: train, val, test")
        return SPLIT_IDS[split]
    if split not in SPLIT_NAMES:
        raise ValueError(f"split: unknown split {split!r}; allowed: 0, 1, 2")
    return int(split)

"""Splits as tensors on the training device, and mini-batches drawn from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from synib_core.config import KnobError
from synib_core.data import MultimodalData
from synib_core.objectives.base import Batch

__all__ = ["SplitTensors", "iterate_batches", "resolve_device", "split_tensors"]


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available else cpu; "cuda" without a GPU raises KnobError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise KnobError("device", "'cuda' was requested but no CUDA device is available")
    return torch.device(name)


@dataclass
class SplitTensors:
    """One split on ``device``: x {m: (N, ...)} float32, y (N,) int64, lengths {m: (N,)} int64,
    group (N,) str array or None (kept in numpy)."""

    x: dict[str, Tensor]
    y: Tensor
    lengths: dict[str, Tensor]
    group: np.ndarray | None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def whole(self) -> Batch:
        """The whole split as one Batch (the tensors themselves, not copies)."""
        index = torch.arange(len(self), device=self.y.device)
        return Batch(x=dict(self.x), y=self.y, lengths=dict(self.lengths), index=index)

    def batch(self, index: Tensor) -> Batch:
        """The rows ``index`` (B,) int64 (on the split's device) as a Batch."""
        return Batch(
            x={m: t[index] for m, t in self.x.items()},
            y=self.y[index],
            lengths={m: t[index] for m, t in self.lengths.items()},
            index=index,
        )


def split_tensors(data: MultimodalData, split: str, device: torch.device) -> SplitTensors:
    """Copy the rows of ``split`` ("train" | "val" | "test") to ``device``."""
    part = data.subset(split)
    if len(part) == 0:
        raise ValueError(f"data.split: the {split} split is empty; training needs every split")
    return SplitTensors(
        x={
            m: torch.tensor(np.asarray(a, dtype=np.float32), device=device)
            for m, a in part.x.items()
        },
        y=torch.tensor(np.asarray(part.y, dtype=np.int64), device=device),
        lengths={
            m: torch.tensor(np.asarray(a, dtype=np.int64), device=device)
            for m, a in part.lengths.items()
        },
        group=None if part.group is None else np.asarray(part.group).astype(str),
    )


def iterate_batches(
    split: SplitTensors, batch_size: int, generator: torch.Generator | None
) -> Iterator[Batch]:
    """Mini-batches of ``split``; shuffled with ``generator`` (a CPU generator), in order when
    it is None. The last batch may be smaller."""
    n = len(split)
    order = torch.arange(n) if generator is None else torch.randperm(n, generator=generator)
    device = split.y.device
    for start in range(0, n, batch_size):
        yield split.batch(order[start : start + batch_size].to(device))

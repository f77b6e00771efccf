"""Features of a whole split, for objectives that diagnose the encoders once per epoch (``dnr``,
``pmr``): no gradients, evaluation mode, in chunks.

Example:
    >>> feats = split_features(model, train)   # {m: (N, H_m)}                # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from synib_core.objectives.base import Batch, ModelLike

__all__ = ["CHUNK", "split_features"]

CHUNK = 1024


@torch.no_grad()
def split_features(model: ModelLike, split: Batch, chunk: int = CHUNK) -> dict[str, Tensor]:
    """{m: (N, H_m)} float32 features of every row of ``split`` (a Batch of N rows), computed
    in evaluation mode; the model's train/eval mode is restored afterwards."""
    module = model if isinstance(model, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        parts: dict[str, list[Tensor]] = {m: [] for m in model.modalities}
        for start in range(0, len(split), chunk):
            rows = slice(start, start + chunk)
            part = Batch(
                x={m: t[rows] for m, t in split.x.items()},
                y=split.y[rows],
                lengths={m: t[rows] for m, t in split.lengths.items()},
            )
            for m, z in model.encode_all(part).items():
                parts[m].append(z.float())
        return {m: torch.cat(chunks) for m, chunks in parts.items()}
    finally:
        if module is not None:
            module.train(was_training)

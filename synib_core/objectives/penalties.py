"""SynIB penalties Omega on counterfactual logits (docs/METHOD.md).

Each penalty is a pure function ``fn(logits, *, prior=None, anchors=()) -> (B,)`` of
per-sample values, computed in float32 from ``log_softmax`` / ``logsigmoid``. Logits of shape
(B, K) use a softmax over K classes; logits of shape (B, 1) are a binary task with a sigmoid,
and the distributions become Bernoulli. Logits are clamped to +-1e4 first (far beyond
saturation), so every value and gradient is finite for any non-NaN logits.

Example:
    >>> kl_uniform(torch.tensor([[0.0, math.log(3.0)]]))   # q = [1/4, 3/4]
    tensor([0.1308])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PENALTIES",
    "PenaltyFn",
    "PenaltyValue",
    "anchor",
    "evaluate_penalty",
    "kl_prior",
    "kl_uniform",
    "logit_l2",
]

_LOGIT_BOUND = 1e4
_PRIOR_FLOOR = 1e-12


class PenaltyFn(Protocol):
    def __call__(
        self, logits: Tensor, *, prior: Tensor | None = None, anchors: Sequence[Tensor] = ()
    ) -> Tensor: ...


def _prepare(logits: Tensor) -> Tensor:
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits: expected shape (B, K) or (B, 1), got {tuple(logits.shape)}")
    return logits.float().clamp(-_LOGIT_BOUND, _LOGIT_BOUND)


def _log_probs(z: Tensor) -> Tensor:
    """(B, K') log-probabilities; a (B, 1) binary logit becomes (B, 2) [log(1-p), log p]."""
    if z.shape[1] == 1:
        return torch.cat([F.logsigmoid(-z), F.logsigmoid(z)], dim=1)
    return torch.log_softmax(z, dim=1)


def _kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """(B,) KL(p || q) = sum_k p_k (log p_k - log q_k) from log-probabilities (B, K)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def kl_uniform(
    logits: Tensor, *, prior: Tensor | None = None, anchors: Sequence[Tensor] = ()
) -> Tensor:
    """(B,) KL(q || uniform) = log K - H(q); binary: Bernoulli KL to 0.5. logits: (B, K)|(B, 1)."""
    del prior, anchors
    log_q = _log_probs(_prepare(logits))
    k = log_q.shape[1]
    return _kl(log_q, torch.full_like(log_q, -math.log(k)))


def kl_prior(
    logits: Tensor, *, prior: Tensor | None = None, anchors: Sequence[Tensor] = ()
) -> Tensor:
    """(B,) KL(q || p_train). prior: (K,) label marginal of the training split (K = 2 for a
    one-logit binary task: KL of Bernoulli(q) to Bernoulli(prior[1]))."""
    del anchors
    log_q = _log_probs(_prepare(logits))
    if prior is None:
        raise ValueError("prior: penalty 'kl_prior' needs the training label marginal")
    if prior.dim() != 1 or prior.shape[0] != log_q.shape[1]:
        raise ValueError(
            f"prior: expected shape ({log_q.shape[1]},) to match the logits, got {tuple(prior.shape)}"
        )
    p = prior.to(device=log_q.device, dtype=torch.float32).clamp_min(_PRIOR_FLOOR)
    log_p = (p / p.sum()).log()
    return _kl(log_q, log_p.expand_as(log_q))


def anchor(
    logits: Tensor, *, prior: Tensor | None = None, anchors: Sequence[Tensor] = ()
) -> Tensor:
    """(B,) mean over j of KL(softmax(a_j).detach() || q).

    anchors: unimodal logits (B, K) (or (B, 1)) of the modalities left intact; detached here.
    """
    del prior
    log_q = _log_probs(_prepare(logits))
    if len(anchors) == 0:
        raise ValueError(
            "anchors: penalty 'anchor' needs the unimodal logits of the other modalities"
        )
    terms = []
    for a in anchors:
        if a.shape != logits.shape:
            raise ValueError(f"anchors: expected shape {tuple(logits.shape)}, got {tuple(a.shape)}")
        terms.append(_kl(_log_probs(_prepare(a.detach())), log_q))
    return torch.stack(terms).mean(dim=0)


def logit_l2(
    logits: Tensor, *, prior: Tensor | None = None, anchors: Sequence[Tensor] = ()
) -> Tensor:
    """(B,) 0.5 * ||logits_i||^2 (its batch mean is 0.5 * mean ||masked logits||^2)."""
    del prior, anchors
    z = _prepare(logits)
    return 0.5 * (z * z).sum(dim=1)


PENALTIES: dict[str, PenaltyFn] = {
    "kl_uniform": kl_uniform,
    "kl_prior": kl_prior,
    "anchor": anchor,
    "logit_l2": logit_l2,
}


@dataclass
class PenaltyValue:
    """per_sample: (B,) float32 values; mean: their scalar mean."""

    per_sample: Tensor
    mean: Tensor


def evaluate_penalty(
    name: str, logits: Tensor, *, prior: Tensor | None = None, anchors: Sequence[Tensor] = ()
) -> PenaltyValue:
    """Per-sample values and mean of penalty ``name`` on logits (B, K) or (B, 1)."""
    fn = PENALTIES.get(name)
    if fn is None:
        raise ValueError(f"penalty: unknown {name!r}; allowed: {', '.join(PENALTIES)}")
    values = fn(logits, prior=prior, anchors=anchors)
    return PenaltyValue(per_sample=values, mean=values.mean())

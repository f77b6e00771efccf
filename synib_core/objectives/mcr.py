"""MCR, the Multimodal Competition Regulariser (Kontras, Strypsteen, Chatzichristos, Liang,
Blaschko & De Vos, NeurIPS 2025, "Balancing multimodal training through game-theoretic
regularization"), in the form the SynIB authors run it as a baseline (kkontras/SynIB, method
"MCR", ``regby="greedy"``): each modality is a player that wants the prediction to depend on it.

    loss = CE(f(z), y) + w_uni * sum_m CE(u_m(z_m), y)
           + mcr_lambda * sum_m [ -JSD(f(pi z_m, sg z_-m), f(z)) + JSD(f(sg pi z_m, z_-m), f(z)) ]

pi z_m: modality m's features shuffled across the batch (one random derangement per step from
the step's generator, shared by the modalities); sg: stop-gradient; JSD: Jensen-Shannon
divergence of the predicted class distributions (nats, batch mean); f(z): the intact prediction.

The two terms of modality m have the same value and differ only in where the gradient goes:
the first reaches encoder m alone, which so maximises how much shuffling its own features moves
the prediction (its unique contribution, the paper's permutation estimate of I(X_m; Y | X_-m));
the second reaches the other encoders alone, which minimise it (they compete). For the fusion
head and f(z) the two gradients cancel exactly: the regulariser trains the encoders only.

Not used, as in the authors' SynIB configurations: the paper's supervised-contrastive and
conditional-entropy-bottleneck terms. One derangement per step (the authors' code stacks
several permutations of the batch).

Example:
    >>> jensen_shannon(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]]))   # equal
    tensor(0.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from synib_core.config import TrainConfig
from synib_core.objectives.base import (
    Batch,
    ModelLike,
    Objective,
    ObjectiveOutput,
    SpecLike,
    StepContext,
)
from synib_core.objectives.fills import swap_permutation
from synib_core.objectives.losses import task_terms

__all__ = ["MCR", "competition_terms", "jensen_shannon", "log_probs"]


def log_probs(logits: Tensor) -> Tensor:
    """(B, K) log class probabilities in float32; (B, 1) binary logits give K = 2 columns."""
    z = logits.float()
    if z.shape[1] == 1:
        return torch.cat([torch.nn.functional.logsigmoid(-z), torch.nn.functional.logsigmoid(z)], 1)
    return torch.log_softmax(z, dim=1)


def jensen_shannon(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """Batch-mean JSD(p || q) in nats of the distributions of logits (B, K) or (B, 1) each:
    (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2."""
    log_p, log_q = log_probs(logits_p), log_probs(logits_q)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - torch.log(torch.tensor(2.0))
    kl_p = (log_p.exp() * (log_p - log_m)).sum(1)
    kl_q = (log_q.exp() * (log_q - log_m)).sum(1)
    return (0.5 * (kl_p + kl_q)).mean()


def competition_terms(
    model: ModelLike, feats: dict[str, Tensor], intact: Tensor, perm: Tensor
) -> dict[str, tuple[Tensor, Tensor]]:
    """m -> (own, others): JSD(f(pi z_m, sg z_-m), f(z)) with the gradient to z_m only, and the
    same value with the gradient to z_-m only. feats: m -> (B, H_m); intact: (B, out_dim) f(z);
    perm: (B,) the batch permutation."""
    out = {}
    for m, z in feats.items():
        shuffled = z[perm]
        own = {j: shuffled if j == m else v.detach() for j, v in feats.items()}
        others = {j: shuffled.detach() if j == m else v for j, v in feats.items()}
        out[m] = (
            jensen_shannon(model.fuse(own), intact),
            jensen_shannon(model.fuse(others), intact),
        )
    return out


class MCR(Objective):
    """Task terms plus the competition regulariser (module docstring)."""

    name = "mcr"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del spec
        self.lam, self.w_uni, self.uni_detach = config.mcr_lambda, config.w_uni, config.uni_detach

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        terms = task_terms(model, feats, batch.y, self.w_uni, self.uni_detach)
        logs = {"ce": float(terms.ce.detach())}
        logs["uni"] = 0.0 if terms.uni is None else float(terms.uni.detach())
        if not ctx.training or self.lam == 0 or len(batch) < 2:
            return ObjectiveOutput(loss=terms.loss, logits=terms.logits, logs=logs)
        perm = swap_permutation(len(batch), ctx.generator, batch.y.device)
        reg = terms.loss.new_zeros(())
        for m, (own, others) in competition_terms(model, feats, terms.logits, perm).items():
            reg = reg - own + others
            logs[f"jsd_{m}"] = float(own.detach())
        return ObjectiveOutput(loss=terms.loss + self.lam * reg, logits=terms.logits, logs=logs)

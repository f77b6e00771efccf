"""AGM, Adaptive Gradient Modulation (Li, Li, Hu & Xu, ICCV 2023, "Boosting multi-modal model
performance with adaptive gradient modulation"), as the SynIB authors run it (kkontras/SynIB).

Mono-modal responses: the Shapley values of the fused logits over the modalities, with a
modality's absence simulated by running its encoder on zeros and the empty coalition valued 0:

    v(S) = f(z_S, z0_-S) for S non-empty, v({}) = 0,   z0_m = encoder_m(0)
    phi_m = sum_{S not containing m} |S|! (M - |S| - 1)! / M! * (v(S + m) - v(S))

(two modalities: phi_a = (f - f(z0_a, z_b) + f(z_a, z0_b)) / 2), so sum_m phi_m = f(z).

Loss: CE(sum_m phi_m, y) + sum_m CE(phi_m, y) (the authors' unit weights).

Modulation: the gradient flowing back through phi_m is multiplied by c_m. With s_m the batch CE
of phi_m and S_m its running mean over all previous steps (0 before the first step),

    r_m = exp(mean_{j != m} s_j - s_m),  r*_m = exp(mean_{j != m} S_j - S_m),
    c_m = exp(agm_alpha * min(r*_m - r_m, 10)):

a modality doing better than its usual standing against the others (r_m > r*_m) is slowed down,
one doing worse is sped up. The running means are checkpointed with the objective.

Example:
    >>> round(coefficients({"a": 0.2, "b": 0.6}, {"a": 0.0, "b": 0.0}, alpha=1.0)["a"], 4)
    0.6115
"""

from __future__ import annotations

import itertools
import math
from typing import Any

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
from synib_core.objectives.losses import cross_entropy

__all__ = ["AGM", "coefficients", "scale_gradient", "shapley_responses"]

MAX_EXPONENT = 10.0  # the authors' cap on r* - r


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """x unchanged in the forward pass; its gradient multiplied by ``scale`` in the backward."""
    out: Tensor = _ScaleGradient.apply(x, scale)
    return out


def shapley_responses(
    model: ModelLike, feats: dict[str, Tensor], zeros: dict[str, Tensor]
) -> dict[str, Tensor]:
    """m -> phi_m (B, out_dim); feats: m -> (B, H) features, zeros: m -> (B, H) features of zero
    inputs. The 2^M - 1 coalitions run as one batched ``fuse`` call."""
    names = list(feats)
    m_count, batch = len(names), next(iter(feats.values())).shape[0]
    coalitions = [
        frozenset(c) for r in range(1, m_count + 1) for c in itertools.combinations(names, r)
    ]
    stacked = {m: torch.cat([feats[m] if m in c else zeros[m] for c in coalitions]) for m in names}
    values = dict(zip(coalitions, model.fuse(stacked).split(batch), strict=True))  # S -> (B, out)
    phi = {}
    for m in names:
        total = torch.zeros_like(values[frozenset(names)])
        for c in [frozenset(), *coalitions]:
            if m in c:
                continue
            weight = (
                math.factorial(len(c))
                * math.factorial(m_count - len(c) - 1)
                / math.factorial(m_count)
            )
            before = values[c] if c else torch.zeros_like(total)
            total = total + weight * (values[c | {m}] - before)
        phi[m] = total
    return phi


def coefficients(
    scores: dict[str, float], running: dict[str, float], alpha: float
) -> dict[str, float]:
    """c_m = exp(alpha * min(r*_m - r_m, 10)) from this step's CE scores s and running means S."""
    out = {}
    for m in scores:
        others = [j for j in scores if j != m]
        r = math.exp(sum(scores[j] for j in others) / len(others) - scores[m])
        r_star = math.exp(sum(running[j] for j in others) / len(others) - running[m])
        out[m] = math.exp(alpha * min(r_star - r, MAX_EXPONENT))
    return out


class AGM(Objective):
    """Shapley mono-modal responses with adaptively scaled gradients (module docstring)."""

    name = "agm"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        if len(spec.modalities) < 2:
            raise ValueError("spec.modalities: agm needs at least two modalities")
        self.alpha = config.agm_alpha
        self.steps = 0
        self.running = {m: 0.0 for m in spec.modalities}

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        zeros = {
            m: model.encode(m, torch.zeros_like(batch.x[m]), batch.lengths.get(m)) for m in feats
        }
        phi = shapley_responses(model, feats, zeros)
        scores = {m: float(cross_entropy(p.detach(), batch.y)) for m, p in phi.items()}
        logs = {f"score_{m}": s for m, s in scores.items()}
        if ctx.training:
            coeffs = coefficients(scores, self.running, self.alpha)
            phi = {m: scale_gradient(p, coeffs[m]) for m, p in phi.items()}
            logs.update({f"coeff_{m}": c for m, c in coeffs.items()})
            self.steps += 1  # running means over the steps so far, this one included
            for m, s in scores.items():
                self.running[m] += (s - self.running[m]) / self.steps
        logits = torch.stack(list(phi.values())).sum(0)  # = f(z)
        ce = cross_entropy(logits, batch.y)
        uni = torch.stack([cross_entropy(p, batch.y) for p in phi.values()]).sum()
        logs.update({"ce": float(ce.detach()), "uni": float(uni.detach())})
        return ObjectiveOutput(loss=ce + uni, logits=logits, logs=logs)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "running": dict(self.running)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.running.update(state.get("running", {}))

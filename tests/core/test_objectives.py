"""The SynIB objective: batched counterfactual pass, lambda = 0 == vanilla, warm-up, weights."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import Tensor

from synib_core.backbones import MultimodalModel, build_model
from synib_core.config import METHODS, TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives import (
    OBJECTIVES,
    Batch,
    ObjectiveConfigError,
    StepContext,
    build_objective,
    fuse_counterfactuals,
    lambda_at,
)
from synib_core.objectives.losses import cross_entropy
from synib_core.objectives.penalties import kl_prior, kl_uniform
from synib_core.objectives.synib import MaskingOnly, SynIB

torch.set_num_threads(1)

SMALL: dict[str, Any] = {"hidden": 8, "fusion_hidden": 8, "encoder_layers": 1}


def _spec(num_classes: int = 3, modalities: tuple[str, ...] = ("a", "b")) -> DataSpec:
    shapes: dict[str, tuple[int, ...]] = {m: (4 + i,) for i, m in enumerate(modalities)}
    return DataSpec(modalities, shapes, num_classes=num_classes)


def _model(config: TrainConfig, spec: DataSpec, method: str = "synib") -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(config, spec, method)


def _batch(spec: DataSpec, n: int = 8, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(n, *spec.shapes[m], generator=g) for m in spec.modalities}
    return Batch(x=x, y=torch.randint(0, spec.num_classes, (n,), generator=g))


def _ctx(spec: DataSpec, epoch: int = 1, seed: int = 2, training: bool = True) -> StepContext:
    prior = torch.arange(1, spec.num_classes + 1, dtype=torch.float32)
    return StepContext(
        epoch=epoch,
        num_epochs=10,
        step=0,
        generator=torch.Generator().manual_seed(seed),
        train_prior=prior / prior.sum(),
        training=training,
    )


def _grads(model: MultimodalModel) -> list[Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def test_registry_matches_config_methods_and_rejects_unknown() -> None:
    assert set(OBJECTIVES) == set(METHODS)
    with pytest.raises(ObjectiveConfigError, match="allowed: synib, vanilla"):
        build_objective("no_such_method", TrainConfig(), _spec())
    with pytest.raises(ValueError, match="modalities"):
        build_objective("synib", TrainConfig(), _spec(modalities=("a",)))


def test_warmup_schedule_values() -> None:
    assert [lambda_at(10.0, 4, e) for e in range(1, 8)] == [0.0, 2.5, 5.0, 7.5, 10.0, 10.0, 10.0]
    assert lambda_at(10.0, 0, 1) == 10.0
    assert lambda_at(0.0, 3, 5) == 0.0
    objective = SynIB(TrainConfig(lam=2.0, warmup_epochs=2), _spec())
    assert [objective.lambda_at(e) for e in (1, 2, 3)] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("w_uni", [0.0, 0.5])
def test_lambda_zero_reproduces_vanilla_bit_for_bit(num_classes: int, w_uni: float) -> None:
    spec = _spec(num_classes)
    config = TrainConfig(**SMALL, lam=0.0, w_uni=w_uni, mask="random", fill="noise")
    batch = _batch(spec)
    results = []
    for method in ("vanilla", "synib"):
        model = _model(config, spec)
        ctx = _ctx(spec)
        state = ctx.generator.get_state()
        objective = build_objective(method, config, spec)
        out = objective.loss(model, batch, ctx)
        objective.backward(out, model)
        assert torch.equal(ctx.generator.get_state(), state)  # no mask was drawn
        results.append((out.loss.detach(), out.logits.detach(), _grads(model)))
    (loss_v, logits_v, grads_v), (loss_s, logits_s, grads_s) = results
    assert torch.equal(loss_v, loss_s) and torch.equal(logits_v, logits_s)
    assert all(torch.equal(a, b) for a, b in zip(grads_v, grads_s, strict=True))


def test_warmup_epoch_one_skips_the_penalty_pass() -> None:
    spec = _spec()
    config = TrainConfig(**SMALL, lam=5.0, warmup_epochs=3)
    model, batch = _model(config, spec), _batch(spec)
    ctx = _ctx(spec, epoch=1)
    state = ctx.generator.get_state()
    out = build_objective("synib", config, spec).loss(model, batch, ctx)
    vanilla = build_objective("vanilla", config, spec).loss(model, batch, _ctx(spec))
    assert torch.equal(ctx.generator.get_state(), state)
    assert torch.equal(out.loss, vanilla.loss)
    assert out.logs["lambda"] == 0.0 and out.logs["penalty"] == 0.0
    later = build_objective("synib", config, spec).loss(model, batch, _ctx(spec, epoch=3))
    assert later.logs["lambda"] == pytest.approx(5.0 * 2 / 3)
    assert later.loss.item() == pytest.approx(
        later.logs["ce"] + later.logs["lambda"] * later.logs["penalty"], rel=1e-5
    )


class CountingFuse:
    def __init__(self, model: MultimodalModel) -> None:
        self.model, self.calls = model, 0

    def __call__(self, feats: dict[str, Tensor]) -> Tensor:
        self.calls += 1
        return MultimodalModel.fuse(self.model, feats)


def test_counterfactual_pass_is_one_fuse_call_equal_to_separate_calls() -> None:
    spec = _spec(modalities=("a", "b", "c"))
    config = TrainConfig(**SMALL, lam=1.0, mask="full", fill="noise")
    model, batch = _model(config, spec), _batch(spec)
    feats = model.encode_all(batch)
    cf = {m: torch.randn_like(z) for m, z in feats.items()}
    counter = CountingFuse(model)
    model.fuse = counter  # type: ignore[method-assign]
    batched = fuse_counterfactuals(model, feats, cf)
    assert counter.calls == 1
    for m in spec.modalities:
        separate = MultimodalModel.fuse(model, {**feats, m: cf[m]})
        assert batched[m].shape == (8, 3)
        assert torch.allclose(batched[m], separate, atol=1e-6)
    counter.calls = 0
    out = build_objective("synib", config, spec).loss(model, batch, _ctx(spec))
    assert counter.calls == 2  # the intact pass and one batched counterfactual pass
    assert out.logs["penalty"] > 0


@pytest.mark.parametrize("num_classes", [2, 3])
def test_synib_loss_by_hand_with_zeroed_modalities(num_classes: int) -> None:
    spec = _spec(num_classes)
    config = TrainConfig(**SMALL, lam=3.0, mask="full", fill="zeros", modality_weights="a=0.5,b=2")
    model, batch = _model(config, spec), _batch(spec)
    out = build_objective("synib", config, spec).loss(model, batch, _ctx(spec))
    feats = model.encode_all(batch)
    logits = model.fuse(feats)
    omega_a = kl_uniform(model.fuse({**feats, "a": torch.zeros_like(feats["a"])})).mean()
    omega_b = kl_uniform(model.fuse({**feats, "b": torch.zeros_like(feats["b"])})).mean()
    penalty = 0.5 * omega_a + 2.0 * omega_b
    expected = cross_entropy(logits, batch.y) + 3.0 * penalty
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.logs["penalty"] == pytest.approx(penalty.item(), rel=1e-5)
    assert set(out.logs) == {"ce", "penalty", "uni", "lambda"}
    assert torch.allclose(out.logits, logits)


def test_kl_prior_penalty_uses_the_train_prior() -> None:
    spec = _spec()
    config = TrainConfig(**SMALL, lam=1.0, mask="full", fill="zeros", penalty="kl_prior")
    model, batch = _model(config, spec), _batch(spec)
    ctx = _ctx(spec)
    out = build_objective("synib", config, spec).loss(model, batch, ctx)
    feats = model.encode_all(batch)
    expected = (
        torch.stack(
            [
                kl_prior(
                    model.fuse({**feats, m: torch.zeros_like(feats[m])}), prior=ctx.train_prior
                )
                for m in spec.modalities
            ]
        )
        .mean(dim=1)
        .sum()
    )
    assert out.logs["penalty"] == pytest.approx(float(expected.detach()), rel=1e-5)


def test_anchor_penalty_runs_and_needs_heads() -> None:
    spec = _spec()
    config = TrainConfig(**SMALL, lam=1.0, penalty="anchor", w_uni=0.1)
    out = build_objective("synib", config, spec).loss(
        _model(config, spec), _batch(spec), _ctx(spec)
    )
    assert out.logs["penalty"] > 0 and out.logs["uni"] > 0
    no_heads = dataclasses.replace(config, w_uni=0.2)
    object.__setattr__(no_heads, "w_uni", 0.0)  # bypass the config's own check
    with pytest.raises(ObjectiveConfigError, match="w_uni"):
        SynIB(no_heads, spec)


@pytest.mark.parametrize("mask", ["random", "learned"])
def test_gradient_routing_of_the_penalty(mask: str) -> None:
    spec = _spec()
    config = TrainConfig(**SMALL, lam=5.0, mask=mask, w_uni=0.3, mask_steps=3)
    batch = _batch(spec)
    grads = {}
    for method in ("vanilla", "synib"):
        model = _model(config, spec)
        objective = build_objective(method, config, spec)
        objective.backward(objective.loss(model, batch, _ctx(spec)), model)
        grads[method] = {
            n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
        }
    encoder_same = all(
        torch.allclose(grads["vanilla"][n], grads["synib"][n], atol=1e-7)
        for n in grads["vanilla"]
        if n.startswith("encoders.")
    )
    fusion_same = all(
        torch.allclose(grads["vanilla"][n], grads["synib"][n], atol=1e-7)
        for n in grads["vanilla"]
        if n.startswith("fusion.")
    )
    assert not fusion_same
    assert encoder_same == (mask == "learned")  # learned: the penalty reaches the fusion head only


def test_masking_only_uses_ce_on_the_counterfactuals() -> None:
    spec = _spec()
    config = TrainConfig(**SMALL, lam=2.0, mask="full", fill="zeros")
    model, batch = _model(config, spec), _batch(spec)
    objective = build_objective("masking_only", config, spec)
    assert isinstance(objective, MaskingOnly)
    out = objective.loss(model, batch, _ctx(spec))
    feats = model.encode_all(batch)
    cf_ce = torch.stack(
        [
            cross_entropy(model.fuse({**feats, m: torch.zeros_like(feats[m])}), batch.y)
            for m in spec.modalities
        ]
    ).sum()
    assert out.logs["cf_ce"] == pytest.approx(float(cf_ce.detach()), rel=1e-5)
    assert out.loss.item() == pytest.approx(out.logs["ce"] + 2.0 * float(cf_ce.detach()), rel=1e-5)


def test_input_level_sequences_and_ema_state_round_trip() -> None:
    spec = DataSpec(("s", "v"), {"s": (5, 3), "v": (2, 2)}, num_classes=3)
    config = TrainConfig(
        **SMALL, encoder="gru", lam=1.0, mask_level="input", fill="ema", mask="random"
    )
    model = _model(config, spec)
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        x={"s": torch.randn(6, 5, 3, generator=g), "v": torch.randn(6, 2, 2, generator=g)},
        y=torch.tensor([0, 1, 2, 0, 1, 2]),
        lengths={"s": torch.tensor([5, 3, 1, 5, 2, 4])},
    )
    objective = build_objective("synib", config, spec)
    out = objective.loss(model, batch, _ctx(spec))
    assert torch.isfinite(out.loss)
    state = objective.state_dict()
    assert state["fill"]["mean"]["s"].shape == (15,)  # flattened (T * D) input statistics
    fresh = build_objective("synib", config, spec)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.state_dict()["fill"]["var"]["v"], state["fill"]["var"]["v"])
    # evaluation does not move the statistics
    objective.loss(model, batch, _ctx(spec, training=False))
    assert torch.equal(objective.state_dict()["fill"]["mean"]["v"], state["fill"]["mean"]["v"])


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
@pytest.mark.parametrize("num_classes", [2, 4])
def test_every_objective_trains_a_step(method: str, num_classes: int) -> None:
    spec = _spec(num_classes)
    config = TrainConfig(**SMALL, lam=1.0, w_uni=0.1)
    model, batch = _model(config, spec, method), _batch(spec)
    objective = build_objective(method, config, spec)
    out = objective.loss(model, batch, _ctx(spec))
    assert out.logits.shape == (8, 1 if num_classes == 2 else num_classes)
    assert torch.isfinite(out.loss) and out.loss.dim() == 0
    assert all(isinstance(v, float) for v in out.logs.values())
    objective.backward(out, model)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    evaluation = objective.loss(model, batch, _ctx(spec, training=False))
    assert torch.isfinite(evaluation.loss)


def test_uni_detach_keeps_the_unimodal_loss_out_of_the_encoders() -> None:
    from synib_core.backbones import build_model
    from synib_core.config import config_from_knobs
    from synib_core.data import DataSpec
    from synib_core.objectives import build_objective
    from synib_core.objectives.base import Batch, StepContext

    spec = DataSpec(modalities=("a", "b"), shapes={"a": (5,), "b": (4,)}, num_classes=3)
    gen = torch.Generator().manual_seed(0)
    batch = Batch(
        x={"a": torch.randn(8, 5, generator=gen), "b": torch.randn(8, 4, generator=gen)},
        y=torch.randint(0, 3, (8,), generator=gen),
    )

    def grads(knobs: dict[str, object]) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        config = config_from_knobs({"hidden": 6, "fusion_hidden": 6, **knobs})
        model = build_model(config, spec, "vanilla")
        ctx = StepContext(epoch=1, num_epochs=1, step=0, generator=gen,
                          train_prior=torch.full((3,), 1 / 3))  # fmt: skip
        objective = build_objective("vanilla", config, spec)
        objective.backward(objective.loss(model, batch, ctx), model)
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, detached, no_uni = (
        grads({"w_uni": 1.0}),
        grads({"w_uni": 1.0, "uni_detach": True}),
        grads({}),
    )
    encoder = [n for n in plain if n.startswith("encoders.")]
    assert encoder
    for name in encoder:  # with uni_detach the encoders see the fused CE only
        assert torch.equal(detached[name], no_uni[name]), name
    assert any(not torch.equal(plain[n], no_uni[n]) for n in encoder)
    assert all(detached[n].abs().sum() > 0 for n in detached if n.startswith("heads."))

"""Fills, masks, the learned gate and the counterfactual builder."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from synib_core.backbones import MultimodalModel, build_model
from synib_core.config import TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives.base import Batch, StepContext
from synib_core.objectives.counterfactual import CounterfactualBuilder
from synib_core.objectives.fills import (
    FILLS,
    EmaFill,
    FillStep,
    NoiseFill,
    SwapFill,
    ZerosFill,
    build_fill,
    swap_permutation,
)
from synib_core.objectives.learned_mask import LearnedMask, learned_gate
from synib_core.objectives.masks import (
    MASKS,
    FullMask,
    MaskRequest,
    OracleMask,
    RandomMask,
    apply_corruption,
)

torch.set_num_threads(1)

SPEC = DataSpec(("a", "b", "c"), {"a": (6,), "b": (5,), "c": (4,)}, num_classes=3)
SMALL: dict[str, Any] = {"hidden": 8, "fusion_hidden": 8, "encoder_layers": 1}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _step(training: bool = True, perm: Tensor | None = None) -> FillStep:
    return FillStep(generator=_gen(), perm=perm, training=training)


def _request(values: Tensor, **kw: Any) -> MaskRequest:
    base = MaskRequest(
        modality="a",
        values=values,
        replacement=torch.zeros_like(values),
        y=torch.zeros(values.shape[0], dtype=torch.long),
        generator=_gen(),
        training=True,
    )
    return dataclasses.replace(base, **kw)


class SpyModel:
    """Delegates to a real model and records encode / fuse calls."""

    def __init__(self, model: MultimodalModel) -> None:
        self.inner = model
        self.modalities, self.num_classes, self.out_dim = (
            model.modalities,
            model.num_classes,
            model.out_dim,
        )
        self.encoded: list[tuple[str, Tensor]] = []
        self.fused: list[dict[str, Tensor]] = []

    def encode(self, m: str, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self.encoded.append((m, x.detach().clone()))
        return self.inner.encode(m, x, lengths)

    def encode_all(self, batch: Batch) -> dict[str, Tensor]:
        return {m: self.encode(m, batch.x[m], batch.lengths.get(m)) for m in self.modalities}

    def fuse(self, feats: dict[str, Tensor]) -> Tensor:
        self.fused.append({m: z.detach().clone() for m, z in feats.items()})
        return self.inner.fuse(feats)

    def unimodal_logits(self, m: str, z: Tensor) -> Tensor:
        return self.inner.unimodal_logits(m, z)


def _setup(**knobs: object) -> tuple[SpyModel, Batch, StepContext, TrainConfig]:
    config = TrainConfig(**{**SMALL, **knobs})
    torch.manual_seed(0)
    model = SpyModel(build_model(config, SPEC, "synib"))
    g = _gen(1)
    x = {m: torch.randn(8, *SPEC.shapes[m], generator=g) for m in SPEC.modalities}
    batch = Batch(x=x, y=torch.randint(0, 3, (8,), generator=g))
    oracle = {
        "a": torch.tensor([0, 2]),
        "b": torch.tensor([4]),
        "c": torch.tensor([], dtype=torch.long),
    }
    ctx = StepContext(1, 3, 0, _gen(2), torch.ones(3) / 3, oracle=oracle)
    return model, batch, ctx, config


# ---------------------------------------------------------------- fills


def test_fill_registry() -> None:
    assert set(FILLS) == {"swap", "noise", "zeros", "ema"}
    assert isinstance(build_fill("noise", 0.5), NoiseFill)
    with pytest.raises(ValueError, match="allowed: swap"):
        build_fill("mean")


def test_swap_permutation_is_a_derangement() -> None:
    for batch_size in (2, 3, 17):
        perm = swap_permutation(batch_size, _gen(batch_size), torch.device("cpu"))
        assert sorted(perm.tolist()) == list(range(batch_size))
        assert (perm != torch.arange(batch_size)).all()
    again = swap_permutation(17, _gen(17), torch.device("cpu"))
    assert torch.equal(again, swap_permutation(17, _gen(17), torch.device("cpu")))


def test_swap_keeps_each_coordinates_multiset() -> None:
    values = torch.randn(9, 4, generator=_gen())
    perm = swap_permutation(9, _gen(3), torch.device("cpu"))
    out = SwapFill().replacement("a", values, _step(perm=perm))
    assert torch.equal(out.sort(dim=0).values, values.sort(dim=0).values)
    assert not torch.equal(out, values)
    assert torch.equal(out, values[perm])
    with pytest.raises(ValueError, match="perm"):
        SwapFill().replacement("a", values, _step())


def test_zeros_and_noise_fills() -> None:
    values = torch.randn(400, 50, generator=_gen())
    assert torch.equal(ZerosFill().replacement("a", values, _step()), torch.zeros(400, 50))
    noise = NoiseFill(0.5).replacement("a", values, _step())
    assert noise.shape == values.shape
    assert noise.std().item() == pytest.approx(0.5, abs=0.01)
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)
    assert torch.equal(noise, NoiseFill(0.5).replacement("a", values, _step()))  # same seed


def test_ema_statistics_update_only_in_training() -> None:
    fill = EmaFill(momentum=0.1)
    first = torch.tensor([[0.0, 2.0], [2.0, 6.0]])  # mean [1, 4], var [1, 4]
    fill.replacement("a", first, _step(training=False))
    assert fill.mean == {}  # evaluation never stores statistics
    fill.replacement("a", first, _step(training=True))
    assert fill.mean["a"].tolist() == pytest.approx([1.0, 4.0])
    assert fill.var["a"].tolist() == pytest.approx([1.0, 4.0])
    second = torch.tensor([[11.0, 4.0], [11.0, 4.0]])  # mean [11, 4], var [0, 0]
    fill.replacement("a", second, _step(training=False))
    assert fill.mean["a"].tolist() == pytest.approx([1.0, 4.0])
    fill.replacement("a", second, _step(training=True))
    assert fill.mean["a"].tolist() == pytest.approx([0.9 * 1 + 0.1 * 11, 4.0])  # [2, 4]
    assert fill.var["a"].tolist() == pytest.approx([0.9, 3.6])
    draws = fill.replacement("a", torch.zeros(4000, 2), _step(training=False))
    assert draws.mean(dim=0).tolist() == pytest.approx([2.0, 4.0], abs=0.1)
    assert draws.var(dim=0).tolist() == pytest.approx([0.9, 3.6], rel=0.1)
    restored = EmaFill()
    restored.load_state_dict(fill.state_dict())
    assert torch.equal(restored.mean["a"], fill.mean["a"])


# ---------------------------------------------------------------- element masks


def test_mask_registry() -> None:
    assert set(MASKS) == {"random", "full", "oracle", "learned"}
    config = TrainConfig(mask="learned", w_uni=1.0, mask_steps=3)
    assert isinstance(MASKS["learned"](config), LearnedMask)
    assert isinstance(MASKS["random"](config), RandomMask)


def test_random_mask_rate_and_determinism() -> None:
    values = torch.zeros(200, 100)
    mask = RandomMask(0.3).corruption(_request(values))
    assert mask.dtype == torch.bool and mask.shape == values.shape
    assert mask.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(mask, RandomMask(0.3).corruption(_request(values)))
    assert FullMask().corruption(_request(values)).all()


def test_oracle_mask_is_exactly_the_oracle_coordinates() -> None:
    values = torch.zeros(3, 6)
    mask = OracleMask().corruption(_request(values, oracle=torch.tensor([1, 4])))
    expected = torch.zeros(3, 6, dtype=torch.bool)
    expected[:, [1, 4]] = True
    assert torch.equal(mask, expected)
    assert not OracleMask().corruption(_request(values, oracle=None)).any()
    with pytest.raises(ValueError, match="oracle"):
        OracleMask().corruption(_request(values, oracle=torch.tensor([6])))


def test_apply_corruption_selects_or_interpolates() -> None:
    values, repl = torch.tensor([[1.0, 2.0]]), torch.tensor([[10.0, 20.0]])
    picked = apply_corruption(values, repl, torch.tensor([[True, False]]))
    assert picked.tolist() == [[10.0, 2.0]]
    mixed = apply_corruption(values, repl, torch.tensor([[0.5, 0.0]]))
    assert mixed.tolist() == [[5.5, 2.0]]


# ---------------------------------------------------------------- learned gate


def _coordinate_zero_task() -> tuple[Tensor, Tensor, nn.Module]:
    """Values whose coordinate 0 carries the label, and a head that reads coordinate 0 only."""
    g = _gen(5)
    y = torch.randint(0, 2, (32,), generator=g)
    values = torch.randn(32, 6, generator=g)
    values[:, 0] = 2.0 * (2 * y.float() - 1)
    head = nn.Linear(6, 1)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0] = 3.0
        head.bias.zero_()
    return values, y, head


def test_learned_gate_ranks_the_coordinate_the_head_uses_first() -> None:
    values, y, head = _coordinate_zero_task()
    before = [p.detach().clone() for p in head.parameters()]
    gate = learned_gate(
        values, torch.zeros_like(values), y, head, steps=20, lr=0.1, tau=1.0, sparsity=0.1
    )
    assert gate.shape == values.shape and not gate.requires_grad
    assert (gate.argmax(dim=1) == 0).all()
    assert (gate[:, 0] > 0.5).all() and (gate[:, 1:] < 0.5).all()
    assert all(torch.equal(p, q) for p, q in zip(before, head.parameters(), strict=True))
    assert all(p.grad is None for p in head.parameters())  # model frozen


def test_learned_mask_directions_and_evaluation_fallback() -> None:
    values, y, head = _coordinate_zero_task()
    req = _request(values, y=y, head=head)
    keep = LearnedMask(steps=20, lr=0.1, tau=1.0, sparsity=0.1).corruption(req)
    destroy = LearnedMask(
        steps=20, lr=0.1, tau=1.0, sparsity=0.1, direction="destroy_unimodal"
    ).corruption(req)
    assert (keep.argmin(dim=1) == 0).all()  # keep_unimodal keeps coordinate 0 intact
    assert (destroy.argmax(dim=1) == 0).all()
    assert torch.allclose(keep + destroy, torch.ones_like(keep))
    hard = LearnedMask(steps=20, lr=0.1, tau=1.0, sparsity=0.1, hard=True).corruption(req)
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert (hard[:, 0] == 0).all() and (hard[:, 1:] == 1).all()
    calls: list[int] = []

    def counting_head(v: Tensor) -> Tensor:
        calls.append(1)
        return head(v)

    evaluation = LearnedMask(steps=20, lr=0.1, tau=1.0, sparsity=0.1).corruption(
        dataclasses.replace(req, training=False, head=counting_head)
    )
    assert evaluation.dtype == torch.bool and evaluation.all() and calls == []


# ---------------------------------------------------------------- counterfactual builder


@pytest.mark.parametrize("mask", ["random", "full", "oracle"])
def test_feature_level_touches_only_the_chosen_modality(mask: str) -> None:
    model, batch, ctx, config = _setup(
        mask=mask, mask_level="feature", fill="noise", encoder="identity"
    )
    feats = model.encode_all(batch)
    cf = CounterfactualBuilder.from_config(config).features(model, batch, feats, ctx)
    assert list(cf) == list(SPEC.modalities)
    for m in SPEC.modalities:
        changed = cf[m] != feats[m]
        if mask == "full":
            assert changed.all()
        elif mask == "oracle":
            expected = torch.zeros_like(changed)
            expected[:, ctx.oracle[m]] = True
            assert torch.equal(changed, expected)
        else:
            assert 0.2 < changed.float().mean().item() < 0.8
    logits = CounterfactualBuilder.from_config(config).logits(model, batch, feats, ctx)
    fused = model.fused[-1]  # (3 * B, H) per modality: block k corrupts modality k only
    for k, m in enumerate(SPEC.modalities):
        for j in SPEC.modalities:
            block = fused[j][8 * k : 8 * (k + 1)]
            assert torch.equal(block, feats[j].detach()) == (
                j != m or (mask == "oracle" and j == "c")
            )
    assert all(v.shape == (8, 3) for v in logits.values())


def test_input_level_reruns_only_the_corrupted_encoder_on_oracle_coordinates() -> None:
    model, batch, ctx, config = _setup(mask="oracle", mask_level="input", fill="swap")
    feats = model.encode_all(batch)
    model.encoded.clear()
    CounterfactualBuilder.from_config(config).logits(model, batch, feats, ctx)
    assert [m for m, _ in model.encoded] == list(SPEC.modalities)  # one rerun per modality
    for m, x_cf in model.encoded:
        changed = (x_cf != batch.x[m]).any(dim=0)
        expected = torch.zeros_like(changed)
        expected[ctx.oracle[m]] = True
        assert torch.equal(changed, expected)
    assert len(model.fused) == 1
    fused = model.fused[0]
    assert torch.equal(fused["b"][:8], feats["b"].detach())  # block 0: only "a" corrupted


def test_oracle_mask_without_any_oracle_coordinates_fails_clearly() -> None:
    model, batch, ctx, config = _setup(mask="oracle")
    ctx = dataclasses.replace(ctx, oracle={})
    with pytest.raises(ValueError, match="oracle"):
        CounterfactualBuilder.from_config(config).features(
            model, batch, model.encode_all(batch), ctx
        )


def test_same_generator_same_counterfactuals() -> None:
    model, batch, ctx, config = _setup(mask="random", fill="noise")
    feats = model.encode_all(batch)
    builder = CounterfactualBuilder.from_config(config)
    first = builder.features(model, batch, feats, dataclasses.replace(ctx, generator=_gen(7)))
    second = builder.features(model, batch, feats, dataclasses.replace(ctx, generator=_gen(7)))
    third = builder.features(model, batch, feats, dataclasses.replace(ctx, generator=_gen(8)))
    assert all(torch.equal(first[m], second[m]) for m in first)
    assert not torch.equal(first["a"], third["a"])


def test_bool_corruption_is_an_exact_selection_at_any_magnitude() -> None:
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(64, 32, generator=gen) * 1e8
    replacement = torch.randn(64, 32, generator=gen) * 1e-6
    mask = torch.rand(64, 32, generator=gen) < 0.5
    out = apply_corruption(values, replacement, mask)
    assert torch.equal(out, torch.where(mask, replacement, values))


def test_the_default_fill_follows_the_mask_level() -> None:
    """fill=auto: a feature-level builder swaps, an input-level one draws noise."""
    from synib_core.objectives.counterfactual import CounterfactualBuilder
    from synib_core.objectives.fills import build_fill

    for level, expected in (("feature", "swap"), ("input", "noise")):
        built = CounterfactualBuilder.from_config(TrainConfig(mask_level=level)).fill
        assert type(built) is type(build_fill(expected))

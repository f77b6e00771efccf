"""The training loop: a short fit, determinism, lambda = 0, early stopping, resume, divergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synib_core.config import TrainConfig
from synib_core.data import GENERATORS, MultimodalData
from synib_core.training import EpochReport, TrainingDiverged, fit, train_references

torch.set_num_threads(1)

SMALL = TrainConfig(hidden=8, encoder_layers=1, fusion_hidden=8, batch_size=16, lr=1e-2)


def tiny_data(seed: int = 0, n: tuple[int, int, int] = (64, 32, 40)) -> MultimodalData:
    """Two 6-dim modalities; y = XOR of the signs of a[0] and b[0]."""
    rng = np.random.default_rng(seed)
    total = sum(n)
    a = rng.normal(size=(total, 6)).astype(np.float32)
    b = rng.normal(size=(total, 6)).astype(np.float32)
    y = ((a[:, 0] > 0) ^ (b[:, 0] > 0)).astype(np.int64)
    split = np.repeat(np.arange(3, dtype=np.int8), n)
    return MultimodalData(
        x={"a": a, "b": b},
        y=y,
        split=split,
        group=np.where(np.arange(total) % 2 == 0, "synergy", "redundant"),
        oracle={"a": np.array([0]), "b": np.array([0])},
        lengths={},
        num_classes=2,
        fingerprint="tiny",
    )


def weights(result_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in result_model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_epoch_fit_reports_the_vocabulary() -> None:
    reports: list[EpochReport] = []
    data = GENERATORS["xor_spurious"](seed=0, n_train=64, n_val=32, n_test=100)
    result = fit(
        TrainConfig(**{**SMALL.__dict__, "epochs": 2}),
        data,
        method="synib",
        seed=0,
        on_epoch_end=reports.append,
    )
    assert [r.epoch for r in reports] == [1, 2]
    assert len(result.history) == 2
    for row in result.history:
        assert set(row) == {"train_loss", "val_acc", "test_acc", "epoch_seconds"}
        assert np.isfinite(row["train_loss"]) and 0 <= row["val_acc"] <= 1
    assert result.best_epoch in (1, 2)
    best = result.history[result.best_epoch - 1]["val_acc"]
    assert best == max(r["val_acc"] for r in result.history) == result.metrics["val_acc"]
    for key in ("test_acc", "test_macro_f1", "test_ece", "cf_conf_a", "cf_conf_b"):
        assert key in result.metrics
    assert result.test_probs.shape == (100, 2)
    assert np.allclose(result.test_probs.sum(1), 1.0, atol=1e-5)
    assert result.metrics["test_acc"] == pytest.approx(
        float((result.test_pred == data.subset("test").y).mean())
    )
    assert not result.model.training
    assert any(r.is_best for r in reports)


def test_same_seed_same_weights_and_other_seed_differs() -> None:
    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 2, "dropout": 0.2})
    data = tiny_data()
    first = weights(fit(cfg, data, method="synib", seed=3).model)
    second = weights(fit(cfg, data, method="synib", seed=3).model)
    other = weights(fit(cfg, data, method="synib", seed=4).model)
    assert_same_weights(first, second)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_fit_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(TrainConfig(**{**SMALL.__dict__, "epochs": 1}), tiny_data(), method="vanilla", seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"mask_level": "input", "fill": "noise", "w_uni": 0.5},
        # lambda > 0 but every w_m = 0: the masks ARE drawn, yet the loss is the vanilla one,
        # so this fails if mask draws shift the shuffling RNG
        {"lam": 1.0, "modality_weights": "a=0,b=0"},
    ],
)
def test_lambda_zero_synib_equals_vanilla_bit_for_bit(extra: dict) -> None:
    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 3, "lam": 0.0, **extra})
    data = tiny_data(1)
    vanilla = fit(cfg, data, method="vanilla", seed=5)
    synib = fit(cfg, data, method="synib", seed=5)
    assert_same_weights(weights(vanilla.model), weights(synib.model))
    assert [h["train_loss"] for h in vanilla.history] == [h["train_loss"] for h in synib.history]
    # with lambda > 0 the runs do differ (so the test above can fail)
    changed = {"lam": 1.0, "modality_weights": ""}
    other = fit(TrainConfig(**{**cfg.__dict__, **changed}), data, method="synib", seed=5)
    assert any(
        not torch.equal(v, other.model.state_dict()[k]) for k, v in weights(vanilla.model).items()
    )


def test_early_stopping_when_validation_does_not_improve(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # lr so small that predictions never change: epoch 1 is best, epochs 2 and 3 do not
    # improve, so patience 2 stops after epoch 3 of 10.
    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 10, "patience": 2, "lr": 1e-12})
    seen: list[int] = []
    result = fit(
        cfg,
        tiny_data(),
        method="vanilla",
        seed=0,
        on_epoch_end=lambda r: seen.append(r.epoch),
        progress=True,
    )
    assert seen == [1, 2, 3]
    assert result.stopped_early and result.best_epoch == 1
    assert len(result.history) == 3
    assert "3/10" in capsys.readouterr().err  # the progress bar stopped at epoch 3 of 10


def test_best_epoch_weights_are_returned() -> None:
    # constant lr, no warm-up: the first k epochs of a run do not depend on its length, so a
    # run stopped at the best epoch ends with the weights the longer run must return
    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 8, "lr": 0.05})
    data = tiny_data(2)
    result = fit(cfg, data, method="vanilla", seed=1)
    accs = [h["val_acc"] for h in result.history]
    assert result.best_epoch == int(np.argmax(accs)) + 1  # the first epoch with the max
    assert result.best_epoch < 8  # so the test below compares with an earlier epoch
    short = fit(
        TrainConfig(**{**cfg.__dict__, "epochs": result.best_epoch}), data, method="vanilla", seed=1
    )
    assert_same_weights(weights(result.model), weights(short.model))


class Stop(RuntimeError):
    pass


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = TrainConfig(
        **{**SMALL.__dict__, "epochs": 4, "dropout": 0.1, "lr_schedule": "cosine", "fill": "ema"}
    )
    data = tiny_data(3)
    full = fit(cfg, data, method="synib", seed=2, checkpoint_dir=str(tmp_path / "full"))

    def stop_at_two(report: EpochReport) -> None:
        if report.epoch == 2:
            raise Stop("cancelled")

    part = str(tmp_path / "part")
    with pytest.raises(Stop):
        fit(cfg, data, method="synib", seed=2, checkpoint_dir=part, on_epoch_end=stop_at_two)
    epochs_after_resume: list[int] = []
    resumed = fit(
        cfg, data, method="synib", seed=2, checkpoint_dir=part,
        on_epoch_end=lambda r: epochs_after_resume.append(r.epoch),
    )  # fmt: skip
    assert epochs_after_resume == [3, 4]
    assert_same_weights(weights(full.model), weights(resumed.model))
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    assert full.best_epoch == resumed.best_epoch and full.metrics == resumed.metrics
    # a finished run's checkpoint: nothing left to train, same result
    calls: list[int] = []
    again = fit(
        cfg,
        data,
        method="synib",
        seed=2,
        checkpoint_dir=part,
        on_epoch_end=lambda r: calls.append(r.epoch),
    )
    assert calls == [] and again.metrics == full.metrics
    with pytest.raises(ValueError, match="different run"):
        fit(cfg, data, method="synib", seed=9, checkpoint_dir=part)


def test_nan_loss_raises_training_diverged() -> None:
    data = tiny_data()
    data.x["a"][3] = np.nan  # a training row: the first batch that holds it has a NaN loss
    with pytest.raises(TrainingDiverged) as info:
        fit(TrainConfig(**{**SMALL.__dict__, "epochs": 2}), data, method="vanilla", seed=0)
    assert isinstance(info.value, ValueError)
    assert info.value.epoch == 1 and info.value.step in range(4)
    assert "epoch 1" in str(info.value)


def test_unknown_method_and_bad_references() -> None:
    with pytest.raises(ValueError, match="method"):
        fit(SMALL, tiny_data(), method="magic")
    with pytest.raises(ValueError, match="references"):
        fit(SMALL, tiny_data(), method="vanilla", references={"a": np.zeros(3)})


def test_references_enable_the_synergy_metrics() -> None:
    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 2})
    data = tiny_data(4)
    refs = train_references(cfg, data, seed=0)
    assert set(refs) == {"a", "b"}
    assert all(p.shape == (40,) and p.dtype == np.int64 for p in refs.values())
    assert train_references(cfg, data, seed=0)["a"].tolist() == refs["a"].tolist()
    result = fit(cfg, data, method="vanilla", seed=0, references=refs)
    y = data.subset("test").y
    synergy = (refs["a"] != y) & (refs["b"] != y)
    assert result.metrics["synergy_n"] == synergy.sum()
    if synergy.any():
        expected = float((result.test_pred[synergy] == y[synergy]).mean())
        assert result.metrics["synergy_acc"] == pytest.approx(expected)
    assert {"group_synergy_acc", "group_redundant_acc"} <= set(result.metrics)


def test_references_skip_the_per_epoch_test_pass_and_predict_as_with_it() -> None:
    """The references evaluate the test split once (best epoch): same model, same predictions."""
    from synib_core.training.loop import run_training
    from synib_core.training.references import UnimodalCE, single_modality

    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 3})
    data = tiny_data(5)
    refs = train_references(cfg, data, seed=1)
    for m in ("a", "b"):
        runs = {
            each: run_training(cfg, single_modality(data, m), method="ensemble",
                               objective=UnimodalCE(), seed=1, test_each_epoch=each)
            for each in (True, False)
        }  # fmt: skip
        assert [set(h) for h in runs[False].history] == [
            {"train_loss", "val_acc", "epoch_seconds"}
        ] * 3
        assert all("test_acc" in h for h in runs[True].history)
        assert runs[False].best_epoch == runs[True].best_epoch
        assert_same_weights(weights(runs[False].model), weights(runs[True].model))
        assert runs[False].test_pred.tolist() == runs[True].test_pred.tolist()
        assert refs[m].tolist() == runs[False].test_pred.tolist()


def test_references_may_come_from_a_callable_called_once_after_the_last_epoch() -> None:
    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 3})
    data = tiny_data(4)
    refs = train_references(cfg, data, seed=0)
    epochs_seen_by_the_call: list[int] = []
    reported: list[int] = []

    def later() -> dict[str, np.ndarray]:
        epochs_seen_by_the_call.append(len(reported))
        return refs

    lazy = fit(cfg, data, method="vanilla", seed=0, references=later,
               on_epoch_end=lambda r: reported.append(r.epoch))  # fmt: skip
    assert epochs_seen_by_the_call == [3]  # once, after all 3 epochs
    eager = fit(cfg, data, method="vanilla", seed=0, references=refs)
    assert lazy.metrics == eager.metrics  # the same synergy metrics as given up front
    assert "synergy_acc" in lazy.metrics or lazy.metrics["synergy_n"] == 0
    none = fit(cfg, data, method="vanilla", seed=0, references=lambda: None)
    assert "synergy_n" not in none.metrics and none.metrics["test_acc"] == eager.metrics["test_acc"]
    with pytest.raises(ValueError, match=r"references\['a'\]: expected shape \(40,\)"):
        fit(cfg, data, method="vanilla", seed=0, references=lambda: {"a": np.zeros(3)})
    with pytest.raises(TypeError, match="references: expected a mapping"):
        fit(cfg, data, method="vanilla", seed=0, references=lambda: [1, 2])  # type: ignore[arg-type,return-value]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_with_amp_trains_resumes_and_saves(tmp_path: Path) -> None:
    from synib_core.checkpoint import load

    cfg = TrainConfig(**{**SMALL.__dict__, "epochs": 4, "device": "cuda", "amp": True})
    data = tiny_data(5)
    full = fit(cfg, data, method="synib", seed=0, checkpoint_dir=str(tmp_path / "full"))
    assert next(full.model.parameters()).is_cuda
    assert all(np.isfinite(h["train_loss"]) for h in full.history)

    def stop_at_two(report: EpochReport) -> None:
        if report.epoch == 2:
            raise Stop("cancelled")

    part = str(tmp_path / "part")
    with pytest.raises(Stop):
        fit(cfg, data, method="synib", seed=0, checkpoint_dir=part, on_epoch_end=stop_at_two)
    resumed = fit(cfg, data, method="synib", seed=0, checkpoint_dir=part)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(v, resumed.model.state_dict()[k], rtol=0, atol=1e-6)
    loaded = load(full.save(tmp_path / "m.zip"))  # rebuilt on the CPU
    probs = loaded.predict_proba(data.subset("test").x)
    np.testing.assert_allclose(probs, full.test_probs, atol=1e-4)


def test_grad_clip_bounds_the_update_to_the_clipped_norm() -> None:
    """One SGD step at lr 1 moves the weights by exactly the clipped gradient: its global norm is
    ``grad_clip`` when the raw gradient is longer (hand rule: g <- g * c / ||g||)."""
    data = tiny_data(n=(64, 32, 40))  # batch 64: one update per epoch
    knobs = {**SMALL.__dict__, "optimizer": "sgd", "weight_decay": 0.0, "epochs": 1}
    knobs["batch_size"] = 64

    def moved(**extra: float) -> float:
        start = weights(
            fit(TrainConfig(**{**knobs, "lr": 1e-12}), data, method="vanilla", seed=0).model
        )
        end = weights(fit(TrainConfig(**{**knobs, **extra}), data, method="vanilla", seed=0).model)
        return float(torch.sqrt(sum(((end[k] - start[k]) ** 2).sum() for k in start)))

    raw = moved(lr=1.0)
    assert raw > 0.01  # the raw step is long enough for the clip to bite
    assert moved(lr=1.0, grad_clip=1e-3) == pytest.approx(1e-3, rel=1e-3)
    assert moved(lr=1.0, grad_clip=1e3) == pytest.approx(raw, rel=1e-6)  # a loose clip: no-op

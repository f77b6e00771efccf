"""The loop's two hooks for baselines (``begin_epoch``, ``updates_per_batch``), and every new
baseline resuming bit for bit from a checkpoint (its objective state included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synib_core.config import TrainConfig
from synib_core.data import MultimodalData
from synib_core.objectives import Batch, ModelLike, ObjectiveOutput, StepContext
from synib_core.objectives.baselines import Vanilla
from synib_core.training import EpochReport, fit, run_training

torch.set_num_threads(1)

SMALL = {"hidden": 8, "encoder_layers": 1, "fusion_hidden": 8, "batch_size": 16, "lr": 1e-2}


def tiny_data(seed: int = 0, n: tuple[int, int, int] = (64, 32, 40)) -> MultimodalData:
    """Two 6-dim modalities; y = XOR of the signs of a[0] and b[0]."""
    rng = np.random.default_rng(seed)
    total = sum(n)
    a = rng.normal(size=(total, 6)).astype(np.float32)
    b = rng.normal(size=(total, 6)).astype(np.float32)
    return MultimodalData(
        x={"a": a, "b": b}, y=((a[:, 0] > 0) ^ (b[:, 0] > 0)).astype(np.int64),
        split=np.repeat(np.arange(3, dtype=np.int8), n), group=None, oracle={}, lengths={},
        num_classes=2, fingerprint=f"tiny-{seed}",
    )  # fmt: skip


class Recording(Vanilla):
    """Vanilla with three updates per batch, recording what the loop hands the hooks."""

    updates_per_batch = 3

    def __init__(self, config: TrainConfig, spec: object) -> None:
        super().__init__(config, spec)  # type: ignore[arg-type]
        self.epochs: list[tuple[int, int, int]] = []
        self.substeps: list[tuple[int, int, int]] = []

    def begin_epoch(self, model: ModelLike, epoch: int, train: Batch, val: Batch) -> None:
        self.epochs.append((epoch, len(train), len(val)))

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        self.substeps.append((ctx.epoch, ctx.step, ctx.substep))
        return super().loss(model, batch, ctx)


def test_hooks_see_whole_splits_and_every_substep() -> None:
    config = TrainConfig(**SMALL, epochs=2)
    data = tiny_data()
    objective = Recording(config, data.spec())
    run_training(config, data, method="vanilla", objective=objective, seed=0)
    assert objective.epochs == [(1, 64, 32), (2, 64, 32)]
    batches = 4  # 64 training rows, batch size 16
    assert objective.substeps[:4] == [(1, 0, 0), (1, 1, 1), (1, 2, 2), (1, 3, 0)]
    assert len(objective.substeps) == 2 * batches * 3
    assert objective.substeps[-1] == (2, 2 * batches * 3 - 1, 2)


class Stop(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("method", "knobs"),
    [
        ("reconboost", {"reconboost_stage_epochs": 1, "reconboost_rectify_epochs": 1}),
        ("dnr", {"dnr_every": 2, "w_uni": 0.1}),
        ("mcr", {"mcr_lambda": 0.5}),
        ("agm", {"agm_alpha": 1.0}),
        ("mla", {}),
        ("pmr", {"pmr_alpha": 1.0}),
    ],
)
def test_new_baselines_resume_bit_for_bit(method: str, knobs: dict, tmp_path: Path) -> None:
    cfg = TrainConfig(**SMALL, epochs=4, **knobs)
    data = tiny_data(3)
    full = fit(cfg, data, method=method, seed=2, checkpoint_dir=str(tmp_path / "full"))

    def stop_at_two(report: EpochReport) -> None:
        if report.epoch == 2:
            raise Stop("cancelled")

    part = str(tmp_path / "part")
    with pytest.raises(Stop):
        fit(cfg, data, method=method, seed=2, checkpoint_dir=part, on_epoch_end=stop_at_two)
    resumed = fit(cfg, data, method=method, seed=2, checkpoint_dir=part)
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    assert full.metrics == resumed.metrics
    assert 0.0 <= full.metrics["test_acc"] <= 1.0

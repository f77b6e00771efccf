"""The state of one training run (model, optimiser, RNGs, data on the device) and its
checkpoint save/restore."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from synib_core.backbones import EncoderChoice, MultimodalModel, build_model
from synib_core.config import TrainConfig
from synib_core.data import DataSpec, MultimodalData
from synib_core.objectives.base import Batch, Objective, StepContext
from synib_core.training.state import ProgressState, load_train_state, run_key, save_train_state
from synib_core.training.tensors import SplitTensors, iterate_batches, resolve_device, split_tensors

__all__ = [
    "TrainingRun",
    "build_optimizer",
    "build_scheduler",
    "resume_or_start",
    "save_checkpoint",
]

LRScheduler = torch.optim.lr_scheduler.LRScheduler


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """adam (L2 weight decay), adamw (decoupled) or sgd (momentum 0.9), over the parameters
    that train (a frozen pretrained encoder's have ``requires_grad`` off)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def build_scheduler(config: TrainConfig, opt: torch.optim.Optimizer) -> LRScheduler | None:
    """None for a constant lr; cosine annealing to 0 over ``epochs`` (stepped per epoch)."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    return None


@dataclass
class TrainingRun:
    config: TrainConfig
    method: str
    seed: int
    spec: DataSpec
    fingerprint: str
    device: torch.device
    model: MultimodalModel
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | None
    scaler: torch.amp.GradScaler | None
    train: SplitTensors
    val: SplitTensors
    test: SplitTensors
    shuffle_gen: torch.Generator  # CPU: batch order only
    mask_gen: torch.Generator  # training device: the objective's masks and fills only
    train_prior: Tensor  # (K,) float32
    oracle: dict[str, Tensor]  # modality -> (k,) int64
    state: ProgressState

    @property
    def use_amp(self) -> bool:
        return self.scaler is not None

    @classmethod
    def create(
        cls,
        config: TrainConfig,
        data: MultimodalData,
        *,
        method: str,
        objective: Objective,
        seed: int,
        backbones: Mapping[str, EncoderChoice] | None = None,
    ) -> TrainingRun:
        """Seed the global RNG (the caller forks it), build everything, move data to the device.

        backbones: modality -> ``EncoderChoice`` (``build_model``)."""
        device = resolve_device(config.device)
        torch.manual_seed(seed)
        spec = data.spec()
        model = build_model(config, spec, method, backbones).to(device)
        optimizer = build_optimizer(config, model)
        use_amp = config.amp and device.type == "cuda"
        return cls(
            config=config, method=method, seed=seed, spec=spec, fingerprint=data.fingerprint,
            device=device, model=model, objective=objective, optimizer=optimizer,
            scheduler=build_scheduler(config, optimizer),
            scaler=torch.amp.GradScaler("cuda") if use_amp else None,
            train=split_tensors(data, "train", device),
            val=split_tensors(data, "val", device),
            test=split_tensors(data, "test", device),
            shuffle_gen=torch.Generator().manual_seed(seed),
            mask_gen=torch.Generator(device=device).manual_seed(seed + 1_000_003),
            train_prior=torch.tensor(data.train_prior(), dtype=torch.float32, device=device),
            oracle={
                m: torch.as_tensor(idx, dtype=torch.long, device=device)
                for m, idx in data.oracle.items()
            },
            state=ProgressState(),
        )  # fmt: skip

    def batches(self) -> Iterator[Batch]:
        return iterate_batches(self.train, self.config.batch_size, self.shuffle_gen)

    def context(self, epoch: int, substep: int = 0) -> StepContext:
        return StepContext(
            epoch=epoch,
            num_epochs=self.config.epochs,
            step=self.state.step,
            generator=self.mask_gen,
            train_prior=self.train_prior,
            oracle=self.oracle,
            training=True,
            substep=substep,
        )

    def key(self) -> str:
        return run_key(self.config.to_knobs(), self.method, self.seed, self.fingerprint)


def save_checkpoint(run: TrainingRun, directory: str | Path) -> Path:
    """Write everything needed to resume ``run`` after the epoch just finished."""
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "shuffle": run.shuffle_gen.get_state(),
        "mask": run.mask_gen.get_state(),
    }
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(run.device)
    payload = {
        "run_key": run.key(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else {},
        "scaler": run.scaler.state_dict() if run.scaler is not None else {},
        "objective": run.objective.state_dict(),
        "rng": rng,
        "progress": run.state.to_dict(),
    }
    return save_train_state(directory, payload)


def resume_or_start(run: TrainingRun, directory: str | Path | None) -> bool:
    """Restore ``run`` from ``directory`` when it holds this run's checkpoint; True if resumed."""
    if directory is None:
        return False
    saved = load_train_state(directory, run.key())
    if saved is None:
        return False
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    if run.scheduler is not None:
        run.scheduler.load_state_dict(saved["scheduler"])
    if run.scaler is not None and saved["scaler"]:
        run.scaler.load_state_dict(saved["scaler"])
    run.objective.load_state_dict(saved["objective"])
    rng = saved["rng"]
    torch.set_rng_state(rng["torch"])
    run.shuffle_gen.set_state(rng["shuffle"])
    run.mask_gen.set_state(rng["mask"])
    if "cuda" in rng and run.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], run.device)
    progress = dict(saved["progress"])
    progress["best_state"] = {k: v.to(run.device) for k, v in progress["best_state"].items()}
    run.state = ProgressState.from_dict(progress)
    return True

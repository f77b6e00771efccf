"""The training loop: ``fit(config, data, method=...)`` (docs/ARCHITECTURE.md).

Determinism: the model is initialised and dropout draws from the global torch RNG seeded with
``seed`` (inside ``torch.random.fork_rng``, so the caller's RNG is untouched); the batch order
comes from its own CPU generator and the objective's masks and fills from another generator
(on the training device). So the masks never shift the batch order: with lambda = 0, ``synib``
sees exactly the batches ``vanilla`` sees.

Example:
    >>> data = GENERATORS["xor_spurious"](seed=0, n_test=500)          # doctest: +SKIP
    >>> result = fit(TrainConfig(epochs=5), data, method="synib", seed=0)
    >>> result.metrics["test_acc"], result.best_epoch
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from synib_core.backbones import EncoderChoice
from synib_core.config import METHODS, KnobError, TrainConfig, check_method_rules
from synib_core.data import MultimodalData
from synib_core.objectives import build_objective
from synib_core.objectives.base import Batch, Objective
from synib_core.training.evaluate import accuracy_of, fit_split_temperature, test_metrics
from synib_core.training.results import EpochReport, FitResult, TrainingDiverged
from synib_core.training.run import TrainingRun, resume_or_start, save_checkpoint

__all__ = ["fit", "run_training"]

EpochCallback = Callable[[EpochReport], None]
References = Mapping[str, np.ndarray]
# The references, or a zero-argument callable that returns them (called once training ends).
ReferenceSource = References | Callable[[], References | None] | None
Backbones = Mapping[str, EncoderChoice]


def fit(
    config: TrainConfig,
    data: MultimodalData,
    *,
    method: str,
    seed: int = 0,
    references: ReferenceSource = None,
    on_epoch_end: EpochCallback | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = False,
    backbones: Backbones | None = None,
) -> FitResult:
    """Train ``method`` on ``data`` with ``config``; select the epoch by validation accuracy.

    references: modality -> (N_test,) unimodal reference test predictions (enables the synergy
    metrics), or a zero-argument callable returning them (or None), called once, after the last
    epoch: references being trained elsewhere meanwhile need not hold the training back;
    on_epoch_end: called after every epoch (an exception from it stops training and
    propagates); checkpoint_dir: checkpoint after every epoch, resume when it holds one;
    backbones: modality -> ``EncoderChoice`` for modalities not encoded by the ``encoder`` knob
    (pretrained models: ``synib_core.backbones.pretrained``).
    ``torch.set_num_threads`` is left to the caller. Raises ``TrainingDiverged`` on a NaN/inf loss.
    """
    if method not in METHODS:
        raise KnobError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    check_method_rules(config, method)
    objective = build_objective(method, config, data.spec())
    return run_training(
        config,
        data,
        method=method,
        objective=objective,
        seed=seed,
        references=references,
        on_epoch_end=on_epoch_end,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        backbones=backbones,
    )


def run_training(
    config: TrainConfig,
    data: MultimodalData,
    *,
    method: str,
    objective: Objective,
    seed: int,
    references: ReferenceSource = None,
    on_epoch_end: EpochCallback | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = False,
    test_each_epoch: bool = True,
    backbones: Backbones | None = None,
) -> FitResult:
    """``fit`` with a ready objective (``train_references`` passes its own).

    ``test_each_epoch=False`` leaves ``test_acc`` out of the per-epoch history: the test split
    is then evaluated once, at the best epoch (the unimodal references need only that; their
    training is otherwise identical, as evaluation draws no random numbers).
    """
    if not callable(references):
        _check_references(references, data)  # before training: a mistake costs no epochs
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        run = TrainingRun.create(
            config, data, method=method, objective=objective, seed=seed, backbones=backbones
        )
        resume_or_start(run, checkpoint_dir)
        _epochs(run, on_epoch_end, checkpoint_dir, progress, test_each_epoch)
        if not callable(references):
            return _finish(run, references)
        resolved = references()
        _check_references(resolved, data)
        return _finish(run, resolved)


def _check_references(references: References | None, data: MultimodalData) -> None:
    if references is None:
        return
    if not isinstance(references, Mapping):
        raise TypeError(
            f"references: expected a mapping modality -> predictions, got "
            f"{type(references).__name__}"
        )
    n_test = data.split_sizes()["test"]
    for m, pred in references.items():
        if np.asarray(pred).shape != (n_test,):
            raise ValueError(
                f"references[{m!r}]: expected shape ({n_test},) (one prediction per test "
                f"sample), got {np.asarray(pred).shape}"
            )


def _epochs(
    run: TrainingRun,
    on_epoch_end: EpochCallback | None,
    ckpt: str | None,
    progress: bool,
    test_each_epoch: bool,
) -> None:
    cfg, state = run.config, run.state
    if state.stopped_early:
        return
    bar = tqdm(total=cfg.epochs, initial=state.epoch, disable=not progress, desc=run.method)
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            start = time.perf_counter()
            run.objective.begin_epoch(run.model, epoch, run.train.whole(), run.val.whole())
            train_loss = _train_epoch(run, epoch)
            val_acc = accuracy_of(run.model, run.val)
            metrics = {"train_loss": train_loss, "val_acc": val_acc}
            if test_each_epoch:
                metrics["test_acc"] = accuracy_of(run.model, run.test)
            metrics["epoch_seconds"] = time.perf_counter() - start
            state.epoch = epoch
            state.history.append(metrics)
            is_best = state.consider(val_acc, run.model.state_dict())
            state.stopped_early = 0 < cfg.patience <= state.bad_epochs and epoch < cfg.epochs
            if ckpt is not None:
                save_checkpoint(run, ckpt)
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.3f}")
            if on_epoch_end is not None:
                on_epoch_end(EpochReport(epoch, dict(metrics), is_best, state.best_epoch))
            if state.stopped_early:
                break
    finally:
        bar.close()


def _train_epoch(run: TrainingRun, epoch: int) -> float:
    """One pass over the training split; returns the mean loss per sample and update (an
    objective may make several updates per batch, e.g. one per modality)."""
    run.model.train()
    total, count = 0.0, 0
    for batch in run.batches():
        for substep in range(run.objective.updates_per_batch):
            total += _update(run, batch, epoch, substep) * len(batch)
            count += len(batch)
    if run.scheduler is not None:
        run.scheduler.step()
    return total / max(count, 1)


def _update(run: TrainingRun, batch: Batch, epoch: int, substep: int) -> float:
    """One optimiser update on ``batch``; returns its loss."""
    ctx = run.context(epoch, substep)
    with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.use_amp):
        out = run.objective.loss(run.model, batch, ctx)
    value = float(out.loss.detach())
    if not np.isfinite(value):
        raise TrainingDiverged(epoch, run.state.step, value)
    run.optimizer.zero_grad(set_to_none=True)
    run.objective.backward(out, run.model, run.scaler)
    if run.config.grad_clip > 0:
        if run.scaler is not None:
            run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.state.step += 1
    return value


def _finish(run: TrainingRun, references: References | None) -> FitResult:
    state = run.state
    run.model.load_state_dict(state.best_state)
    run.model.eval()
    temperature = fit_split_temperature(run.model, run.val)  # validation NLL, every method
    test, probs = test_metrics(run.model, run.test, references, temperature)
    best = state.history[state.best_epoch - 1]
    metrics = {"val_acc": best["val_acc"], "train_loss": best["train_loss"], **test}
    return FitResult(
        best_epoch=state.best_epoch,
        metrics=metrics,
        history=[dict(h) for h in state.history],
        model=run.model,
        config=run.config,
        method=run.method,
        spec=run.spec,
        dataset_fingerprint=run.fingerprint,
        test_probs=probs,
        stopped_early=state.stopped_early,
        temperature=temperature,
    )

"""Training: ``fit`` (the loop, evaluation, checkpoints) and ``train_references``."""

from synib_core.training.loop import fit, run_training
from synib_core.training.references import train_references
from synib_core.training.results import EpochReport, FitResult, TrainingDiverged

__all__ = [
    "EpochReport",
    "FitResult",
    "TrainingDiverged",
    "fit",
    "run_training",
    "train_references",
]

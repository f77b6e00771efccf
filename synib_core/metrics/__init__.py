"""Metrics as pure numpy functions (numpy arrays in, floats or masks out)."""

from synib_core.metrics.bootstrap import paired_bootstrap_ci, paired_bootstrap_cis
from synib_core.metrics.calibration import fit_temperature, scaled_nll, temperature_probs
from synib_core.metrics.classification import accuracy, expected_calibration_error, macro_f1
from synib_core.metrics.summary import summarize
from synib_core.metrics.synergy import (
    counterfactual_confidence,
    group_accuracies,
    strict_synergy_mask,
    unimodal_groups,
)

__all__ = [
    "accuracy",
    "counterfactual_confidence",
    "expected_calibration_error",
    "fit_temperature",
    "group_accuracies",
    "macro_f1",
    "paired_bootstrap_ci",
    "paired_bootstrap_cis",
    "scaled_nll",
    "strict_synergy_mask",
    "summarize",
    "temperature_probs",
    "unimodal_groups",
]
